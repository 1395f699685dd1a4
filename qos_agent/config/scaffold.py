"""`qos-agent init URL`: a first journeys.yaml for a newcomer's own service, commented, that
validates and passes `check` against the URL it was written for.

It looks at the URL once (a GET of the page and of `/health`, a few seconds at most) so the uptime
journey checks what exists and the expectations match what the service answers; when the URL does
not answer, the file is still written, with the generic expectations, and the CLI says so.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0
_TITLE = re.compile(rb"<title[^>]*>([^<]{1,120})</title>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Seen:
    """What the URL answered when init looked (None: it did not answer)."""

    status: int | None = None
    content_type: str = ""
    health_status: int | None = None


def _get(url: str) -> tuple[int, str] | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}) if _loopback(url) else
                                         urllib.request.ProxyHandler())
    request = urllib.request.Request(url, headers={"User-Agent": "qos-agent init"})
    try:
        with opener.open(request, timeout=PROBE_TIMEOUT_S) as r:
            r.read(64 * 1024)
            return r.status, r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", "") if e.headers else ""
    except (OSError, ValueError):
        return None


def _loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def look(base: str) -> Seen:
    page, health = _get(base + "/"), _get(base + "/health")
    return Seen(status=page[0] if page else None, content_type=page[1] if page else "",
                health_status=health[0] if health else None)


def base_of(url: str) -> str:
    """scheme://host[:port][/path] without a trailing slash; ValueError when it is not an http(s) URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL (write e.g. https://shop.example)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def render(base: str, seen: Seen) -> str:
    """The commented journeys.yaml for `base`, shaped by what it answered."""
    health_path = "/health" if seen.health_status == 200 else "/"
    status = seen.status if seen.status is not None and 200 <= seen.status < 300 else None
    expect_status = f"status: {status}, " if status else ""
    html = "html" in seen.content_type
    content = "{content-type: {contains: html}}" if html else "{content-type: {exists: true}}"
    return f"""\
# journeys.yaml for {base}, written by `qos-agent init`. Edit it, then:
#   qos-agent validate          every mistake at once, located (FILE:LINE:COL)
#   qos-agent check             each journey once: exit 0 when all pass (CI runs this)
#   qos-agent run               the agent: every journey on its interval, until Ctrl-C
#   qos-agent report            what the embedded store holds: success, p95, disruptions
# The whole language is docs/journeys.md; `qos-agent schema` gives your editor completion.
version: 1
agent:
  region: ${{QOS_REGION:-local}}       # where this agent measures from (a tag on every point)
  interval: 60s                     # how often each journey runs (per journey: interval: 30s)
  state_dir: .qos-agent             # the embedded SQLite store, spools, screenshots
variables:
  base: ${{BASE_URL:-{base}}}   # BASE_URL=https://staging... points it elsewhere
# No `exporters:`: results go to the embedded SQLite store, which `report` reads. Add InfluxDB,
# Prometheus remote write, Alertmanager or a webhook here (docs/journeys.md, "exporters:").
journeys:
  # The plain health check. A disruption of the journeys below is compared with it: "up, but not
  # working for these customers" is what the agent exists to show.
  - name: uptime
    kind: uptime
    steps:
      - name: health
        http: {{url: "{{{{ base }}}}{health_path}"}}
        expect: {{status: 200}}

  # An API journey: what a customer's app calls, in order, as one conversation (cookies and
  # values flow from step to step: `extract:` a token, send it as "Bearer {{{{ token }}}}").
  - name: home
    slo: {{success: 99%, latency: 2s}}   # the objective its disruptions are judged against
    steps:
      - name: home
        http: {{url: "{{{{ base }}}}/"}}
        expect: {{{expect_status}latency: 2s, headers: {content}}}

  # A browser journey: real headless Chromium, measured as the customer sees the page (first
  # contentful paint, largest contentful paint...). A failed step leaves a screenshot and a trace.
  - name: home-page
    steps:
      - name: open
        browser:
          - goto: "{{{{ base }}}}/"
          - wait_for: body
"""


def write_journeys(url: str, target: Path, force: bool) -> tuple[Path, Seen]:
    """Write the file; FileExistsError when it exists and `force` is not given."""
    base = base_of(url)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists (add --force to overwrite it)")
    seen = look(base)
    target.write_text(render(base, seen))
    return target, seen
