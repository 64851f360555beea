#!/usr/bin/env bash
# Two builds of the server side by side on this machine, interleaved: the guard for changes
# that must not cost a login anything (a refactoring, a dependency upgrade).
#
#   bench/compare.sh BEFORE_BINARY AFTER_BINARY [--rounds N] [--duration SECONDS] [--skip-postgres]
#
# Every round runs each cell on both builds back to back (which build goes first alternates),
# so the machine's drift from one minute to the next falls on both. The cells: SQLite with
# 1,000 and with 100,000 tokens and PostgreSQL with 1,000, closed loop with 128 outstanding
# requests, otppin=none. The load generator is the AFTER build's for both. Results:
# bench/results/compare-<time>/results.jsonl and table.md (medians over the rounds and the
# after/before ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
BEFORE=$(realpath "$1"); AFTER=$(realpath "$2"); shift 2
rounds=3; duration=10; skip_pg=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --skip-postgres) skip_pg=1 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
OUT=$ROOT/bench/results/compare-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
PORT=18121
SECRET=benchsecret
export MALLOC_ARENA_MAX=2
PG_DIR=$OUT/pg
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}
trap 'stop_server; stop_pg; rm -rf "$PG_DIR/data"' EXIT

# cell BUILD BINARY BACKEND USERS
cell() {
  local build=$1 bin=$2 backend=$3 users=$4
  local label="$backend $users tokens"
  local dir=$OUT/$build-$backend-$users-r$ROUND
  mkdir -p "$dir"; cd "$dir"
  seed_files "$users"
  local url="sqlite:otpgate.db"
  if [ "$backend" = postgres ]; then
    local db="cmp_$RANDOM$RANDOM"
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $db" >/dev/null
    url="postgres://postgres@127.0.0.1:$PG_PORT/$db"
  fi
  { node_config "$url" "$PORT" "$SECRET"
    printf '[[policy]]\nname = "no-pin"\nscope = "authentication"\nactions = { otppin = "none" }\n'
  } > otpgate.toml
  chmod 600 otpgate.toml   # it holds the RADIUS secret: serve refuses a readable one
  "$bin" -c otpgate.toml init >/dev/null
  "$bin" -c otpgate.toml token import tokens.csv >/dev/null
  OTPGATE_LOG=warn "$bin" -c otpgate.toml serve >serve.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 50); do grep -q "otpgate ready" serve.log 2>/dev/null && break; sleep 0.1; done
  "$AFTER" bench --server "127.0.0.1:$PORT" --secret "$SECRET" --tokens tokens.csv \
    --concurrency 128 --duration "$duration" --warmup 2 --server-pid "$SERVER_PID" --json > bench.json
  stop_server
  rm -f otpgate.db otpgate.db-wal otpgate.db-shm tokens.csv users.csv
  if [ "$backend" = postgres ]; then
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE $db" >/dev/null || true
  fi
  python3 -c '
import json, sys
d = json.load(open("bench.json"))
d.update(build=sys.argv[1], label=sys.argv[2], round=int(sys.argv[3]))
print(json.dumps(d))' "$build" "$label" "$ROUND" >> "$RESULTS"
  tail -n 1 "$RESULTS" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("round %d  %-6s %-22s %8.0f/s  cpu %.4f ms  rss %.1f MiB  (%d acc, %d rej, %d lost)" % (
    d["round"], d["build"], d["label"], d["accepted_per_second"],
    d.get("server_cpu_ms_per_login") or 0, d.get("server_rss_mib") or 0,
    d["accepted"], d["rejected"], d["lost"]))'
  cd "$ROOT"
}

both() {
  local backend=$1 users=$2
  if [ $((ROUND % 2)) = 1 ]; then
    cell before "$BEFORE" "$backend" "$users"; cell after "$AFTER" "$backend" "$users"
  else
    cell after "$AFTER" "$backend" "$users"; cell before "$BEFORE" "$backend" "$users"
  fi
}

for ROUND in $(seq 1 "$rounds"); do both sqlite 1000; both sqlite 100000; done
if [ "$skip_pg" = 0 ]; then
  start_pg
  for ROUND in $(seq 1 "$rounds"); do both postgres 1000; done
  stop_pg
fi

python3 - "$RESULTS" > "$OUT/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cells = sorted({r["label"] for r in rows}, key=lambda l: [r["label"] for r in rows].index(l))
def med(label, build, key):
    v = [r.get(key) or 0 for r in rows if r["label"] == label and r["build"] == build]
    return statistics.median(v) if v else 0
print("| cell | logins/s before | after | Δ | CPU ms/login before | after | Δ | RSS MiB before | after |")
print("|---|---|---|---|---|---|---|---|---|")
for c in cells:
    tb, ta = med(c, "before", "accepted_per_second"), med(c, "after", "accepted_per_second")
    cb, ca = med(c, "before", "server_cpu_ms_per_login"), med(c, "after", "server_cpu_ms_per_login")
    rb, ra = med(c, "before", "server_rss_mib"), med(c, "after", "server_rss_mib")
    pct = lambda a, b: f"{(a / b - 1) * 100:+.1f} %" if b else "–"
    print(f"| {c} | {tb:,.0f} | {ta:,.0f} | {pct(ta, tb)} | {cb:.4f} | {ca:.4f} | {pct(ca, cb)} | {rb:.1f} | {ra:.1f} |")
PY
echo; cat "$OUT/table.md"; echo; echo "results: $OUT"
