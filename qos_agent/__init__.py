"""qos-agent: synthetic customer journeys, measured as the customer feels them."""

__version__ = "0.1.0"
