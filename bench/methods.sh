#!/usr/bin/env bash
# Server CPU per login by RADIUS method: PAP, CHAP and MS-CHAPv2 with otppin=none, side by side
# and interleaved in --rounds rounds on SQLite with 1,000 HOTP tokens. Each method runs twice:
# with the token's next OTP (the first candidate of the window) and with the OTP nine counters
# ahead (--otp-offset 9), the last of the default window of 10, so CHAP and MS-CHAPv2 compute
# the whole window before the match. The table gives the median of the rounds.
#
#   bench/methods.sh [--rounds N] [--duration SECONDS] [--concurrency N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

rounds=3; duration=8; concurrency=32
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --concurrency) concurrency=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --quiet
BIN=$ROOT/target/release/otpgate
OUT=$ROOT/bench/results/methods-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
PORT=18140
SECRET=benchsecret
export MALLOC_ARENA_MAX=2
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}
trap stop_server EXIT

# cell METHOD OFFSET ROUND
cell() {
  local method=$1 offset=$2 round=$3
  local dir=$OUT/$method-$offset-r$round
  mkdir -p "$dir"; cd "$dir"
  seed_files 1000
  { node_config "sqlite:otpgate.db" "$PORT" "$SECRET"; cat <<'TOML'
[[policy]]
name = "no-pin"
scope = "authentication"
actions = { otppin = "none" }
TOML
  } > otpgate.toml
  chmod 600 otpgate.toml
  "$BIN" -c otpgate.toml init >/dev/null
  "$BIN" -c otpgate.toml token import tokens.csv >/dev/null
  OTPGATE_LOG=warn "$BIN" -c otpgate.toml serve >serve.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 50); do grep -q "otpgate ready" serve.log 2>/dev/null && break; sleep 0.1; done
  "$BIN" bench --server "127.0.0.1:$PORT" --secret "$SECRET" --tokens tokens.csv --suffix @bench \
    --method "$method" --otp-offset "$offset" --concurrency "$concurrency" \
    --duration "$duration" --warmup 2 --server-pid "$SERVER_PID" --json > bench.json
  stop_server
  rm -f otpgate.db otpgate.db-wal otpgate.db-shm
  python3 - "$method" "$offset" "$round" >> "$OUT/results.jsonl" <<'PY'
import json, sys
d = json.load(open("bench.json"))
d.update(method=sys.argv[1], otp_offset=int(sys.argv[2]), round=int(sys.argv[3]))
print(json.dumps(d))
PY
  tail -n 1 "$OUT/results.jsonl" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("round %d  %-9s offset %d  %8.0f/s  cpu %.4f ms/login  (%d acc, %d rej, %d lost)" % (
    d["round"], d["method"], d["otp_offset"], d["accepted_per_second"],
    d.get("server_cpu_ms_per_login") or 0, d["accepted"], d["rejected"], d["lost"]))'
  cd "$ROOT"
}

for round in $(seq 1 "$rounds"); do
  for offset in 0 9; do
    for method in pap chap mschapv2; do
      cell "$method" "$offset" "$round"
    done
  done
done

python3 - "$OUT/results.jsonl" > "$OUT/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(method, offset, key):
    v = [r.get(key) or 0 for r in rows if r["method"] == method and r["otp_offset"] == offset]
    return statistics.median(v) if v else 0
print("| method | OTP position | logins/s | server CPU ms/login | × PAP (same position) |")
print("|---|---|---|---|---|")
for offset, where in [(0, "first of window"), (9, "last of window (10)")]:
    pap = med("pap", offset, "server_cpu_ms_per_login")
    for m in ["pap", "chap", "mschapv2"]:
        cpu = med(m, offset, "server_cpu_ms_per_login")
        print("| %s | %s | %.0f | %.4f | %.2f |" % (m, where, med(m, offset, "accepted_per_second"), cpu, cpu / pap if pap else 0))
PY
cat "$OUT/table.md"
