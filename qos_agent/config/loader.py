"""journeys.yaml -> a frozen Config, validated whole before anything runs.

Every mistake is collected as `FILE:LINE:COL: what is wrong (how to fix)` and raised at once as a
ConfigError. Step kinds and exporter types come from the one registry, and each plug-in parses its
own part, so a third-party probe is validated exactly like a built-in one.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from qos_agent.config.journeys import JourneyParser
from qos_agent.config.keys import AGENT_KEYS, DEFAULT_KEYS, ENV_NAME, LOOPS, MIN_INTERVAL_S, TOP_KEYS
from qos_agent.config.sinks import SinkParser
from qos_agent.errors import ConfigError
from qos_agent.language import safety
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.text import shown
from qos_agent.language.text import shown as quoted
from qos_agent.language.yamlload import MAX_BYTES, decode, load_nodes
from qos_agent.model import AgentConfig, Config, Location
from qos_agent.plugins.context import LoadContext

MAX_READ = MAX_BYTES + 1  # read one byte more than allowed, so too large is seen without reading it all


def load_config(path: str | Path, env: Mapping[str, str] | None = None, region: str | None = None) -> Config:
    """Read, validate and freeze journeys.yaml; raise ConfigError with every located problem."""
    path = Path(path)
    problems = Problems()
    try:
        with path.open("rb") as f:
            data = f.read(MAX_READ)
    except FileNotFoundError:
        problems.add(Location(str(path), 1, 1), "file not found", "give the path of your journeys.yaml")
        raise ConfigError(problems.sorted()) from None
    except OSError as e:
        problems.add(Location(str(path), 1, 1), f"cannot read the file: {e.strerror or type(e).__name__}",
                     "check its permissions")
        raise ConfigError(problems.sorted()) from None
    return load_config_bytes(data, path, env, region)


def load_config_bytes(data: bytes, path: str | Path, env: Mapping[str, str] | None = None,
                      region: str | None = None) -> Config:
    """As load_config, from the file's bytes already read (a reload vets exactly the bytes it then loads)."""
    path = Path(path)
    file = str(path)
    problems = Problems()
    text = decode(data, file, problems)
    if text is None:
        raise ConfigError(problems.sorted())
    loaded = load_nodes(text, file, os.environ if env is None else env, problems)
    config = None
    if loaded.root is not None:
        config = _Parser(path, problems, region).parse(loaded.root, frozenset(loaded.secrets))
    if problems or config is None:
        raise ConfigError(problems.sorted())
    return replace(config, warnings=tuple(str(w) for w in problems.warnings))


