#!/usr/bin/env bash
# Host scan of this machine, side by side with Syft: wall time, peak RSS and
# agreement on the Debian package set. Usage: loadtest/bench-host.sh [--no-syft]
# Both walk / minus the pseudo-filesystems; the first Trawl run may pay for a
# cold page cache, so Trawl runs twice and both figures are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup >/dev/null
cargo build -q --release --locked -p trawl-scanner
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -n 1; }
for run in 1 2; do
  read -r secs kib < <(measure target/release/trawl-scanner -q sbom --host -o "$out/trawl.json")
  printf 'trawl run %s: %s s, peak RSS %s MiB\n' "$run" "$secs" "$((kib / 1024))"
done
if [ "${1:-}" != "--no-syft" ]; then
  read -r secs kib < <(measure syft scan dir:/ -q -o "syft-json=$out/syft.json" \
    --exclude './proc/**' --exclude './sys/**' --exclude './dev/**' --exclude './run/**')
  printf 'syft %s: %s s, peak RSS %s MiB\n' "$(syft version 2>/dev/null | awk '/^Version/ {print $2}')" "$secs" "$((kib / 1024))"
fi
python3 - "$out" <<'PY'
import json, subprocess, sys, pathlib
out = pathlib.Path(sys.argv[1])
trawl = json.loads((out / "trawl.json").read_text())
deb = {(p["name"], p["version"]) for p in trawl["packages"] if p["type"] == "deb"}
q = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"], capture_output=True, text=True, check=True)
dpkg = {tuple(l.split("\t")[1:3]) for l in q.stdout.splitlines() if l[1:2] == "i"}
print(f"trawl: {len(trawl['packages'])} packages, {len(deb)} deb; dpkg-query: {len(dpkg)} installed; equal: {deb == dpkg}")
syft = out / "syft.json"
if syft.exists():
    s = {(a["name"], a["version"]) for a in json.loads(syft.read_text())["artifacts"] if a["type"] == "deb"}
    print(f"syft: {len(s)} deb; equal to trawl's: {s == deb}")
PY
