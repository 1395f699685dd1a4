"""`validate --format json`: problems and warnings as one JSON document, each located the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence

from qos_agent.language.nodes import Problem
from qos_agent.model import Location


def problems_json(valid: bool, problems: Sequence[Problem], warnings: Sequence[str]) -> str:
    def item(loc: Location, message: str) -> dict[str, object]:
        return {"file": loc.file, "line": loc.line, "column": loc.col, "message": message}

    return json.dumps({"valid": valid,
                       "problems": [item(p.loc, str(p).removeprefix(f"{p.loc}: ")) for p in problems],
                       "warnings": [located(w) for w in warnings]}, indent=2, ensure_ascii=False)


def located(warning: str) -> dict[str, object]:
    """A located warning's text ('FILE:LINE:COL: what') as the same object as a problem."""
    head, sep, message = warning.partition(": ")
    file, _, rest = head.rpartition(":")
    file, _, line = file.rpartition(":")
    if sep and line.isdigit() and rest.isdigit():
        return {"file": file, "line": int(line), "column": int(rest), "message": message}
    return {"file": "", "line": 0, "column": 0, "message": warning}