class _Parser:
    def __init__(self, path: Path, problems: Problems, region: str | None) -> None:
        self.path = path
        self.problems = problems
        self.region_override = region

    def parse(self, root: Node, secrets: frozenset[str]) -> Config | None:
        top = Reader(root, self.problems, TOP_KEYS, "the file", required=("version", "journeys"))
        if not top.ok:
            return None
        version = top.get("version")
        if version is not None and (version.value != 1 or isinstance(version.value, bool)):
            self.problems.add(version.loc, f"unsupported version {shown(version.value)}", "write 'version: 1'")
        agent = self.agent(top.get("agent"))
        load = LoadContext(config_dir=self.path.parent.resolve(), state_dir=Path(agent.state_dir))
        defaults = Reader(top.get("defaults") or Node({}, root.loc), self.problems, DEFAULT_KEYS, "defaults")
        safety.check_headers(defaults.get("headers"), self.problems)
        for section in ("defaults", "variables", "journeys"):
            safety.check_templates(top.get(section), self.problems)
        variables = top.str_map("variables")
        parser = JourneyParser(self.problems, load)
        parser.check_variable_refs(top.get("variables"), set())
        self.secret_names(top.get("secrets"))
        journeys = parser.journeys(top.get("journeys"), agent, defaults, variables)
        exporters = SinkParser(self.path, self.problems).exporters(top.get("exporters"), load)
        return Config(path=str(self.path), agent=agent, journeys=tuple(journeys), exporters=tuple(exporters),
                      secrets=secrets | frozenset(parser.secrets), files=tuple(load.files))

    def secret_names(self, node: Node | None) -> None:
        """`secrets: [SHOP_PASSWORD, ...]`: environment variable names (yamlload reads them first)."""
        if node is None:
            return
        if not node.is_list:
            self.problems.add(node.loc, "'secrets' must be a list of environment variable names",
                              "write secrets: [SHOP_PASSWORD, API_KEY]")
            return
        for item in node.value:
            if not isinstance(item.value, str) or not ENV_NAME.match(item.value):
                self.problems.add(item.loc, f"{quoted(item.value)} is not an environment variable name",
                                  "list the names used as ${NAME}, e.g. SHOP_PASSWORD")

    # -- agent ------------------------------------------------------------------------------
    def agent(self, node: Node | None) -> AgentConfig:
        r = Reader(node or Node({}, Location(str(self.path), 1, 1)), self.problems, AGENT_KEYS, "agent")
        state_dir = Path(r.str("state_dir", ".qos-agent"))
        if not state_dir.is_absolute():
            state_dir = self.path.parent.resolve() / state_dir
        shard = None
        shard_node = r.get("shard")
        if shard_node is not None:
            m = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", shard_node.value) \
                if isinstance(shard_node.value, str) else None
            if m and 1 <= int(m.group(1)) <= int(m.group(2)):
                shard = (int(m.group(1)), int(m.group(2)))
            else:
                self.problems.add(shard_node.loc, f"'shard' is {shown(shard_node.value)}, not INDEX/COUNT",
                                  "write e.g. shard: 2/3 (this agent is the 2nd of 3 in its region)")
        listen_node = r.get("listen")
        if listen_node is not None and (listen_node.value is False or listen_node.value in ("", "off")):
            listen = ""  # `listen: off` (YAML reads a bare off as false) or empty: no endpoint
        else:
            listen = r.str("listen", "127.0.0.1:9469")
        if listen and listen_node is not None and not re.fullmatch(r"[\w.:\[\]-]*:\d{1,5}", listen):
            self.problems.add(listen_node.loc, f"'listen' is {shown(listen)}, not HOST:PORT",
                              "write e.g. listen: 127.0.0.1:9469")
        for key in ("region", "name"):
            value_node = r.get(key)
            why = safety.tag_value_problem(str(value_node.value)) if value_node is not None else ""
            if value_node is not None and why:
                self.problems.add(value_node.loc, f"agent {key} {shown(value_node.value)} {why}",
                                  safety.TAG_VALUE_RULE)
        max_lag = r.duration("max_loop_lag", 0.05)
        lag_node = r.get("max_loop_lag")
        if lag_node is not None and not 0.001 <= max_lag <= 60:
            self.problems.add(lag_node.loc, f"'max_loop_lag' is {shown(lag_node.value)}, outside 1ms..60s",
                              "write e.g. max_loop_lag: 50ms")
            max_lag = 0.05
        loop = r.choice("loop", LOOPS, "auto")
        loop_node = r.get("loop")
        if loop == "uvloop" and loop_node is not None and importlib.util.find_spec("uvloop") is None:
            self.problems.add(loop_node.loc, "'loop' is uvloop, but uvloop is not installed",
                              "pip install uvloop (Linux/macOS), or write loop: auto")
        trace_url = r.str("trace_url", "")
        if trace_url and (url_node := r.get("trace_url")) is not None and (
                "{trace_id}" not in trace_url or not trace_url.startswith(("http://", "https://"))):
            self.problems.add(url_node.loc, f"'trace_url' is {shown(trace_url)}, not an http(s) URL with {{trace_id}}",
                              'write e.g. trace_url: "https://tempo.example/explore?traceId={trace_id}"')
        return AgentConfig(
            region=self.region_override or r.str("region", "local"),
            name=r.str("name", socket.gethostname() or "agent"),
            interval_s=r.duration("interval", 60.0, minimum=MIN_INTERVAL_S),
            concurrency=r.int("concurrency", 50, minimum=1, maximum=10_000),
            browser_concurrency=r.int("browser_concurrency", 2, minimum=1, maximum=64),
            state_dir=str(state_dir),
            listen=listen,
            sink_stale_after_s=r.duration("sink_stale_after", 300.0),
            shard=shard,
            max_loop_lag_s=max_lag,
            loop=loop,
            traceparent=r.bool("traceparent", True),
            trace_url=trace_url,
        )
