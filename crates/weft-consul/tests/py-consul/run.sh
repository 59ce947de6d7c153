#!/usr/bin/env bash
# Runs py-consul's own test suite (kv, catalog, health, agent, session, status) and
# weft's scenarios (test_weft_scenarios.py) with a real py-consul against a fresh
# `weft server --consul-listen 127.0.0.1:8500` per test.
# Usage: run.sh WEFT_BINARY PYTHON PY_CONSUL_SOURCE_DIR
set -euo pipefail
weft=$1 python=$2 source=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/weft-py-consul.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$source"/. "$work"/
# Our conftest replaces the one that starts Consul in Docker.
cp "$here/conftest.py" "$work/conftest.py"
cp "$here/test_weft_scenarios.py" "$work/tests/test_weft_scenarios.py"
deselect=()
while IFS=$'\t' read -r node _why; do
  case "$node" in ''|'#'*) continue ;; esac
  deselect+=(--deselect "$node")
done <"$here/excluded.txt"
cd "$work"
WEFT_BIN=$weft exec "$python" -m pytest -p no:cacheprovider -o addopts="" -q \
  tests/api/test_kv.py tests/api/test_catalog.py tests/api/test_health.py \
  tests/api/test_agent.py tests/api/test_session.py tests/api/test_status.py \
  tests/test_weft_scenarios.py "${deselect[@]}"
