"""`{{ name }}` templates: names are checked at load, values substituted per run."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping

TEMPLATE = re.compile(r"\{\{\s*(\$?[A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")

# Names that need no declaration: fresh per use, for journeys that create things (sign-ups).
BUILTINS: dict[str, Callable[[], str]] = {
    "$uuid": lambda: str(uuid.uuid4()),
    "$timestamp": lambda: str(int(time.time())),
    "$timestamp_ms": lambda: str(time.time_ns() // 1_000_000),
}


def names_in(text: str) -> list[str]:
    """The variable names a string refers to, builtins left out."""
    return [m.group(1) for m in TEMPLATE.finditer(text) if m.group(1) not in BUILTINS]


def has_template(text: str) -> bool:
    return "{{" in text and TEMPLATE.search(text) is not None


def render(text: str, variables: Mapping[str, str]) -> str:
    """Substitute every `{{ name }}`; an unknown name stays as written (validation forbids it)."""
    if "{{" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in BUILTINS:
            return BUILTINS[name]()
        return variables.get(name, m.group(0))

    return TEMPLATE.sub(sub, text)


def render_deep(value: object, variables: Mapping[str, str]) -> object:
    """Render every string inside nested dicts and lists (JSON bodies, headers)."""
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, dict):
        return {render(str(k), variables): render_deep(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [render_deep(v, variables) for v in value]
    return value
