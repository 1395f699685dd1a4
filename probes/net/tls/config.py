"""The `tls` step kind as the loader and the schema see it: connect, handshake, judge the served
certificate (expiry, chain, host name). The handshake itself is probes/net/tls/probe.py.

    - name: cert
      tls: {host: shop.example, port: 443, server_name: shop.example, verify: true, ca_file: ca.pem}
      expect: {cert_days_left: 14, tls_version_min: "1.2", hostname_valid: true, chain_valid: true}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from probes.common import schemas
from probes.common.netspec import NetSpec, parse_net
from probes.common.ports import parse_port
from probes.common.tls_expect import EXPECT_KEYS, TlsExpect, parse_tls_expect
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import obj
from qos_agent.plugins.steps import StepKind, Yields

TLS_KEYS = ("host", "port", "server_name", "verify", "ca_file", "client_cert", "client_key", "ip_version")
CERT_FIELDS = ("cert_subject", "cert_issuer", "tls_version", "tls_cipher")  # what `field` extraction reads


@dataclass(frozen=True, slots=True)
class TlsSpec:
    host: str
    port: str = "443"
    server_name: str = ""
    verify: bool = True
    net: NetSpec = field(default_factory=NetSpec)
    expect: TlsExpect = field(default_factory=TlsExpect)


class TlsKind(StepKind[TlsSpec]):
    kind: ClassVar[str] = "tls"
    runtime: ClassVar[str] = "probes.net.tls.probe:TlsProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})
    yields: ClassVar[Yields] = Yields(fields=CERT_FIELDS)

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> TlsSpec:
        expect = parse_tls_expect(step.get("expect"), problems)
        r = Reader.section(step.get("tls"), problems, TLS_KEYS, "tls", required=("host",))
        if r is None:
            return TlsSpec(host="", expect=expect)
        return TlsSpec(host=r.str("host", ""), port=parse_port(r, problems, 443), server_name=r.str("server_name", ""),
                       verify=r.bool("verify", True), net=parse_net(r, problems, load.config_dir), expect=expect)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return {"tls": obj(TLS_KEYS, schemas.COMMON, required=("host",)), "expect": schemas.tls_expect(EXPECT_KEYS)}
