"""What the network step kinds (tls, tcp, dns, websocket, grpc) share: ports and host:port parsing,
and one way to say "this failed, and N more"."""

from __future__ import annotations

from qos_agent.errors import StepFailure
from qos_agent.language.nodes import Problems, Reader
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass
from qos_agent.plugins.context import RunContext


def parse_port(r: Reader, problems: Problems, default: int | None) -> str:
    """A port 1..65535 (or a `{{ }}` template, checked when rendered)."""
    n = r.get("port")
    if n is None:
        return str(default) if default is not None else ""
    value = n.value
    if isinstance(value, str) and has_template(value):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        problems.add(n.loc, f"'port' must be a port number 1..65535, not {quoted(n.value)}", "write port: 443")
        return str(default or "")
    return str(value)


def render_port(ctx: RunContext, text: str) -> int:
    value = ctx.render(text).strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise StepFailure(ErrorClass.INTERNAL, f"port {quoted(value[:20])} after rendering is not a port number")
    return int(value)


def host_port(host: str, default_port: int | None) -> tuple[str, int | None]:
    """`host:port` / `[v6]:port` / `host`."""
    if host.startswith("["):
        inner, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return inner, int(port) if port.isdigit() else default_port
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, int(port) if port.isdigit() else default_port
    return host, default_port


def more(failures: list[str]) -> str:
    return failures[0] + (f" (+{len(failures) - 1} more)" if len(failures) > 1 else "")
