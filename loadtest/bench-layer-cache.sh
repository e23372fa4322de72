#!/usr/bin/env bash
# Layer-cache benchmark (issue 5): how many bytes a cluster pulls to scan a
# registry whose images share a base layer, with the cluster-wide layer cache
# (TRAWL_LAYERS) and without it.
#
# `layer-cache-images` (loadtest/src/bin) pushes N images (default 100) to a
# real docker-registry: one shared base layer (a dpkg status and a few MiB of
# incompressible data) plus one small layer each. For each mode — cache, then
# --no-layer-cache — a fresh nats-server, trawl-controller and two
# trawl-scanner workers (2 slots each) are started; the registry is added
# through the controller's API and crawled (POST …/scan?wait=true); once the
# controller records every image as scanned, the workers' heartbeats
# (GET /api/v1/scanners) are summed: bytesPulled against the sum of distinct
# layer sizes. Target: ≤ 1.1× with the cache. A third run with --noop-scan
# gives the queue's own time for the same 100 tasks, for reference.
#
# Usage: loadtest/bench-layer-cache.sh [--images N] [--base-mib MIB]
# Prints a Markdown section and writes it to target/bench/layer-cache.md.
# Needs: nats-server, docker-registry, curl, python3 (scripts/setup installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

images=100
base_mib=4
while [ $# -gt 0 ]; do
  case "$1" in
    --images) images=$2; shift 2 ;;
    --base-mib) base_mib=$2; shift 2 ;;
    *) echo "usage: $0 [--images N] [--base-mib MIB]" >&2; exit 2 ;;
  esac
done
for tool in nats-server docker-registry curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench-layer-cache: $tool not found; run scripts/setup" >&2; exit 1; }
done

cargo build --release --locked -q -p trawl-scanner -p trawl-controller -p trawl-loadtest
bin="${CARGO_TARGET_DIR:-target}/release"
out_md="${CARGO_TARGET_DIR:-target}/bench/layer-cache.md"
mkdir -p "$(dirname "$out_md")"

