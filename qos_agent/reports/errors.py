"""The one error `qos-agent report` raises: a line for the user, never a traceback (exit code 2)."""

from __future__ import annotations


class ReportError(Exception):
    """A source cannot be read (missing store, unreachable URL, a refused query) or an option is wrong."""
