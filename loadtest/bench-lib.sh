# Helpers shared by the loadtest/bench-*.sh scripts, which source this file
# after setting BENCH (their name, for messages) and work (their work
# directory, whose *.log files are shown when a wait times out).

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for WHAT SECONDS COMMAND…: polls COMMAND until it succeeds; after
# SECONDS, exits with the logs. For servers coming up and files appearing,
# which have no event to wait on from a shell.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "$BENCH: $what did not happen within ${secs}s; logs:" >&2
      tail -n 20 "$work"/*.log >&2
      exit 1
    fi
    sleep 0.2
  done
}

# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# A random API token for the run's controller.
new_api_token() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

# settled COUNT: whether registry `bench` of the controller at $api has COUNT
# images, each with a result (scanned or failed).
settled() {
  curl -sf "$api/api/v1/registries/bench" -o "$work/status.json" || return 1
  python3 - "$work/status.json" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if s["images_total"] == int(sys.argv[2]) and s["scanned"] + s["failed"] == s["images_total"] else 1)
PY
}
