"""The `grpc:` step: the standard health check, `grpc.health.v1.Health/Check`, plaintext or TLS.

    - name: api-health
      grpc: {target: "api.example:443", service: shop.Orders, tls: true}
      expect: {status: SERVING}

grpcio is an optional extra (`pip install 'qos-agent[grpc]'`) so the base install stays light; a
journey using this step without it gets a located error saying so at load. Phases: connect_ms
(channel ready: connect plus TLS, which grpcio does not split) and ttfb_ms (the Check call).
A status other than the expected one is `status`; UNAVAILABLE is `connect`; DEADLINE_EXCEEDED
`timeout`; an unknown service (NOT_FOUND) `status`.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from probes.common import schemas
from probes.common.step_common import host_port, timed_run
from qos_agent.errors import StepFailure
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult
from qos_agent.plugins.context import LoadContext, RunContext
from qos_agent.plugins.steps import Probe

GRPC_KEYS = ("target", "service", "tls", "server_name", "ca_file", "client_cert", "client_key")
EXPECT_KEYS = ("status", "latency")
STATUSES = ("SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN")
INSTALL = "install it: pip install 'qos-agent[grpc]' (grpcio and grpcio-health-checking)"


def grpc_modules() -> tuple[Any, Any, Any]:
    """(grpc, health_pb2, health_pb2_grpc); ImportError when the extra is not installed."""
    grpc = importlib.import_module("grpc")
    grpc_aio = importlib.import_module("grpc.aio")
    pb2 = importlib.import_module("grpc_health.v1.health_pb2")
    stubs = importlib.import_module("grpc_health.v1.health_pb2_grpc")
    del grpc_aio
    return grpc, pb2, stubs


@dataclass(frozen=True, slots=True)
class GrpcSpec:
    target: str
    service: str = ""
    tls: bool = False
    server_name: str = ""
    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""
    status: str = "SERVING"
    latency_s: float | None = None


def _path(r: Reader, key: str, base: Path, problems: Problems) -> str:
    value = r.str(key, "")
    if not value or has_template(value):
        return value
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file() and (n := r.get(key)) is not None:
        problems.add(n.loc, f"'{key}' file not found: {path}", "give a PEM file's path (relative to journeys.yaml)")
    return str(path)


def parse_grpc(step: Node, problems: Problems, load: LoadContext) -> GrpcSpec:
    status, latency = "SERVING", None
    en = step.get("expect")
    if en is not None:
        e = Reader(en, problems, EXPECT_KEYS, "expect")
        status = e.str("status", "SERVING").upper()
        if status not in STATUSES and (n := e.get("status")) is not None:
            problems.add(n.loc, f"'status' is {quoted(n.value)}", suggest(status, STATUSES))
            status = "SERVING"
        latency = (e.duration("latency", 0.0) or None) if e.has("latency") else None
    node = step.get("grpc")
    if node is None:
        return GrpcSpec(target="")
    try:
        grpc_modules()
    except ImportError:
        problems.add(step.key_loc("grpc"), "the grpc step needs grpcio, which is not installed", INSTALL)
    r = Reader(node, problems, GRPC_KEYS, "grpc", required=("target",))
    if not r.ok:
        return GrpcSpec(target="")
    target = r.str("target", "")
    tn = r.get("target")
    if target and tn is not None and not has_template(target) and host_port(target, None)[1] is None:
        problems.add(tn.loc, f"'target' is {quoted(target)}, not HOST:PORT", "write target: 127.0.0.1:50051")
    base = load.config_dir
    return GrpcSpec(target=target, service=r.str("service", ""), tls=r.bool("tls", False),
                    server_name=r.str("server_name", ""), ca_file=_path(r, "ca_file", base, problems),
                    client_cert=_path(r, "client_cert", base, problems),
                    client_key=_path(r, "client_key", base, problems), status=status, latency_s=latency)


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


class GrpcProbe(Probe[GrpcSpec]):
    kind: ClassVar[str] = "grpc"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> GrpcSpec:
        return parse_grpc(step, problems, load)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        target = {"type": "string", "pattern": schemas.HOST_PORT, "description": "HOST:PORT"}
        types = {**schemas.COMMON, "target": target, "service": {"type": "string"}}
        expect = {"status": {"enum": list(STATUSES)}, "latency": schemas.DURATION}
        return {"grpc": schemas.obj(GRPC_KEYS, types, required=("target",)),
                "expect": schemas.obj(EXPECT_KEYS, expect)}

    @classmethod
    def provides(cls, spec: Any) -> set[str]:
        return set()

    async def close(self) -> None:
        """Nothing held between runs: each step opens and closes its channel."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: GrpcSpec = step.spec
        stage = ["connect"]

        async def body(result: StepResult) -> None:
            await self._check(spec, step, ctx, stage, result)

        return await timed_run(step, ctx, self.kind, body, lambda: stage[0])

    async def _check(self, spec: GrpcSpec, step: Step, ctx: RunContext, stage: list[str], result: StepResult) -> None:
        try:
            grpc, pb2, stubs = grpc_modules()
        except ImportError:
            raise StepFailure(ErrorClass.INTERNAL, f"grpcio is not installed: {INSTALL}") from None
        target, service = ctx.render(spec.target), ctx.render(spec.service)
        result.url = f"grpc{'s' if spec.tls else ''}://{target}/{service}"
        if spec.tls:
            try:
                creds = grpc.ssl_channel_credentials(root_certificates=_read(ctx.render(spec.ca_file)),
                                                     private_key=_read(ctx.render(spec.client_key)),
                                                     certificate_chain=_read(ctx.render(spec.client_cert)))
            except OSError as exc:
                raise StepFailure(ErrorClass.TLS, f"cannot read ca_file/client_cert: {exc}") from None
            options = [("grpc.ssl_target_name_override", ctx.render(spec.server_name))] if spec.server_name else []
            channel = grpc.aio.secure_channel(target, creds, options=options)
        else:
            channel = grpc.aio.insecure_channel(target)
        async with channel:
            t0 = time.perf_counter_ns()
            try:
                await _ready(grpc, channel, target)
            finally:
                result.phases["connect_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 3)
            stage[0] = "health check"
            t1 = time.perf_counter_ns()
            try:
                response = await stubs.HealthStub(channel).Check(pb2.HealthCheckRequest(service=service),
                                                                  timeout=step.timeout_s)
            except grpc.aio.AioRpcError as exc:
                raise _rpc_failure(grpc, exc, target, service) from None
            finally:
                result.phases["ttfb_ms"] = round((time.perf_counter_ns() - t1) / 1e6, 3)
        status = pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        result.text["grpc_status"] = status
        if status != spec.status:
            raise StepFailure(ErrorClass.STATUS, f"health of {service or 'the server'}: {status}, "
                                                 f"expected {spec.status}")
        elapsed = sum(result.phases.values()) / 1000
        if spec.latency_s is not None and elapsed > spec.latency_s:
            raise StepFailure(ErrorClass.ASSERTION, f"latency {elapsed * 1000:.0f}ms, expected under "
                                                    f"{spec.latency_s * 1000:.0f}ms")


async def _ready(grpc: Any, channel: Any, target: str) -> None:
    """Wait for READY; a TRANSIENT_FAILURE (refused, TLS refused) fails at once instead of retrying."""
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
            raise StepFailure(ErrorClass.CONNECT, f"cannot connect to {target} (channel {state.name})")
        await channel.wait_for_state_change(state)
        state = channel.get_state(try_to_connect=True)


def _rpc_failure(grpc: Any, exc: Any, target: str, service: str) -> StepFailure:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return StepFailure(ErrorClass.TIMEOUT, f"health check of {target} timed out: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return StepFailure(ErrorClass.CONNECT, f"cannot reach {target}: {details}")
    if code == grpc.StatusCode.NOT_FOUND:
        return StepFailure(ErrorClass.STATUS, f"service {quoted(service)} unknown to {target} (NOT_FOUND)")
    return StepFailure(ErrorClass.STATUS, f"health check of {target} failed: {code.name} {details}")
