"""What a browser step measures: navigation timing, web vitals, network and console counts.

Phases (dns/connect/tls/ttfb/transfer) come from the Navigation Timing entry with the HTTP probe's
meaning (`nav_phases`). Vitals come from buffered PerformanceObservers that an init script installs in every document
(FCP from `paint`, LCP's latest candidate, CLS as the sum of shifts without recent input); the
step's end reads them together with the navigation entry, in one `evaluate`. Network counts come
from a CDP session (`Network.*` events carry the bytes on the wire, `encodedDataLength`), console
errors from the page's `console` (type error) and `pageerror` events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import ConsoleMessage, Error, Page

INIT_SCRIPT = """(() => {
  if (window.top !== window || window.__qosVitals) return;
  const v = window.__qosVitals = {fcp: null, lcp: null, cls: 0, obs: []};
  const watch = (type, cb) => {
    try {
      const o = new PerformanceObserver((list) => list.getEntries().forEach(cb));
      o.observe({type, buffered: true});
      v.obs.push([o, cb]);
    } catch (e) {}
  };
  watch('paint', (e) => { if (e.name === 'first-contentful-paint') v.fcp = e.startTime; });
  watch('largest-contentful-paint', (e) => { v.lcp = e.renderTime || e.loadTime || e.startTime; });
  watch('layout-shift', (e) => { if (!e.hadRecentInput) v.cls += e.value; });
})();"""

COLLECT = """() => {
  const v = window.__qosVitals;
  if (v) v.obs.forEach(([o, cb]) => o.takeRecords().forEach(cb));
  const n = performance.getEntriesByType('navigation')[0];
  return {
    fcp: v ? v.fcp : null, lcp: v ? v.lcp : null, cls: v ? v.cls : null,
    nav: n ? {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,
              dns0: n.domainLookupStart, dns1: n.domainLookupEnd, con0: n.connectStart, con1: n.connectEnd,
              tls0: n.secureConnectionStart, req: n.requestStart, res0: n.responseStart,
              res1: n.responseEnd} : null,
  };
}"""

IGNORED_PATHS = ("/favicon.ico",)  # the browser's own fetch, not the page's
MAX_NOTES = 3


@dataclass(slots=True)
class StepCounters:
    """Counts since the step began (reset per step)."""

    requests: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)  # "404 http://..." / "net::ERR_ABORTED http://..."
    console_errors: int = 0
    notes: list[str] = field(default_factory=list)  # the first console / page errors, for messages
    documents: int = 0  # documents loaded (DOMContentLoaded of the main frame)
    document_status: int | None = None
    document_headers: dict[str, str] = field(default_factory=dict)  # the last document's, lower-case


class PageWatch:
    """Listens to one page for the whole run and keeps the current step's counters."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.now = StepCounters()
        self.crashed = False
        self._ignored: set[str] = set()
        self._urls: dict[str, str] = {}
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("domcontentloaded", self._document)
        page.on("crash", self._crash)

    def reset(self) -> StepCounters:
        done, self.now = self.now, StepCounters()
        return done

    async def attach_network(self) -> None:
        cdp = await self.page.context.new_cdp_session(self.page)
        cdp.on("Network.requestWillBeSent", self._request)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)
        await cdp.send("Network.enable")

    # -- events -----------------------------------------------------------------------------
    def _request(self, e: dict[str, Any]) -> None:
        url = str(e.get("request", {}).get("url", ""))
        rid = str(e.get("requestId"))
        if url.split("?", 1)[0].endswith(IGNORED_PATHS):
            self._ignored.add(rid)
            return
        self._urls[rid] = url
        self.now.requests += 1

    def _response(self, e: dict[str, Any]) -> None:
        rid = str(e.get("requestId"))
        if rid in self._ignored:
            return
        resp = e.get("response", {})
        status = int(resp.get("status", 0))
        if e.get("type") == "Document":
            self.now.document_status = status
            self.now.document_headers = {str(k).lower(): str(v) for k, v in (resp.get("headers") or {}).items()}
        if status >= 400:
            self.now.failed.append(f"{status} {resp.get('url', '')}")

    def _finished(self, e: dict[str, Any]) -> None:
        rid = str(e.get("requestId"))
        if rid in self._ignored:
            self._ignored.discard(rid)
            return
        self._urls.pop(rid, None)
        self.now.bytes += int(e.get("encodedDataLength", 0))

    def _failed(self, e: dict[str, Any]) -> None:
        rid = str(e.get("requestId"))
        if rid in self._ignored:
            self._ignored.discard(rid)
            return
        self.now.failed.append(f"{e.get('errorText', 'failed')} {self._urls.pop(rid, '')}".strip())

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and not str(msg.location.get("url", "")).endswith(IGNORED_PATHS):
            # Chromium echoes every failed load as a console error: counted, but the network
            # counters already name it, so it is no note for messages.
            self._note(msg.text, note=not msg.text.startswith("Failed to load resource"))

    def _page_error(self, error: Error) -> None:
        self._note(f"{error.name}: {error.message}" if error.name else error.message)

    def _note(self, text: str, note: bool = True) -> None:
        self.now.console_errors += 1
        if note and len(self.now.notes) < MAX_NOTES:
            self.now.notes.append(text.splitlines()[0][:160] if text else "")

    def _document(self, page: Page) -> None:
        self.now.documents += 1

    def _crash(self, page: Page) -> None:
        self.crashed = True


