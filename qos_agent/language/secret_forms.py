"""Every way a secret may be spelled in an output, as one regular expression per secret.

A value typed into a request comes back in other spellings: URL-encoded by yarl (`+` for a space)
or Chromium (`%20`, `\\` turned into `/` in a path), form-encoded in UTF-8 or latin-1 (`%E9`),
JSON-escaped (`\\"`, `\\u00e9`), Python repr (`\\\\`, `\\xe9`, bytes `\\xc3\\xa9`), XML/HTML entities
(`&quot;`, `&#233;`), a line-protocol escape (`\\ `) or a mis-decoded `Ã©`. Listing whole-string
variants cannot cover mixtures (a JSON-escaped, URL-encoded value), so each character of the secret
gets every spelling it may take and the secret's pattern is the sequence of those: all variants,
mixed or not, precomputed once into one compiled pattern.
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Iterable

_ESCAPES = r"(?:\\{0,3})"  # a character escaped once, twice or three times with a backslash


def _pct(data: bytes) -> str:
    """`%C3%A9` in either case, or double-encoded `%25C3%25A9`."""
    return "".join(f"%(?:25)?(?i:{b:02x})" for b in data)


def char_forms(c: str) -> list[str]:
    """Regex alternatives (already escaped) for one character of a secret."""
    if c.isascii() and c.isalnum():
        return [re.escape(c)]
    forms: list[str] = [re.escape(c), _pct(c.encode("utf-8"))]
    cp = ord(c)
    if 128 <= cp < 256:
        forms.append(_pct(bytes([cp])))  # latin-1 form encoding
        forms.append(r"\\x(?i:" + f"{cp:02x})")  # ascii()/repr of a latin-1 char
    if cp >= 128:
        utf8 = c.encode("utf-8")
        forms.append("".join(r"\\x(?i:" + f"{b:02x})" for b in utf8))  # bytes repr
        forms.append(re.escape(utf8.decode("latin-1")))  # UTF-8 read as latin-1
    if cp < 0x10000:
        forms.append(r"\\{1,3}u(?i:" + f"{cp:04x})")  # JSON / JavaScript \u escape
    else:
        hi, lo = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
        forms.append(r"\\{1,3}u(?i:" + f"{hi:04x})" + r"\\{1,3}u(?i:" + f"{lo:04x})")
    forms.append(f"&#0*{cp};")
    forms.append(f"&#(?i:x)0*(?i:{cp:x});")
    name = html.entities.codepoint2name.get(cp)
    if name:
        forms.append(f"&{name};")
    if c == " ":
        forms.append(r"\+")  # form / yarl query encoding
    if c == "\\":
        forms.append("/")  # Chromium turns a backslash into a slash in special URLs' paths
        return [r"\\{1,4}", *forms[1:]]
    return [_ESCAPES + f for f in forms]


def secret_pattern(secret: str) -> str:
    """The pattern matching `secret` in any of its spellings."""
    return "".join("(?:" + "|".join(char_forms(c)) + ")" for c in secret)


def compile_secrets(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for all secrets, longest first (a secret containing another is masked whole)."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile("|".join(secret_pattern(s) for s in ordered))
