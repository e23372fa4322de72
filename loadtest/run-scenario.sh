#!/usr/bin/env bash
# Runs a load-test scenario with release binaries and writes its report.
#
# Usage: loadtest/run-scenario.sh NAME [trawl-loadtest run options…]
#   NAME: smoke, scaling, large-image, chaos (loadtest/scenarios/NAME.toml) or a path to a .toml
#   e.g.  loadtest/run-scenario.sh scaling --compare
# The report (report.md, CSVs, PNG charts, logs) goes to target/loadtest/NAME/.
# Needs what scripts/setup installs (nats-server, docker-registry, syft and skopeo for --compare).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
name=$1; shift
scenario=$name
[ -f "$scenario" ] || scenario="loadtest/scenarios/$name.toml"
[ -f "$scenario" ] || { echo "run-scenario: no scenario $name (see loadtest/scenarios/)" >&2; exit 2; }
cargo build --release --locked -q -p trawl-scanner -p trawl-controller -p trawl-loadtest
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/trawl-loadtest" run "$scenario" --out "$target/loadtest/$(basename "$scenario" .toml)" "$@"
