#!/usr/bin/env bash
# The main job, from nothing: installs packages, builds, then shows four copies
# of an unmodified single-process server (python3 -m http.server) sharing one
# port on a pretend Linux 3.2 (reuseport-legacy-kernel), and how the broker
# spread the connections over them.
# Usage: scripts/demo.sh [copies] [requests]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
build="${REUSEPORT_BUILD_DIR:-$repo/build}"
copies="${1:-4}"
requests="${2:-2000}"
legacy="$build/tools/legacy_kernel/reuseport-legacy-kernel --kernel 3.2 --"
run="$build/tools/run/reuseport-run"
ctl="$build/tools/ctl/reuseportctl"
work="$(mktemp -d /tmp/reuseport-demo.XXXXXX)"
socket="$work/reuseportd.sock"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo
echo "== On Linux 3.2 a second server cannot bind the same port:"
$legacy python3 -m http.server "$port" --bind 127.0.0.1 >"$work/plain1.log" 2>&1 &
pids+=($!)
python3 - "$port" <<'PY'
import socket, sys, time
for _ in range(200):                     # until the first server listens (bounded)
    try: socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close(); break
    except OSError: time.sleep(0.02)
PY
if $legacy python3 -m http.server "$port" --bind 127.0.0.1 >"$work/plain2.log" 2>&1; then :; fi
echo "   second copy: $(grep -o 'OSError.*' "$work/plain2.log" | head -1)"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

echo
echo "== Starting reuseportd (as on Linux 3.2) and $copies copies of python3 -m http.server on port $port"
$legacy "$build/broker/reuseportd" --socket "$socket" --log_level warning 2>"$work/reuseportd.log" &
pids+=($!)
for _ in $(seq 500); do [ -S "$socket" ] && "$ctl" --socket "$socket" status >/dev/null 2>&1 && break; sleep 0.01; done
for i in $(seq "$copies"); do
  $legacy "$run" --socket "$socket" --ports "$port" -- python3 -m http.server "$port" --bind 127.0.0.1 \
    >"$work/server$i.log" 2>&1 &
  pids+=($!)
done
python3 - "$ctl" "$socket" "$copies" <<'PY'
import json, subprocess, sys, time
ctl, sock, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(1000):                    # until every copy has joined (bounded)
    doc = json.loads(subprocess.check_output([ctl, "--socket", sock, "status", "--json"]))
    if sum(len(g["members"]) for g in doc["groups"]) == want: break
    time.sleep(0.01)
else:
    sys.exit("not every server joined")
PY

echo "== Sending $requests HTTP requests to 127.0.0.1:$port"
python3 - "$port" "$requests" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
ok, start = 0, time.time()
for i in range(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("HEAD", "/")
    ok += c.getresponse().status == 200
    c.close()
print("   %d of %d answered in %.1fs" % (ok, n, time.time() - start))
PY

echo
echo "== reuseportctl status"
"$ctl" --socket "$socket" status
