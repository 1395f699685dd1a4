"""The agent's small exception tree. Users see located messages, never these as tracebacks.

QosError
├── ConfigError      journeys.yaml is wrong: every problem, located, at once (exit 2)
├── SetupError       the machine lacks something the config needs (chromium, a writable state_dir)
└── DeliveryError    a network sink's send failed; the core's delivery loop decides what follows
    ├── RetryableError   keep the records and try again later (maybe after Retry-After)
    └── PermanentError   the destination will never accept these records: dead letter
"""

from __future__ import annotations

from collections.abc import Sequence

from qos_agent.language.nodes import Problem


class QosError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(QosError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SetupError(QosError):
    """One clear line naming what is missing and the fix."""


class DeliveryError(QosError):
    """A send to a network sink failed (raised by a sink's `send`, handled by the delivery loop)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(DeliveryError):
    """The batch may succeed later: keep it and retry. `fix` names what a human must do, if anything."""

    def __init__(self, message: str, retry_after: float | None = None, fix: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.fix = fix


class PermanentError(DeliveryError):
    """The destination will never accept these records as they are (e.g. a field-type conflict)."""
