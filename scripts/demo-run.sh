#!/usr/bin/env bash
# The main job, end to end: the bundled demo SaaS on 127.0.0.1, the agent running the sample
# journeys into the embedded SQLite store for a while, then the report of what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DURATION=${DURATION:-40s}
log=$(mktemp)
"$BIN/qos-agent" demo-service --port 0 >"$log" 2>&1 &
demo=$!
trap 'kill "$demo" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -n1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { echo "the demo service did not start:"; cat "$log"; exit 1; }
echo "demo service on $url; running the agent on journeys.yaml for $DURATION (Ctrl-C stops it early)"
export SHOP_URL="$url"
"$BIN/qos-agent" validate journeys.yaml
"$BIN/qos-agent" run journeys.yaml --duration "$DURATION"
"$BIN/qos-agent" report --file journeys.yaml
