"""docs/demo.md stays true: every `--fault` spec and every `/admin/faults` body it shows is accepted
by the real demo service, and a rule does what the table says (protected paths, one region)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import aiohttp

from qos_agent.demo.faults import parse_fault_spec
from tests.support.demo import DemoService, demo_service

__all__ = ["demo_service"]  # the fixture, imported for pytest

DOC = (Path(__file__).resolve().parents[1] / "docs" / "demo.md").read_text()


def test_every_fault_spec_in_the_doc_parses() -> None:
    specs = re.findall(r"--fault (\S*=\S+)", DOC)
    assert len(specs) >= 3
    for spec in specs:
        parse_fault_spec(spec)


async def test_every_admin_body_in_the_doc_is_accepted(demo_service: DemoService) -> None:
    bodies = [shlex.split(m)[0] for m in re.findall(r"-d ('[^']+')", DOC)]
    assert len(bodies) >= 3
    async with aiohttp.ClientSession(trust_env=False) as http:
        for body in bodies:
            async with http.post(demo_service.url + "/admin/faults", data=body,
                                 headers={"Content-Type": "application/json"}) as r:
                assert r.status == 201, (body, await r.text())
                created = (await r.json())["faults"]
            assert len(created) == (len(json.loads(body)) if body.startswith("[") else 1)
        async with http.get(demo_service.url + "/health", headers={"X-QoS-Region": "ap-south"}) as r:
            assert r.status == 200  # protected: the doc's rules never reach /health
        async with http.get(demo_service.url + "/", headers={"X-QoS-Region": "ap-south"}) as r:
            assert r.status == 503  # the "/" rule of the walk-through, for ap-south...
        async with http.get(demo_service.url + "/", headers={"X-QoS-Region": "eu-west"}) as r:
            assert r.status == 200  # ...and for ap-south only
        async with http.delete(demo_service.url + "/admin/faults") as r:
            assert r.status == 200 and (await r.json())["cleared"] == 4