async def collect(page: Page, counters: StepCounters, phases: dict[str, float], metrics: dict[str, float]) -> None:
    """Fill phases/metrics for the step just run; vitals only when the step loaded a document."""
    metrics["requests"] = counters.requests
    metrics["failed_requests"] = len(counters.failed)
    metrics["console_errors"] = counters.console_errors
    if not counters.documents:
        return
    try:
        v = await page.evaluate(COLLECT)
    except Error:
        return  # the page is gone (crash, closed): counts only
    nav = v.get("nav") or {}
    phases.update(nav_phases(nav))
    for name, value, target in (("dom_content_loaded_ms", nav.get("dcl"), metrics),
                                ("load_ms", nav.get("load"), metrics),
                                ("fcp_ms", v.get("fcp"), metrics),
                                ("lcp_ms", v.get("lcp"), metrics)):
        if isinstance(value, int | float) and value > 0:
            target[name] = round(float(value), 3)
    if isinstance(v.get("cls"), int | float):
        metrics["cls"] = round(float(v["cls"]), 4)


def nav_phases(nav: dict[str, Any]) -> dict[str, float]:
    """The document request's phases with the HTTP probe's meaning (Navigation Timing level 2).

    dns = domainLookupEnd - domainLookupStart; connect = TCP only (connectStart until
    secureConnectionStart, or connectEnd without TLS); tls = secureConnectionStart..connectEnd;
    ttfb = requestStart..responseStart (request sent -> first byte, redirects, DNS, connect and TLS
    not included); transfer = responseStart..responseEnd. A reused connection gives 0 for dns,
    connect and tls, as for HTTP steps; a missing entry (no document loaded) gives nothing.
    """

    def t(key: str) -> float:
        value = nav.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    if t("res0") <= 0 or t("req") <= 0:
        return {}
    tls0 = t("tls0")
    tcp_end = tls0 if tls0 > 0 else t("con1")
    return {
        "dns_ms": round(max(0.0, t("dns1") - t("dns0")), 3),
        "connect_ms": round(max(0.0, tcp_end - t("con0")), 3),
        "tls_ms": round(max(0.0, t("con1") - tls0), 3) if tls0 > 0 else 0.0,
        "ttfb_ms": round(max(0.0, t("res0") - t("req")), 3),
        "transfer_ms": round(max(0.0, t("res1") - t("res0")), 3),
    }
