"""The journeys.yaml language's primitives: located nodes, ${VAR}, {{ }} templates, secret masking."""
