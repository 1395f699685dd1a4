"""The `grpc` step kind as the loader and the schema see it: the standard health check,
`grpc.health.v1.Health/Check`, plaintext or TLS.

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

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from probes.common import schemas
from probes.common.ports import host_port
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.safety import check_headers
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.model import Sends
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import DURATION, STR_MAP, obj
from qos_agent.plugins.steps import StepKind, Yields

GRPC_KEYS = ("target", "service", "tls", "server_name", "ca_file", "client_cert", "client_key", "metadata")
EXPECT_KEYS = ("status", "latency")
STATUSES = ("SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN")
INSTALL = "install it: pip install 'qos-agent[grpc]' (grpcio and grpcio-health-checking)"


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
    metadata: tuple[tuple[str, str], ...] = ()  # sent with the call (lower-case keys, as gRPC wants)


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
    if importlib.util.find_spec("grpc") is None or importlib.util.find_spec("grpc_health") is None:
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
                    client_key=_path(r, "client_key", base, problems), status=status, latency_s=latency,
                    metadata=_metadata(r, problems))


def _metadata(r: Reader, problems: Problems) -> tuple[tuple[str, str], ...]:
    """`metadata: {authorization: "Bearer {{ token }}"}`: gRPC wants lower-case ASCII keys."""
    check_headers(r.get("metadata"), problems)
    pairs = r.str_map("metadata")
    node = r.get("metadata")
    for key in pairs:
        if (key != key.lower() or not key.isascii() or key.startswith(":")) and node is not None:
            problems.add(node.key_loc(key), f"metadata key {quoted(key)} must be lower-case ASCII",
                         f"write {key.lower().lstrip(':')}")
    return tuple((k.lower(), v) for k, v in pairs.items())


class GrpcKind(StepKind[GrpcSpec]):
    kind: ClassVar[str] = "grpc"
    runtime: ClassVar[str] = "probes.grpc.probe:GrpcProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})
    yields: ClassVar[Yields] = Yields(fields=("grpc_status",))

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> GrpcSpec:
        return parse_grpc(step, problems, load)

    @classmethod
    def sends(cls, spec: GrpcSpec) -> Sends:
        return Sends(headers=spec.metadata)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        target = {"type": "string", "pattern": schemas.HOST_PORT, "description": "HOST:PORT"}
        types = {**schemas.COMMON, "target": target, "service": {"type": "string"}, "metadata": STR_MAP}
        expect = {"status": {"enum": list(STATUSES)}, "latency": DURATION}
        return {"grpc": obj(GRPC_KEYS, types, required=("target",)),
                "expect": obj(EXPECT_KEYS, expect)}
