"""Secrets learnt from what every step sends, and masked over the whole step result, in the core.

A kind declares what its steps send that may carry credentials (`StepKind.sends`); at load the
loader keeps only what may hold one (`learn_sources`: sensitive header names, URLs with userinfo,
credentials) and learns literal values at once; per run the runner renders the rest (`learn`),
learns the run's cookies after each step (`learn_cookies`), and masks every string of the result
(`mask_result`: message, URL, text, artifact file names, the body excerpt). A kind therefore gets
masking without a line of its own, however its probe renders or reports what it sent.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from qos_agent.language.secrets import MASK, SENSITIVE_HEADERS, Redactor, header_secrets
from qos_agent.language.templating import has_template, render
from qos_agent.language.text import excerpt, one_line
from qos_agent.model import Sends, StepResult
from qos_agent.plugins.context import RunContext

Source = tuple[str, str, str]  # ("header", name, template) | ("url", "", template) | ("credential", "", template)
MASKED_NAME = "masked"  # what a secret in an artifact's file name becomes (no '*' in file names)


def userinfo_secrets(url: str) -> list[str]:
    """The secrets of a URL's userinfo: the password, `user:password`, and the Basic credentials a
    client sends from it (base64), so an echo of the Authorization header is masked too."""
    if "@" not in url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if parts.password is None and parts.username is None:
        return []
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    pair = f"{user}:{password}"
    out = [pair, base64.b64encode(pair.encode()).decode()]
    if password:
        out.append(password)
    return out


def secrets_of(kind: str, name: str, value: str) -> list[str]:
    """What to mask of one rendered source."""
    if kind == "header":
        return header_secrets(name, value)
    if kind == "url":
        return userinfo_secrets(value)
    return [value] if value else []


def learn_sources(sends: Sends, journey_headers: Iterable[tuple[str, str]],
                  variables: Mapping[str, str]) -> tuple[tuple[Source, ...], list[str]]:
    """(sources to render per run, secrets known now): only what may hold a credential is kept,
    so a step without auth costs the runner nothing. `variables` are the journey's static values:
    a URL whose `{{ base }}` carries userinfo is kept for its run-time value."""
    headers = (*journey_headers, *sends.headers) if sends.journey_headers else sends.headers
    candidates: list[Source] = [("header", name, value) for name, value in headers
                                if name.lower() in SENSITIVE_HEADERS]
    candidates += [("url", "", url) for url in sends.urls if "@" in render(url, variables)]
    candidates += [("credential", "", value) for value in sends.credentials]
    dynamic: list[Source] = []
    known: list[str] = []
    for source in candidates:
        if has_template(source[2]):
            dynamic.append(source)
        else:
            known += secrets_of(*source)
    return tuple(dynamic), known


def learn(sources: Iterable[Source], ctx: RunContext) -> None:
    """Render a step's credential-bearing values for this run and learn their secrets."""
    for kind, name, template in sources:
        ctx.redact.add(*secrets_of(kind, name, ctx.render(template)))


def learn_cookies(ctx: RunContext) -> None:
    """Cookie values (sent or set) are masked always, like Authorization headers."""
    if len(ctx.cookie_jar):
        ctx.redact.add(*(m.value for m in ctx.cookie_jar))


def mask_result(result: StepResult, redact: Redactor) -> None:
    """Mask every string a step result carries; an artifact whose file name holds a secret is renamed."""
    if result.error_message:
        # One line: logs, tables and line protocol (VictoriaMetrics splits on newlines) stay readable.
        result.error_message = one_line(" ".join(redact(result.error_message).split()))
    if result.url:
        result.url = redact(result.url)
    if result.text:
        result.text = {k: redact(v) for k, v in result.text.items()}
    if result.body_excerpt:  # masked before it is cut: a secret cut in half would slip past the mask
        result.body_excerpt = excerpt(redact(result.body_excerpt))
    if result.artifacts:  # keys become field names (`screenshot_NAME`): a secret there is masked too
        result.artifacts = {redact(k).replace(MASK, MASKED_NAME): _masked_file(path, redact)
                            for k, path in result.artifacts.items()}


def masked_name(name: str, redact: Redactor) -> str:
    """A name made at run time (a script's sub-step) with no secret in it: it becomes a tag."""
    return redact(name).replace(MASK, MASKED_NAME)


def _masked_file(path: str, redact: Redactor) -> str:
    """The artifact's path with no secret in its file name: the file is renamed when it held one.
    (The directories are state_dir's, the journey's name and the run's id: never a secret.)"""
    file = Path(path)
    masked = redact(file.name)
    if masked == file.name:
        return path
    target = file.with_name(masked.replace(MASK, MASKED_NAME))
    try:
        os.replace(file, target)
    except OSError:  # gone or cannot move: never leave a file, or report a path, holding the secret
        file.unlink(missing_ok=True)
    return str(target)
