"""One send policy for every network sink: what an HTTP answer means for the records it carried.

Every sink (influxdb, prometheus_remote_write, alertmanager, webhook, a third party's) hands its
answer here, so they agree on what follows; the core's delivery loop then acts on the exception:

- 2xx: accepted. The core acknowledges the records.
- 401, 403, 404, 407, 410 and 3xx: wait for a human (credentials or URL are wrong; redirects are
  not followed). The core keeps the records and retries, logging the `fix` once.
- 408, 425, 429, 5xx, 1xx and unreachable: retry. The core keeps the records and backs off, or
  waits what `Retry-After` says (delta-seconds or an HTTP-date).
- any other 4xx: dead letter. The core bisects the batch down to the refused records.

A wrong token or URL must not send every record to the dead letter (they would be lost when a
human fixes it), and a record the destination will never accept must not block the ones behind it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from enum import StrEnum

from qos_agent.errors import DeliveryError, PermanentError, RetryableError

HUMAN = frozenset({401, 403, 404, 407, 410})  # credentials or URL wrong: wait until someone fixes them
RETRY_4XX = frozenset({408, 425, 429})  # the request may succeed as it is, later
HUMAN_FIX = "check the URL and the credentials; the records wait until it works"
BODY_SHOWN = 300  # characters of the destination's answer kept in a message


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    RETRY = "retry"
    HUMAN = "human"  # retried too, with a fix in the log
    DEAD = "dead_letter"


def verdict(status: int) -> Verdict:
    """What an HTTP status means for the records a request carried."""
    if 200 <= status < 300:
        return Verdict.ACCEPTED
    if status in HUMAN or 300 <= status < 400:
        return Verdict.HUMAN
    if 400 <= status < 500 and status not in RETRY_4XX:
        return Verdict.DEAD
    return Verdict.RETRY


def retry_after_seconds(value: str | None, now_s: float | None = None) -> float | None:
    """`Retry-After` in seconds, from delta-seconds or an HTTP-date (RFC 9110 10.2.3); None if absent or bad."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)  # not in the RFC, but some servers send "1.5"
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


def error_for(status: int, body: str, headers: Mapping[str, str], where: str,
              fix: str = HUMAN_FIX) -> DeliveryError | None:
    """None when the answer accepted the records, else the exception the core acts on.

    `where` names the destination as it may be shown (a webhook's URL without its secret path);
    `fix` is what a human must do when the answer says the credentials or the URL are wrong."""
    found = verdict(status)
    if found is Verdict.ACCEPTED:
        return None
    text = f"HTTP {status} from {where}" + (f": {' '.join(body.split())[:BODY_SHOWN]}" if body.strip() else "")
    if found is Verdict.HUMAN:
        return RetryableError(text, fix=fix)
    if found is Verdict.DEAD:
        return PermanentError(text)
    lowered = {k.lower(): v for k, v in headers.items()}
    return RetryableError(text, retry_after=retry_after_seconds(lowered.get("retry-after")))


def raise_for(status: int, body: str, headers: Mapping[str, str], where: str, fix: str = HUMAN_FIX) -> None:
    """Return if the answer accepted the records; else raise what the core must do with them."""
    err = error_for(status, body, headers, where, fix)
    if err is not None:
        raise err
