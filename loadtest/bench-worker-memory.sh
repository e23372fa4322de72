#!/usr/bin/env bash
# Scanner-worker memory benchmark (issue 7): the measured memory bound of one
# `trawl-scanner worker`, for Kubernetes requests/limits and the sizing rule.
#
# A vulnerability database is built from the real OSV corpus beside the clone
# (../shared/corpus/osv/*/all.zip, every ecosystem) with `trawl-updater build`,
# plus a one-advisory database to tell the database's share from the rest.
# `trawl-loadtest image-bench --hold` builds the image-analysis benchmark's two
# images from real files on this machine (large: ~1 GiB uncompressed in 10
# layers; small: ~100 MiB in 2; the host's dpkg status and os-release in the
# first layer, so matching finds real vulnerabilities) and pushes them to a
# real docker-registry; this script then pushes LARGE_TAGS-1 more tags of the
# large image, each with its own config blob (a label), so that there are
# LARGE_TAGS distinct large digests to scan at once.
#
# Every run (database × concurrency × round) starts a fresh nats-server -js,
# trawl-controller (it creates the streams), publishes the database through
# NATS (`trawl-updater publish --db`), adds the registry through the API and
# starts ONE `trawl-scanner worker --concurrency C --no-layer-cache` that
# follows the published database. Once the worker logs that it takes tasks
# (database loaded) and has sat idle for a few seconds, VmRSS and VmHWM are
# read from /proc/PID/status (idle RSS and the peak of loading the database);
# the high-water mark is reset (`echo 5 > /proc/PID/clear_refs`), the registry
# is crawled (POST …/scan?wait=true) and, when the controller has a result for
# every image, VmHWM is the peak during the scans. With the corpus database a
# newer version is then published (HWM reset first) to measure the swap.
#
# Usage: loadtest/bench-worker-memory.sh [--runs N] [--concurrency "1 2 4"] [--large-tags N]
# Prints a Markdown section and writes it to target/bench/worker-memory.md.
# Needs: nats-server, docker-registry, skopeo, gzip, curl, python3 (scripts/setup
# installs them), ../shared/corpus, ~2 GiB free in $TMPDIR. ~8 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
concurrencies="1 2 4"
large_tags=4
args_given="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --concurrency) concurrencies=${2//,/ }; shift 2 ;;
    --large-tags) large_tags=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--concurrency \"1 2 4\"] [--large-tags N]" >&2; exit 2 ;;
  esac
