"""journeys.yaml -> the frozen Config: every check, all problems at once; its JSON Schema."""
