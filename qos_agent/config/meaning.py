"""What a journey means, apart from how it is written: the digest a reload compares.

A reload keeps a journey's schedule phase when the journey is unchanged. "Unchanged" is judged on
the YAML data, not on the text or on the parsed objects: comments, blank lines, indentation, the
order of a mapping's keys and the line a journey starts on are marks, not meaning (YAML mappings
are unordered), while a list's order (steps, actions) is meaning. The parsed objects cannot be
compared for this: they carry locations, and keep mapping-derived tuples (headers, variables,
`expect:` conditions) in the order they were written.

The digest covers everything a journey is built from: its own mapping (after `${VAR}` expansion),
the agent's default interval, `defaults:`, the top-level `variables:` and the file's folder
(relative paths). Anything else that changed what runs would still run after the reload, since the
scheduler swaps in the new objects either way; the digest only decides whether the timing restarts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(value: Any) -> str:
    """JSON with sorted keys: equal for equal YAML data, whatever its key order or layout."""
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


def journey_digest(shared: str, journey_data: Any) -> str:
    """sha256 of what a journey is built from (`shared`: `canonical` of the file-wide inputs)."""
    return hashlib.sha256(f"{shared}\n{canonical(journey_data)}".encode("utf-8", "surrogatepass")).hexdigest()
