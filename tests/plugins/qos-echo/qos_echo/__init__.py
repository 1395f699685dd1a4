"""Two step kinds written against qos-agent's public plug-in API only (qos_agent.plugins.*,
qos_agent.steps.measure): `echo` sends header lines and a message over TCP and yields the reply;
`silent` connects and yields nothing. Neither masks, extracts or describes its schema beyond its keys:
the core does that for them.

    - name: hello
      echo: {host: 127.0.0.1, port: 7000, message: "hi", headers: {Authorization: "Bearer {{ tok }}"}}
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from qos_agent.errors import StepFailure
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.model import ErrorClass, Sends, Step, StepResult, Yielded
from qos_agent.plugins.context import LoadContext, RunContext
from qos_agent.plugins.schema_parts import STR_MAP, TEXT, obj
from qos_agent.plugins.steps import Probe, StepKind, Yields
from qos_agent.steps.measure import measured

KEYS = ("host", "port", "message", "headers")


@dataclass(frozen=True)
class EchoSpec:
    host: str
    port: int
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()


def parse(kind: str, step: Node, problems: Problems) -> EchoSpec:
    r = Reader(step.get(kind) or Node({}, step.loc), problems, KEYS, kind, required=("host", "port"))
    return EchoSpec(host=r.str("host", ""), port=r.int("port", 1, minimum=1, maximum=65535),
                    message=r.str("message", ""), headers=tuple(r.str_map("headers").items()))


class EchoProbe(Probe):
    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: EchoSpec = step.spec

        async def body(result: StepResult) -> None:
            result.url = f"echo://{spec.host}:{spec.port}"
            reader, writer = await asyncio.open_connection(spec.host, spec.port)
            try:
                lines = [f"{name}: {ctx.render(value)}" for name, value in spec.headers]
                writer.write(("\n".join([*lines, ctx.render(spec.message)]) + "\n").encode())
                await writer.drain()
                reply = (await reader.read(4096)).decode("utf-8", "replace")
            finally:
                writer.close()
            if step.extract:
                result.yielded = Yielded(body=reply)
            if reply.startswith("ERR"):
                raise StepFailure(ErrorClass.STATUS, f"the server said {reply.strip()}")

        return await measured(step, "echo", body)

    async def close(self) -> None:
        return None


class EchoKind(StepKind[EchoSpec]):
    kind: ClassVar[str] = "echo"
    yields: ClassVar[Yields] = Yields(body="the reply")

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> EchoSpec:
        return parse(cls.kind, step, problems)

    @classmethod
    def probe(cls) -> Probe:
        return EchoProbe()

    @classmethod
    def sends(cls, spec: EchoSpec) -> Sends:
        return Sends(headers=spec.headers)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        types = {"host": TEXT, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                 "message": {"type": "string"}, "headers": STR_MAP}
        return {"echo": obj(KEYS, types, required=("host", "port"))}


class SilentKind(EchoKind):
    """Connects and sends, yields nothing: `extract:` on it is a located error."""

    kind: ClassVar[str] = "silent"
    yields: ClassVar[Yields] = Yields()

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return {"silent": EchoKind.json_schema()["echo"]}
