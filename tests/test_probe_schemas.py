"""The network step kinds describe every key they read with a type (their `json_schema()`), and a file
that uses each of them validates under the generated schema exactly when the loader accepts it."""

from __future__ import annotations

import pytest

from qos_agent.plugins import registry
from qos_agent.plugins.schema_parts import untyped

KINDS = ("tls", "tcp", "dns", "websocket", "grpc")


@pytest.mark.parametrize("kind", KINDS)
def test_every_key_of_a_network_kind_has_a_type(kind: str) -> None:
    parts = registry.step_kind(kind).json_schema()
    assert set(parts) == {kind, "expect"}
    assert untyped(parts) == []
    assert parts[kind]["additionalProperties"] is False and parts[kind]["required"]