work=$(mktemp -d)
pids=()
run_pids=()
stop_run() { # SIGTERM this run's processes (workers drain and delete their heartbeats), then wait
  for pid in "${run_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${run_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  run_pids=()
}
cleanup() {
  stop_run
  exec 3>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH=bench-layer-cache
# shellcheck source=loadtest/bench-lib.sh
. loadtest/bench-lib.sh   # (the script has cd-ed to the repository root)

# The image set, served until fd 3 closes.
mkfifo "$work/images.stdin"
"$bin/layer-cache-images" --images "$images" --base-mib "$base_mib" --db "$work/bench.db" \
  <"$work/images.stdin" >"$work/images.out" 2>"$work/images.log" &
pids+=($!)
exec 3>"$work/images.stdin"
echo "building and pushing $images images…" >&2
wait_for "pushing the images" 600 grep -q '^READY' "$work/images.out"
field() { awk -v k="$1" '$1 == k {print $2}' "$work/images.out"; }
registry=$(field REGISTRY)
unique=$(field UNIQUE_BYTES)
all=$(field ALL_BYTES)
base=$(field BASE_BYTES)

TRAWL_API_TOKEN=$(new_api_token)
export TRAWL_API_TOKEN
auth=(-H "Authorization: Bearer $TRAWL_API_TOKEN")
scanners_up() { # both workers have bound to the queue and sent a heartbeat
  curl -sf "$api/api/v1/scanners" | python3 -c 'import json, sys; sys.exit(0 if len(json.load(sys.stdin)) == 2 else 1)'
}
beats_counted() { # the live heartbeats count every scan; prints "scanned failed bytesPulled layerCacheHits"
  curl -sf "$api/api/v1/scanners" -o "$work/scanners.json" || return 1
  python3 - "$work/scanners.json" "$images" >"$work/beats.txt" <<'PY'
import json, sys
beats = json.load(open(sys.argv[1]))
total = lambda k: sum(b[k] for b in beats)
print(total("scanned"), total("failed"), total("bytesPulled"), total("layerCacheHits"), len(beats))
sys.exit(0 if len(beats) == 2 and total("scanned") + total("failed") >= int(sys.argv[2]) else 1)
PY
}

# One mode: fresh NATS (an empty cache), controller, two workers; crawl; wait; read the heartbeats.
run_mode() { # name, worker flags…
  local name=$1; shift
  local nats_port monitor api_port
  nats_port=$(free_port); monitor=$(free_port); api_port=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$nats_port" -m "$monitor" -sd "$work/js-$name" >"$work/nats-$name.log" 2>&1 &
  run_pids+=($!)
  wait_for nats-server 30 curl -sf "http://127.0.0.1:$monitor/healthz?js-enabled-only=true"
  local nats_url="nats://127.0.0.1:$nats_port"
  api="http://127.0.0.1:$api_port"
  TRAWL_LOG=warn "$bin/trawl-controller" --nats "$nats_url" --listen "127.0.0.1:$api_port" >"$work/controller-$name.log" 2>&1 &
  run_pids+=($!)
  wait_for trawl-controller 60 curl -sf "$api/readyz"
  for i in 1 2; do
    TRAWL_LOG=info "$bin/trawl-scanner" worker --nats "$nats_url" --db "$work/bench.db" --id "bench-$name-$i" "$@" \
      >"$work/worker-$name-$i.log" 2>&1 &
    run_pids+=($!)
  done
  wait_for "$name: both workers up" 60 scanners_up
  curl -sf "${auth[@]}" -H 'Content-Type: application/json' \
    -d "{\"name\": \"bench\", \"url\": \"http://$registry\", \"insecure\": true}" "$api/api/v1/registries" >/dev/null
  local started crawled done_at
  started=$(now)
  curl -sf "${auth[@]}" -X POST "$api/api/v1/registries/bench/scan?wait=true" -o "$work/crawl-$name.json"
  crawled=$(now)
  wait_for "$name: every image scanned" 900 settled "$images"
  done_at=$(now)
  # Heartbeats come every 5 s: wait for the ones that count the last scans.
  wait_for "$name: heartbeats counting every scan" 30 beats_counted
  read -r scanned failed pulled hits scanners <"$work/beats.txt"
  python3 - "$name" "$started" "$crawled" "$done_at" "$scanned" "$failed" "$pulled" "$hits" "$unique" "$work/crawl-$name.json" \
    >>"$work/results.tsv" <<'PY'
import json, sys
name, started, crawled, done, scanned, failed, pulled, hits, unique, crawl = sys.argv[1:]
queued = json.load(open(crawl))["queued"]
print("\t".join([name, f"{float(done) - float(started):.1f}", f"{float(crawled) - float(started):.1f}",
                 scanned, failed, pulled, hits, f"{int(pulled) / int(unique):.3f}", str(queued)]))
PY
  echo "$name: $(tail -n 1 "$work/results.tsv")" >&2
  stop_run
}

: >"$work/results.tsv"
run_mode cache
run_mode no-cache --no-layer-cache
run_mode noop --noop-scan

python3 - "$work/results.tsv" "$images" "$base" "$unique" "$all" "$base_mib" <<'PY' | tee "$out_md"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
images, base, unique, total, base_mib = sys.argv[2:]
mib = lambda b: f"{int(b) / (1 << 20):.2f} MiB"
by = {r[0]: r for r in rows}
print(f"{images} images, one repository: a shared base layer ({mib(base)} compressed: a dpkg status and "
      f"{base_mib} MiB of incompressible data) plus one small layer each. Distinct layers: {mib(unique)} "
      f"({unique} bytes); every image's layers added up: {mib(total)}. Two workers, 2 slots each.\n")
print("| run | tasks queued | scanned / failed | wall time, crawl → all stored | bytes pulled (heartbeats) | layer-cache hits | pulled / distinct layer bytes | target | result |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ["cache", "no-cache", "noop"]:
    r = by.get(name)
    if not r:
        continue
    _, wall, crawl, scanned, failed, pulled, hits, ratio, queued = r
    target, verdict = ("≤ 1.1×", "PASS" if float(ratio) <= 1.1 else "MISS") if name == "cache" else ("—", "—")
    label = {"cache": "layer cache (default)", "no-cache": "`--no-layer-cache`", "noop": "`--noop-scan` (queue only)"}[name]
    print(f"| {label} | {queued} | {scanned} / {failed} | {wall} s (crawl {crawl} s) | {mib(pulled)} ({pulled}) | {hits} | {float(ratio):.3f}× | {target} | {verdict} |")
PY
echo "wrote $out_md" >&2
