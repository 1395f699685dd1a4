"""Runs `grpc` steps (probes/grpc/config.py): the standard health check, `grpc.health.v1.Health/Check`,
plaintext or TLS; grpcio is imported here only, when a journey uses the kind.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from probes.grpc.config import INSTALL, GrpcSpec
from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.measure import check_latency, measured


def grpc_modules() -> tuple[Any, Any, Any]:
    """(grpc, health_pb2, health_pb2_grpc); ImportError when the extra is not installed."""
    grpc = importlib.import_module("grpc")
    grpc_aio = importlib.import_module("grpc.aio")
    pb2 = importlib.import_module("grpc_health.v1.health_pb2")
    stubs = importlib.import_module("grpc_health.v1.health_pb2_grpc")
    del grpc_aio
    return grpc, pb2, stubs


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


class GrpcProbe(Probe):
    async def close(self) -> None:
        """Nothing held between runs: each step opens and closes its channel."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: GrpcSpec = step.spec
        stage = ["connect"]

        async def body(result: StepResult) -> None:
            await self._check(spec, step, ctx, stage, result)

        return await measured(step, "grpc", body, lambda: stage[0])

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
                metadata = [(k, ctx.render(v)) for k, v in spec.metadata]
                if (traceparent := ctx.traceparent_header()) is not None and "traceparent" not in dict(metadata):
                    metadata.append(("traceparent", traceparent))
                response = await stubs.HealthStub(channel).Check(pb2.HealthCheckRequest(service=service),
                                                                  timeout=step.timeout_s,
                                                                  metadata=tuple(metadata) or None)
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
        check_latency(elapsed, spec.latency_s)


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
