"""`python -m qos_agent.demo [--host H] [--port P] [--fault SPEC ...]`: run the demo service."""

from __future__ import annotations

import argparse
import sys

from qos_agent.demo.service import DEFAULT_HOST, DEFAULT_PORT, serve

FAULT_HELP = (
    "a fault rule as key=value pairs, repeatable: path (prefix or glob, default *), region "
    "(default *), latency (ms or 250ms/2s), status (400-599), error_ratio (0..1 or 30%%), "
    "break_bundle (true/false); e.g. path=/api/pay,region=ap-south,status=503"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qos_agent.demo", description="The qos-agent demo SaaS.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default 8080)"
    )
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", help=FAULT_HELP)
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.fault)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
