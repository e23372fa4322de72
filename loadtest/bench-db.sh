#!/usr/bin/env bash
# The vulnerability-database benchmark (issue 3): builds release binaries and
# runs `trawl-loadtest db-bench` against the shared corpus beside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p trawl-loadtest
corpus="$(cd .. && pwd)/shared/corpus"
mkdir -p target/bench
exec target/release/trawl-loadtest db-bench --corpus "$corpus" --out target/bench/db-bench.md "$@"
