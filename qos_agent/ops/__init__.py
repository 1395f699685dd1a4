"""Operating the agent: /healthz, /metrics, live reload."""
