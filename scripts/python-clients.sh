#!/usr/bin/env bash
# Installs the real clients of the protocols weft speaks, for the tests: a Python venv
# in target/pyvenv with every crates/*/tests/*/requirements.txt, and the source
# distribution of py-consul (whose own test suite is run against weft) in
# target/py-consul. Idempotent: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages python3 python3-venv
venv=target/pyvenv
mkdir -p target
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
for req in crates/*/tests/*/requirements.txt; do
  [ -f "$req" ] || continue
  stamp="$venv/.$(echo "$req" | tr '/' '_').$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "==> pip install -r $req"
    "$venv/bin/pip" install -q -r "$req"
    touch "$stamp"
  fi
done
if [ ! -d target/py-consul/py_consul-1.8.0/tests ]; then
  echo "==> fetching py-consul 1.8.0's source distribution (its test suite)"
  rm -rf target/py-consul && mkdir -p target/py-consul
  "$venv/bin/pip" download -q --no-deps --no-binary :all: -d target/py-consul py-consul==1.8.0
  tar -xzf target/py-consul/py_consul-1.8.0.tar.gz -C target/py-consul
fi
