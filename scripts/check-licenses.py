#!/usr/bin/env python3
"""Fails if any dependency's licence is not on deny.toml's allow-list.

cargo-deny enforces the same deny.toml where it is installed; this check needs only
cargo and Python, so the test command can run it on a fresh machine.
"""
import json
import re
import subprocess
import sys
import tomllib

with open("deny.toml", "rb") as f:
    allowed = set(tomllib.load(f)["licenses"]["allow"])

meta = json.loads(
    subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--locked"])
)
bad = []
for pkg in meta["packages"]:
    if pkg["source"] is None:  # our own crates
        continue
    expr = pkg.get("license") or ""
    # An SPDX expression passes when some OR-alternative is wholly allowed.
    alternatives = [a.strip(" ()") for a in re.split(r"\bOR\b|/", expr)]
    def ok(alt):
        return all(term.strip(" ()") in allowed for term in re.split(r"\bAND\b", alt) if term.strip(" ()"))
    if not expr or not any(ok(a) for a in alternatives):
        bad.append(f"{pkg['name']} {pkg['version']}: {expr or 'no licence'}")
if bad:
    print("licences not allowed by deny.toml:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(meta['packages'])} packages, all permissively licensed")
