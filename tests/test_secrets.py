"""The secrets contract: which values are secrets, and masking them in every spelling.

A value is a secret when its variable is listed under `secrets:`, its name looks secret, or it was
extracted with `secret: true`; auth/cookie header values and URL userinfo always. Everything else
(`${SHOP_URL}`) is shown as is. The end-to-end grep of every artifact is tests/test_secrets_e2e.py.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from yarl import URL

from qos_agent.config.loader import load_config
from qos_agent.language.secrets import Redactor, looks_secret
from qos_agent.model import Outcome
from qos_agent.runloop.runner import Runner
from tests.support.cli import qos
from tests.support.faults import http_server

SECRET = 'p@ss w/rd+"\\é'


def spellings(secret: str) -> dict[str, str]:
    """Every encoding of a secret the issue saw leak, by name (shared with the end-to-end test)."""
    return {
        "raw": secret,
        "yarl query": str(URL.build(scheme="http", host="h", path="/", query={"k": secret})).split("k=", 1)[1],
        "yarl path": URL.build(scheme="http", host="h", path="/" + secret).raw_path[1:],
        "seen in the issue": "p@ss+w/rd+%22%5C%C3%A9" if secret == SECRET else quote_plus(secret),
        "quote": quote(secret),
        "quote safe=''": quote(secret, safe=""),
        "form (utf-8)": quote_plus(secret),
        "form (latin-1)": quote_plus(secret, encoding="latin-1", errors="ignore"),
        "chromium path": quote(secret.replace("\\", "/"), safe="/@+"),
        "chromium query": quote(secret, safe="/@+\\"),
        "json": json.dumps(secret)[1:-1],
        "json ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "json of json": json.dumps(json.dumps(secret))[3:-3],
        "repr": repr(secret)[1:-1],
        "ascii": ascii(secret)[1:-1],
        "bytes repr": repr(secret.encode())[2:-1],
        "html": html.escape(secret),
        "xml charref": html.escape(secret).encode("ascii", "xmlcharrefreplace").decode(),
        "line protocol field": secret.replace("\\", "\\\\").replace('"', '\\"'),
        "line protocol tag": secret.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\="),
        "mojibake": secret.encode().decode("latin-1"),
        "double url": quote(quote(secret, safe=""), safe=""),
    }


@pytest.mark.parametrize("name", list(spellings(SECRET)))
def test_every_spelling_is_masked(name: str) -> None:
    form = spellings(SECRET)[name]
    redact = Redactor([SECRET])
    out = redact(f"before {form} after")
    assert out == "before *** after", (name, form, out)


def test_masking_leaves_ordinary_text_alone() -> None:
    redact = Redactor(["hunter22"])
    text = "GET http://127.0.0.1:8080/api/pay?x=hunter2 200 (hunter23) p@ss"
    assert redact(text) == text
    assert redact("token hunter22!") == "token ***!"


def test_url_userinfo_is_masked_always() -> None:
    redact = Redactor()
    assert redact("GET https://alice:s3cr3t@shop.example:8443/x") == "GET https://***@shop.example:8443/x"
    assert redact("mail alice@example.com") == "mail alice@example.com"


@pytest.mark.parametrize(("name", "secret"), [("SHOP_PASSWORD", True), ("db_passwd", True), ("API_KEY", True),
                                              ("apikey", True), ("GITHUB_TOKEN", True), ("ClientSecret", True),
                                              ("PRIVATE_PEM", True), ("AWS_CREDENTIALS", True),
                                              ("SHOP_URL", False), ("QOS_REGION", False), ("USER", False)])
def test_which_names_look_secret(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


FILE = """\
version: 1
secrets: [SHOP_PIN]
agent: {state_dir: state, region: "${QOS_REGION}"}
variables: {base: "${SHOP_URL}", pin: "${SHOP_PIN}", pw: "${SHOP_PASSWORD}", user: "${SHOP_USER}"}
journeys:
  - name: j
    steps:
      - name: s
        http: {url: "{{ base }}/x", headers: {X-Pin: "{{ pin }}", X-User: "{{ user }}"}}
"""


def test_only_declared_and_secret_looking_values_are_secrets(tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text(FILE)
    env = {"SHOP_URL": "http://127.0.0.1:8080", "SHOP_PIN": "48151623", "SHOP_PASSWORD": "hunter2!",
           "SHOP_USER": "demo-user", "QOS_REGION": "eu-west"}
    config = load_config(tmp_path / "journeys.yaml", env=env)
    assert config.secrets == {"48151623", "hunter2!"}  # not the URL, the user or the region
    assert config.warnings == ()
    assert Redactor(config.secrets)("http://127.0.0.1:8080/x pin 48151623") == "http://127.0.0.1:8080/x pin ***"


def test_a_too_short_secret_is_a_located_warning(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(FILE)
    env = {"SHOP_URL": "http://127.0.0.1:8080", "SHOP_PIN": "42", "SHOP_PASSWORD": "hunter2!",
           "SHOP_USER": "demo-user", "QOS_REGION": "eu-west"}
    config = load_config(path, env=env)
    assert config.secrets == {"hunter2!"}
    (warning,) = config.warnings
    assert warning.startswith(f"{path}:4:") and "secret ${SHOP_PIN} is shorter than 4 characters" in warning
    done = qos("validate", str(path), env=env)
    assert done.returncode == 0, done.stderr
    # The value never shown (looked for after the file's path: pytest's temporary path may hold "42").
    message = done.stderr.split(str(path), 1)[1]
    assert "warning: " in done.stderr and "${SHOP_PIN}" in message and "42" not in message


RUNTIME = """\
version: 1
agent: {{state_dir: state}}
variables: {{base: "{base}"}}
journeys:
  - name: j
    steps:
      - name: login
        http: {{url: "{{{{ base }}}}/cookie"}}
        extract: {{sid: {{cookie: session, secret: true}}, plain: {{cookie: session}}}}
      - name: echo
        http: {{method: POST, url: "{{{{ base }}}}/echo", json: {{sid: "{{{{ sid }}}}"}},
               headers: {{Authorization: "Bearer tok-{{{{ $timestamp_ms }}}}-abcdef"}}}}
        expect: {{json: {{"$.body": {{equals: nothing}}}}}}
"""


async def test_secret_extractions_and_auth_headers_are_masked_at_run_time(tmp_path: Path) -> None:
    async with http_server() as srv:
        (tmp_path / "journeys.yaml").write_text(RUNTIME.format(base=srv.base))
        config = load_config(tmp_path / "journeys.yaml", env={})
        runner = Runner(config)
        try:
            (result,) = await runner.run(config.journeys[0])
        finally:
            await runner.close()
        sent = srv.requests[-1]["headers"]["Authorization"]
    login, echo = result.steps
    assert login.outcome is Outcome.PASSED and echo.outcome is Outcome.FAILED
    # The echo holds the extracted session cookie (JSON-escaped inside the body): masked.
    assert "sess-77" not in echo.error_message and "***" in echo.error_message, echo.error_message
    assert sent.startswith("Bearer tok-") and sent not in echo.error_message
    assert "sess-77" not in Runner(config).redact(echo.error_message)  # the agent-wide one did not keep it


def test_the_log_filter_masks_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    from qos_agent.language.secrets import RedactingFilter

    handler = logging.StreamHandler()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "login with %r", (SECRET,), None)
    try:
        raise ValueError(f"bad password {SECRET}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter(Redactor([SECRET])).filter(record)
    text = handler.format(record)
    assert SECRET not in text and repr(SECRET)[1:-1] not in text and text.count("***") == 2
