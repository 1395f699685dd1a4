"""`python -m qos_agent` is `qos-agent`."""

from qos_agent.cli import main

main()
