"""What the network step kinds (tls, tcp, dns, websocket, grpc) share: ports, timing, failures.

Each of them runs one exchange under the step's timeout and turns every failure into a classified
StepResult: `StepFailure` carries its class, a timeout becomes `timeout` naming the stage reached,
anything else is `internal`. `run` never raises except for cancellation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from qos_agent.errors import StepFailure
from qos_agent.language.nodes import Problems, Reader
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Outcome, Step, StepResult
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


Body = Callable[[StepResult], Awaitable[None]]


async def timed_run(step: Step, ctx: RunContext, kind: str, body: Body, stage: Callable[[], str]) -> StepResult:
    """Run `body(result)` under the step's timeout; classify what went wrong; redact the message."""
    result = StepResult(step=step.name, probe=kind, outcome=Outcome.PASSED, start_ms=time.time_ns() // 1_000_000)
    t0 = time.perf_counter_ns()
    try:
        async with asyncio.timeout(step.timeout_s):
            await body(result)
    except StepFailure as exc:
        result.outcome, result.error, result.error_message = Outcome.FAILED, exc.error, exc.message
    except TimeoutError:
        result.outcome, result.error = Outcome.FAILED, ErrorClass.TIMEOUT
        result.error_message = f"timed out after {step.timeout_s:g}s ({stage()})"
    except Exception as exc:
        result.outcome, result.error = Outcome.FAILED, ErrorClass.INTERNAL
        result.error_message = f"{type(exc).__name__}: {exc}"
    result.duration_ms = round((time.perf_counter_ns() - t0) / 1e6, 3)
    result.error_message = ctx.redact(result.error_message)
    result.url = ctx.redact(result.url)
    result.text = {k: ctx.redact(v) for k, v in result.text.items()}
    return result
