"""Browser steps as the docs promise: `extract:` feeds later steps, HTTP-like phases, `mask:` in screenshots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qos_agent.config.loader import load_config
from qos_agent.model import Config, JourneyResult, Outcome
from qos_agent.runloop.runner import Runner
from tests.support import browser as support

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

site = support.site  # the shared fixture, used by name

JOURNEYS = """\
version: 1
agent: {{state_dir: state}}
variables: {{base: "{base}"}}
defaults: {{timeout: 30s}}  # a busy machine may take seconds to launch Chromium
journeys:
  - name: extract
    steps:
      - name: set_cookie
        http: {{url: "{{{{ base }}}}/set-cookie"}}
      - name: page
        browser:
          - goto: "{{{{ base }}}}/form"
        extract:
          order: {{regex: 'id="order">\\s*([^<]+?)\\s*<'}}
          kind: {{header: content-type}}
      - name: json
        browser: [{{goto: "{{{{ base }}}}/echo-cookies"}}]
        extract: {{cookie_seen: {{json: "$.from_http"}}, jar: {{cookie: from_http}}}}
      - name: use
        http: {{url: "{{{{ base }}}}/echo-cookies", params: {{o: "{{{{ order }}}}", k: "{{{{ kind }}}}",
               c: "{{{{ cookie_seen }}}}-{{{{ jar }}}}"}}}}
  - name: missing
    steps:
      - name: page
        browser: [{{goto: "{{{{ base }}}}/tiny"}}]
        extract: {{nothing: {{regex: "no such text"}}}}
  - name: shots
    steps:
      - name: plain
        browser: [{{goto: "{{{{ base }}}}/tiny"}}, {{screenshot: plain}}]
      - name: masked
        browser: [{{goto: "{{{{ base }}}}/tiny"}}, {{screenshot: masked}}]
        mask: ["#t"]
  - name: phases
    steps:
      - name: page
        browser: [{{goto: "{{{{ base }}}}/tiny"}}]
"""


def config(tmp_path: Path, base: str) -> Config:
    (tmp_path / "journeys.yaml").write_text(JOURNEYS.format(base=base))
    return load_config(tmp_path / "journeys.yaml", env={})


async def run(cfg: Config, name: str) -> JourneyResult:
    runner = Runner(cfg)
    journey = cfg.journey(name)
    assert journey is not None
    try:
        (result,) = await runner.run(journey)
    finally:
        await runner.close()
    return result


async def test_browser_extract_feeds_later_steps(tmp_path: Path, site: str) -> None:
    result = await run(config(tmp_path, site), "extract")
    assert result.outcome is Outcome.PASSED, [(s.step, s.error_message) for s in result.steps]
    assert result.steps[1].extracted == {"order": "o-42", "kind": "text/html; charset=utf-8"}
    assert result.steps[2].extracted == {"cookie_seen": "h1", "jar": "h1"}
    assert result.steps[3].url == f"{site}/echo-cookies?o=o-42&k=text/html%3B+charset%3Dutf-8&c=h1-h1"


async def test_a_browser_extract_that_finds_nothing_fails_as_extract(tmp_path: Path, site: str) -> None:
    result = await run(config(tmp_path, site), "missing")
    (step,) = result.steps
    assert step.outcome is Outcome.FAILED and str(step.error) == "extract", step.error_message
    assert "no such text" in step.error_message


async def test_mask_paints_over_the_selectors_in_screenshots(tmp_path: Path, site: str) -> None:
    result = await run(config(tmp_path, site), "shots")
    assert result.outcome is Outcome.PASSED, [(s.step, s.error_message) for s in result.steps]
    plain = Path(result.steps[0].artifacts["screenshot_plain"]).read_bytes()
    masked = Path(result.steps[1].artifacts["screenshot_masked"]).read_bytes()
    again = await run(config(tmp_path, site), "shots")
    plain_again = Path(again.steps[0].artifacts["screenshot_plain"]).read_bytes()
    assert hashlib.sha256(plain).digest() == hashlib.sha256(plain_again).digest()  # the page renders the same
    assert plain != masked  # so the difference is the mask over #t


async def test_browser_steps_report_http_phases_with_the_same_meaning(tmp_path: Path, site: str) -> None:
    result = await run(config(tmp_path, site), "phases")
    (step,) = result.steps
    assert step.outcome is Outcome.PASSED, step.error_message
    phases = step.phases
    assert set(phases) == {"dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "transfer_ms"}, phases
    assert phases["tls_ms"] == 0 and phases["dns_ms"] == 0  # plain http to an IP literal
    assert phases["connect_ms"] >= 0  # loopback connects within Navigation Timing's resolution
    # request sent -> first byte, connect not included: the sum of the phases fits in the step
    assert 0 < phases["ttfb_ms"] < step.duration_ms
    assert sum(phases.values()) < step.duration_ms
