"""The v2 exporter (influxdb-client's async write API) against real VictoriaMetrics (/api/v2/write)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qos_agent.model import Point
from tests.support.influx import FaultProxy, VictoriaServer, journey_points, make_exporter, needs_victoria, victoria
from tests.support.waiting import until

pytestmark = [needs_victoria]
__all__ = ["victoria"]  # the fixture, imported for pytest

V2 = {"api": "v2", "org": "qos", "bucket": "qos", "token": "t0ken"}


async def test_v2_points_read_back_with_exact_tags_values_and_times(victoria: VictoriaServer,
                                                                    tmp_path: Path) -> None:
    exp = make_exporter(tmp_path, {"url": victoria.url, **V2})
    points = journey_points(200)
    t = points[0].time_ms
    odd = Point("step", (("journey", "sign up, pay=now"), ("step", 'say "hi"'), ("region", "eu west")),
                (("duration_ms", 12.5), ("status_code", 200), ("url", "http://x/a b?c=d,e")), t)
    await exp.write([*points, odd])
    await until(lambda: exp.stats.depth == 0, limit_s=15)
    await exp.close()
    assert exp.stats.exported == 201 and exp.stats.export_errors == 0
    series = await victoria.wait_export('{__name__="journey_duration_ms"}', 200)
    assert len(series) == 1
    assert series[0]["metric"] == {"__name__": "journey_duration_ms", "agent": "t1", "journey": "checkout",
                                   "kind": "journey", "region": "test"}
    assert series[0]["timestamps"] == [p.time_ms for p in points]
    assert series[0]["values"] == [p.field("duration_ms") for p in points]
    step = await victoria.wait_export('{__name__=~"step_(duration_ms|status_code)"}', 2)
    by_name = {s["metric"]["__name__"]: s for s in step}
    assert by_name["step_duration_ms"]["metric"]["journey"] == "sign up, pay=now"
    assert by_name["step_duration_ms"]["metric"]["step"] == 'say "hi"'
    assert by_name["step_duration_ms"]["values"] == [12.5] and by_name["step_status_code"]["values"] == [200]


async def test_bad_token_is_one_clear_error_and_points_stay_spooled(victoria: VictoriaServer, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    proxy = FaultProxy(victoria.url)
    await proxy.start()
    try:
        proxy.sticky = ("status", 401, '{"code":"unauthorized","message":"unauthorized access"}', {})
        exp = make_exporter(tmp_path, {"url": proxy.url, **V2})
        with caplog.at_level(logging.WARNING):
            await exp.write(journey_points(100))
            await until(lambda: exp.stats.export_errors >= 3, limit_s=15)
            assert exp.stats.depth == 100 and exp.stats.exported == 0
            assert "401" in exp.stats.last_error and "unauthorized access" in exp.stats.last_error
            proxy.sticky = None  # the token is fixed
            await until(lambda: exp.stats.depth == 0, limit_s=15)
        await exp.close()
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "check the token" in errors[0] and "points stay spooled" in errors[0]
        series = await victoria.wait_export('{__name__="journey_duration_ms"}', 100)
        assert sum(len(s["values"]) for s in series) == 100
    finally:
        await proxy.close()


async def test_v2_server_errors_are_retried(victoria: VictoriaServer, tmp_path: Path) -> None:
    proxy = FaultProxy(victoria.url)
    await proxy.start()
    try:
        proxy.faults = [("status", 503, "busy", {"Retry-After": "0.2"}), ("status", 500, "boom", {})]
        exp = make_exporter(tmp_path, {"url": proxy.url, **V2}, parallel=1)
        await exp.write(journey_points(50))
        await until(lambda: exp.stats.depth == 0, limit_s=15)
        await exp.close()
        assert exp.stats.export_errors == 2 and exp.stats.exported == 50
    finally:
        await proxy.close()
