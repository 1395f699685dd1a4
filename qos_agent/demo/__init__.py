"""The bundled demo SaaS: the target of tests, benchmarks and the sample journeys, with fault knobs."""

from qos_agent.demo.faults import REGION_HEADER, FaultBook, FaultRule, parse_fault_spec
from qos_agent.demo.service import make_app, serve, start_demo

__all__ = [
    "REGION_HEADER",
    "FaultBook",
    "FaultRule",
    "make_app",
    "parse_fault_spec",
    "serve",
    "start_demo",
]