done
for tool in nats-server docker-registry skopeo gzip curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench-worker-memory: $tool not found; run scripts/setup" >&2; exit 1; }
done
corpus="$(cd .. && pwd)/shared/corpus"
shopt -s nullglob
zips=("$corpus"/osv/*/all.zip)
shopt -u nullglob
if [ ${#zips[@]} -eq 0 ]; then
  echo "bench-worker-memory: SKIPPED — no OSV corpus at $corpus/osv/*/all.zip (../shared/corpus is absent);" \
    "the database's share of a worker's memory cannot be measured without it" >&2
  exit 0
fi

# Cargo rebuilds whatever is missing or older than its sources.
cargo build --release --locked -q -p trawl-scanner -p trawl-updater -p trawl-controller -p trawl-loadtest
bin="${CARGO_TARGET_DIR:-target}/release"
out_md="${CARGO_TARGET_DIR:-target}/bench/worker-memory.md"
mkdir -p "$(dirname "$out_md")"
date_utc=$(date -u)
bench_started=$SECONDS

work=$(mktemp -d)
mkdir -p "$work/tmp" "$work/images"
pids=()
run_pids=()
stop_run() { # SIGTERM this run's processes in reverse start order (worker first), then wait
  local i
  for ((i = ${#run_pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${run_pids[i]}" 2>/dev/null || true
    wait "${run_pids[i]}" 2>/dev/null || true
  done
  run_pids=()
}
cleanup() {
  stop_run
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  exec 3>&- 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH=bench-worker-memory
# shellcheck source=loadtest/bench-lib.sh
. loadtest/bench-lib.sh   # (the script has cd-ed to the repository root)
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; } # pid, VmRSS|VmHWM → kB
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }                        # VmHWM := VmRSS (Linux ≥ 4.0)

# --- Vulnerability databases ---------------------------------------------------
srcs=()
for z in "${zips[@]}"; do srcs+=(--source "$z"); done
echo "building the corpus database from ${#zips[@]} OSV archives…" >&2
"$bin/trawl-updater" build "${srcs[@]}" --out "$work/corpus-v1.db" 2>"$work/updater-build.log"
cat "$work/updater-build.log" >&2
# Versions are build times in ms: the second build is strictly newer (the update measurement).
"$bin/trawl-updater" build "${srcs[@]}" --out "$work/corpus-v2.db" 2>>"$work/updater-build.log"
cat >"$work/tiny.json" <<'JSON'
{"id": "CVE-2099-0001", "modified": "2026-12-01T00:00:00Z", "summary": "benchmark advisory",
 "affected": [{"package": {"ecosystem": "Debian:12", "name": "trawl-bench-nothing"},
               "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}
JSON
"$bin/trawl-updater" build --source "$work/tiny.json" --out "$work/tiny.db" 2>>"$work/updater-build.log"
"$bin/trawl-updater" info --json "$work/corpus-v1.db" >"$work/corpus-info.json"
"$bin/trawl-updater" info --json "$work/tiny.db" >"$work/tiny-info.json"
v2_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
  <("$bin/trawl-updater" info --json "$work/corpus-v2.db"))

# --- Images: image-bench's generator, held after pushing ---------------------------
echo "building and pushing the images (trawl-loadtest image-bench --hold)…" >&2
mkfifo "$work/images.stdin"
TMPDIR="$work/tmp" "$bin/trawl-loadtest" image-bench --hold --no-syft --runs 1 \
  --scanner "$bin/trawl-scanner" --work-dir "$work/images" \
  <"$work/images.stdin" >/dev/null 2>"$work/images.log" &
pids+=($!)
exec 3>"$work/images.stdin"
wait_for "building and pushing the images" 900 grep -q '^images ready:' "$work/images.log"
large_ref=$(grep -A1 '^images ready:' "$work/images.log" | sed -n 2p | tr -d ' ')
small_ref=$(grep -A2 '^images ready:' "$work/images.log" | sed -n 3p | tr -d ' ')
registry=${large_ref%%/*}
large_repo=${large_ref#*/}; large_repo=${large_repo%:*}
grep -E '\] (large|small): ' "$work/images.log" >&2

# More tags of the large image, each a distinct digest (its own config blob, the same layers).
python3 - "$registry" "$large_repo" latest "$large_tags" >"$work/variants.txt" <<'PY'
import hashlib, json, sys, urllib.request
registry, repo, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://{registry}"
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
def call(method, url, data=None, headers=None):
    url = url if url.startswith("http") else base + url
    return urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers or {}))
with call("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}) as r:
    media_type, manifest = r.headers["Content-Type"], json.load(r)
with call("GET", f"/v2/{repo}/blobs/{manifest['config']['digest']}") as r:
    config = json.load(r)
for i in range(2, n + 1):
    cfg = json.loads(json.dumps(config))
    inner = cfg.get("config") or {}
    inner["Labels"] = dict(inner.get("Labels") or {}, **{"org.trawl.bench.variant": str(i)})
    cfg["config"] = inner
    body = json.dumps(cfg, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    with call("POST", f"/v2/{repo}/blobs/uploads/", data=b"") as r:
        location = r.headers["Location"]
    sep = "&" if "?" in location else "?"
    call("PUT", f"{location}{sep}digest={digest}", data=body, headers={"Content-Type": "application/octet-stream"}).close()
    m = json.loads(json.dumps(manifest))
    m["config"]["digest"], m["config"]["size"] = digest, len(body)
    call("PUT", f"/v2/{repo}/manifests/v{i}", data=json.dumps(m).encode(), headers={"Content-Type": media_type}).close()
    print(f"{registry}/{repo}:v{i}")
PY
images_total=$((large_tags + 1))
echo "pushed $((large_tags - 1)) more tags of $large_ref; $images_total images to scan per run" >&2

TRAWL_API_TOKEN=$(new_api_token)
export TRAWL_API_TOKEN
auth=(-H "Authorization: Bearer $TRAWL_API_TOKEN")
db_loaded() { # worker log, version
  grep 'loaded vulnerability database' "$1" | grep -q "version=$2"
}

# One run: fresh NATS, controller, database published, registry added; one worker; idle, scans, swap.
run_one() { # db (corpus|tiny), concurrency, round
  local db=$1 conc=$2 round=$3 tag="$1-c$2-r$3"
  local nats_port monitor api_port nats_url wpid
  nats_port=$(free_port); monitor=$(free_port); api_port=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$nats_port" -m "$monitor" -sd "$work/js-$tag" >"$work/nats-$tag.log" 2>&1 &
  run_pids+=($!)
  wait_for nats-server 30 curl -sf "http://127.0.0.1:$monitor/healthz?js-enabled-only=true"
  nats_url="nats://127.0.0.1:$nats_port"
  api="http://127.0.0.1:$api_port"
  TRAWL_LOG=warn "$bin/trawl-controller" --nats "$nats_url" --listen "127.0.0.1:$api_port" >"$work/controller-$tag.log" 2>&1 &
  run_pids+=($!)
  wait_for trawl-controller 60 curl -sf "$api/readyz"
  local dbfile="$work/tiny.db"
  [ "$db" = corpus ] && dbfile="$work/corpus-v1.db"
  TRAWL_LOG=warn "$bin/trawl-updater" publish --nats "$nats_url" --db "$dbfile" >"$work/publish-$tag.log"
  curl -sf "${auth[@]}" -H 'Content-Type: application/json' \
    -d "{\"name\": \"bench\", \"url\": \"http://$registry\", \"insecure\": true}" "$api/api/v1/registries" >/dev/null

  TRAWL_LOG=info "$bin/trawl-scanner" worker --nats "$nats_url" --concurrency "$conc" --no-layer-cache \
    --id "bench-$tag" >"$work/worker-$tag.log" 2>&1 &
  wpid=$!
  run_pids+=("$wpid")
  wait_for "$tag: worker taking tasks" 120 grep -q 'worker started' "$work/worker-$tag.log"
  sleep 3
  local idle_rss load_hwm scan_hwm after_rss swap_hwm=- swap_rss=- started done_at
  idle_rss=$(status_kb "$wpid" VmRSS); load_hwm=$(status_kb "$wpid" VmHWM)
  reset_hwm "$wpid"
  started=$(now)
  curl -sf "${auth[@]}" -X POST "$api/api/v1/registries/bench/scan?wait=true" -o "$work/crawl-$tag.json"
  wait_for "$tag: every image scanned" 900 settled "$images_total"
  done_at=$(now)
  scan_hwm=$(status_kb "$wpid" VmHWM); after_rss=$(status_kb "$wpid" VmRSS)
  [ -s "$work/images.json" ] || curl -sf "$api/api/v1/images?registry=bench" -o "$work/images.json"
  if [ "$db" = corpus ]; then # a newer database arrives while idle: both are held during the swap
    reset_hwm "$wpid"
    TRAWL_LOG=warn "$bin/trawl-updater" publish --nats "$nats_url" --db "$work/corpus-v2.db" >>"$work/publish-$tag.log"
    wait_for "$tag: database v2 loaded" 60 db_loaded "$work/worker-$tag.log" "$v2_version"
    sleep 1
    swap_hwm=$(status_kb "$wpid" VmHWM); swap_rss=$(status_kb "$wpid" VmRSS)
  fi
  python3 - "$db" "$conc" "$round" "$idle_rss" "$load_hwm" "$scan_hwm" "$after_rss" "$swap_hwm" "$swap_rss" \
    "$started" "$done_at" "$work/status.json" "$work/crawl-$tag.json" >>"$work/results.tsv" <<'PY'
import json, sys
db, conc, rnd, idle, load, scan, after, swap, swap_rss, started, done, status, crawl = sys.argv[1:]
s = json.load(open(status))
queued = json.load(open(crawl))["queued"]
print("\t".join([db, conc, rnd, idle, load, scan, after, swap, swap_rss, str(queued), str(s["scanned"]),
                 str(s["failed"]), f"{float(done) - float(started):.1f}"]))
PY
  echo "$tag: $(tail -n 1 "$work/results.tsv")" >&2
  stop_run
  rm -rf "$work/js-$tag"
}

: >"$work/results.tsv"
# Rounds outermost, so that a burst of load from elsewhere hits one round of every configuration.
for round in $(seq 1 "$runs"); do
  for db in corpus tiny; do
    for conc in $concurrencies; do
      run_one "$db" "$conc" "$round"
    done
  done
done
bench_secs=$((SECONDS - bench_started))

machine="nproc $(nproc), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr)"
python3 - "$work/results.tsv" "$work/corpus-info.json" "$work/tiny-info.json" "$work/corpus-v1.db" "$work/tiny.db" \
  "$work/images.log" "$work/images.json" "$large_tags" "$date_utc" "$machine" "$bench_secs" \
  "loadtest/bench-worker-memory.sh${args_given:+ $args_given}" "$(uname -r)" <<'PY' | tee "$out_md"
import json, os, re, statistics, sys
(results, corpus_info, tiny_info, corpus_db, tiny_db, images_log, images_json, large_tags, date, machine,
 secs, command, _kernel) = sys.argv[1:]
large_tags = int(large_tags)
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
MiB = 1024.0  # figures are kB from /proc
def med(xs): return statistics.median(xs)
def fmt(x): return f"{x:.1f}"
def series(db, conc, col):
    return [float(r[col]) / MiB for r in rows if r[0] == db and int(r[1]) == conc and r[col] != "-"]
concs = sorted({int(r[1]) for r in rows})
ci, ti = json.load(open(corpus_info)), json.load(open(tiny_info))
c = ci["counts"]
db_mib = os.path.getsize(corpus_db) / 2**20

print("## Scanner worker memory (issue 7)\n")
print(f"- **Date:** {date} (`date -u` at the start of the run)")
print(f"- **Machine:** {machine}")
print(f"- **Command:** `{command}` (release build of `trawl-scanner`, `trawl-updater`, `trawl-controller` and `trawl-loadtest`); benchmark wall time {int(secs) // 60} min {int(secs) % 60} s")
print(f"- **Database:** the OSV corpus, {len(ci['sources'])} archives ({', '.join(s['name'] for s in ci['sources'])}), "
      f"built with `trawl-updater build`: **{db_mib:.1f} MiB** file, **{c['advisories']:,} advisories** for "
      f"{c['packages']:,} packages in {len(ci['ecosystems'])} ecosystems, published through NATS (`trawl-updater publish --db`). "
      f"Tiny database for comparison: {ti['counts']['advisories']} advisory, {os.path.getsize(tiny_db):,} bytes.")

# Images: image-bench's log lines, and the controller's records.
img = {}
for m in re.finditer(r"\] (large|small): (\d+) layers, (\d+) files, (.+?) → (.+?) \(built", open(images_log).read()):
    img[m.group(1)] = m.groups()[1:]
records = json.load(open(images_json)) if os.path.exists(images_json) else []
if isinstance(records, dict):
    records = records.get("images", [])
def rec(name):
    rs = [r for r in records if any(f"/{name}:" in t or f":{name}:" in t or f"bench/{name}" in t for t in r.get("tags", []))]
    return rs[0] if rs else {}
print(f"- **Images:** `trawl-loadtest image-bench --hold` builds the image-analysis benchmark's images from real files on this machine "
      f"(gzip level 6; the host's dpkg status and os-release in the first layer) and pushes them to a real `docker-registry`; "
      f"the large one is tagged {large_tags} times with distinct config blobs (distinct digests, same layers), so one crawl queues "
      f"{large_tags + 1} scan tasks: {large_tags} × large + 1 × small.\n")
print("| image | tags | layers | files | uncompressed | compressed | packages | vulnerabilities (corpus DB) |")
print("|---|---|---|---|---|---|---|---|")
for name, tags in (("large", large_tags), ("small", 1)):
    g = img.get(name, ("?",) * 4)
    r = rec(name)
    print(f"| {name} | {tags} | {g[0]} | {g[1]} | {g[2]} | {g[3]} | {r.get('packages', '?')} | {r.get('vulnerabilities', {}).get('total', '?')} |")

print("\n**Method.** Every run starts fresh: `nats-server -js` on a free loopback port, `trawl-controller --nats … --listen …` "
      "(creates the streams), `trawl-updater publish --db FILE`, the registry added with `POST /api/v1/registries`, then ONE "
      "`trawl-scanner worker --concurrency C --no-layer-cache` that follows the database published in NATS (so every scan pulls "
      "and walks every layer). *Idle RSS* is VmRSS from `/proc/PID/status` 3 s after the worker logs that it takes tasks (database "
      "loaded, no task yet); *load peak* is VmHWM at that moment. The high-water mark is then reset (`echo 5 > /proc/PID/clear_refs`), "
      "the registry crawled (`POST /api/v1/registries/bench/scan?wait=true`), and when `GET /api/v1/registries/bench` has a "
      "result for every image, VmHWM is the *peak during the scans*. With the corpus database, the mark is reset again and a newer "
      f"build of the same database is published: VmHWM once the worker has swapped it in is the *update peak* (old and new database "
      f"held at once). Medians of {max(int(r[2]) for r in rows)} rounds, runs in brackets, MiB (2^20 bytes); rounds are outermost, so "
      "each round measures every configuration once.\n")

print("| worker `--concurrency` | database | idle RSS, DB loaded | load peak | peak RSS during scans | RSS after scans | scans (ok / failed) | scan wall time |")
print("|---|---|---|---|---|---|---|---|")
def cell(xs): return f"**{fmt(med(xs))}** ({', '.join(fmt(x) for x in xs)})" if xs else "—"
for db in ("corpus", "tiny"):
    for k in concs:
        sel = [r for r in rows if r[0] == db and int(r[1]) == k]
        ok = sum(int(r[10]) for r in sel); bad = sum(int(r[11]) for r in sel)
        wall = med([float(r[12]) for r in sel])
        label = f"corpus ({db_mib:.1f} MiB)" if db == "corpus" else "tiny (1 advisory)"
        print(f"| {k} | {label} | {cell(series(db, k, 3))} | {fmt(med(series(db, k, 4)))} | {cell(series(db, k, 5))} | "
              f"{fmt(med(series(db, k, 6)))} | {ok} / {bad} | {wall:.1f} s |")
swap = [float(r[7]) / MiB for r in rows if r[0] == "corpus" and r[7] != "-"]
swap_rss = [float(r[8]) / MiB for r in rows if r[0] == "corpus" and r[8] != "-"]
idle_c = [float(r[3]) / MiB for r in rows if r[0] == "corpus"]
idle_t = [float(r[3]) / MiB for r in rows if r[0] == "tiny"]
after_c = [float(r[6]) / MiB for r in rows if r[0] == "corpus"]
print(f"\nDatabase update while idle (corpus → a newer corpus build, after the scans; every corpus run): peak "
      f"**{fmt(med(swap))} MiB** ({', '.join(fmt(x) for x in swap)}), RSS after the swap {fmt(med(swap_rss))} MiB.")

# The fit: peak(C) = a + b·C, least squares over the per-concurrency medians.
def fit(db):
    xs = concs
    ys = [med(series(db, k, 5)) for k in xs]
    if len(xs) < 2:
        return ys[0], 0.0, ys
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b, ys
a, b, ys = fit("corpus")
ta, tb, tys = fit("tiny")
base = med(idle_t)
db_share = med(idle_c) - base
fixed = a - med(idle_c)
update_extra = med(swap) - med(after_c) if swap else 0.0
resid = max(abs(y - (a + b * k)) for k, y in zip(concs, ys))
print("\n**Fit.** Least squares of the median peak against the concurrency C over "
      f"C = {', '.join(map(str, concs))}: corpus database peak ≈ **{fmt(a)} + {fmt(b)} × C MiB** (largest residual "
      f"{fmt(resid)} MiB); tiny database {fmt(ta)} + {fmt(tb)} × C MiB. Split of the intercept: base = idle RSS with the tiny "
      f"database, {fmt(base)} MiB; database share = idle RSS with the corpus database − base = {fmt(db_share)} MiB "
      f"({db_share / c['advisories'] * 1000:.2f} MiB per 1,000 advisories, {db_share / db_mib:.1f}× the file); "
      f"scan machinery (runtime, allocator arenas, HTTP client, kept after the first scan) = intercept − idle RSS with the database = "
      f"{fmt(fixed)} MiB. A database update costs up to its share once more while both versions are held "
      f"(measured here: update peak − RSS before it = {fmt(update_extra)} MiB).\n")
print(f"**Rule:** peak ≈ {fmt(base)} MiB base + database share ({fmt(db_share)} MiB for this corpus) + {fmt(fixed)} MiB + "
      f"{fmt(b)} MiB per concurrent scan; add one more database share for an update arriving mid-scan. Image size does not enter it.")
for k in concs:
    worst = max(series("corpus", k, 5))
    print(f"- C = {k}: measured peak {fmt(med(series('corpus', k, 5)))} MiB (worst run {fmt(worst)}), rule {fmt(a + b * k)} MiB, "
          f"with an update mid-scan {fmt(a + b * k + db_share)} MiB")
PY
echo "wrote $out_md" >&2
