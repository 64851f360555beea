#!/usr/bin/env bash
# A PostgreSQL outage under load: one node on a PostgreSQL of its own, the load generator in open
# loop at --rate logins/s for --duration s. After --stop-at s of the measurement the database is
# stopped (pg_ctl -m fast: connections are cut, as in a restart or a failover) and --down-for s
# later started again on the same port. With --stall it is not stopped: its commits stall
# instead, as on a primary whose synchronous standby is gone (synchronous_standby_names names a
# standby that never connects), until the setting is reset --down-for s later; the generator
# then waits up to 7 s for an answer, past the node's default commit_timeout of 5 s.
#
#   bench/outage.sh [--rate 2000] [--duration 20] [--stop-at 6] [--down-for 6] [--stall]
#
# Prints the generator's summary, the latency of the requests scheduled in each half second
# (p50 and max, from the scheduled send time), the node's log lines about the database, and
# what became of every login's audit row (in the database, or in the log when the audit queue
# was full). docs/cluster.md, "When PostgreSQL goes away", has a run. Results:
# bench/results/outage-<time>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
rate=2000 duration=20 stop_at=6 down_for=6 stall=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift ;;
    --duration) duration=$2; shift ;;
    --stop-at) stop_at=$2; shift ;;
    --down-for) down_for=$2; shift ;;
    --stall) stall=1 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --quiet
BIN=$ROOT/target/release/otpgate
OUT=$ROOT/bench/results/outage-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
PG_DIR=$OUT/pg
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
SERVER_PID=""
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; stop_pg; rm -rf "$PG_DIR/data"' EXIT
start_pg
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE outage" >/dev/null

cd "$OUT"
seed_files 1000
{ node_config "postgres://postgres@127.0.0.1:$PG_PORT/outage" 18121 benchsecret; cat <<EOF
[[policy]]
name = "no-pin"
scope = "authentication"
actions = { otppin = "none" }
EOF
} > otpgate.toml
chmod 600 otpgate.toml   # it holds the RADIUS secret: serve refuses a readable one
"$BIN" -c otpgate.toml init >/dev/null
"$BIN" -c otpgate.toml token import tokens.csv >/dev/null
OTPGATE_LOG=warn MALLOC_ARENA_MAX=2 "$BIN" -c otpgate.toml serve >serve.log 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do grep -q "otpgate ready" serve.log 2>/dev/null && break; sleep 0.1; done

sync_standby() {
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "ALTER SYSTEM $1" -c "SELECT pg_reload_conf()" >/dev/null
}
warmup=2 timeout_ms=2000
[ -n "$stall" ] && timeout_ms=7000
(
  sleep "$(echo "$warmup + $stop_at" | bc)"
  if [ -n "$stall" ]; then sync_standby "SET synchronous_standby_names = 'gone'"; else stop_pg; fi
  date +%s.%N > stopped
  sleep "$down_for"; date +%s.%N > starting
  if [ -n "$stall" ]; then sync_standby "RESET synchronous_standby_names"; else resume_pg; fi
  date +%s.%N > started
) &
OUTAGE_PID=$!
date +%s.%N > began
"$BIN" bench --server 127.0.0.1:18121 --secret benchsecret --tokens tokens.csv --rate "$rate" \
  --duration "$duration" --warmup "$warmup" --server-pid "$SERVER_PID" --timeline timeline.csv \
  --timeout-ms "$timeout_ms" | tee bench.txt
wait "$OUTAGE_PID"
sleep 3 # the audit queue drains into the database that came back
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

python3 - "$warmup" "$stall" <<'PY'
import collections, csv, sys
start = float(open("began").read()) + float(sys.argv[1])
t = {n: float(open(n).read()) - start for n in ("stopped", "starting", "started")}
if sys.argv[2]:
    print(f"\nCommits stalled from {t['stopped']:.2f} s, released at {t['starting']:.2f} s\n")
else:
    print(f"\nPostgreSQL stopped at {t['stopped']:.2f} s, started at {t['starting']:.2f} s "
          f"(accepting connections at {t['started']:.2f} s)\n")
buckets = collections.defaultdict(list)
for row in list(csv.reader(open("timeline.csv")))[1:]:
    buckets[int(row[0]) // 500_000].append(int(row[1]))
print("scheduled  requests   p50 ms    max ms")
for b in sorted(buckets):
    v = sorted(buckets[b])
    print(f"{b * 0.5:7.1f} s  {len(v):8d}  {v[len(v) // 2] / 1000:7.1f}  {v[-1] / 1000:8.1f}")
PY
echo
grep -E "otpgate::store: (the database|slow commit)" serve.log | sed 's/^[^ ]* *//' || true
in_db=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d outage -tAc \
  "SELECT COUNT(*) FILTER (WHERE success = 1) || ' accepted, ' || COUNT(*) FILTER (WHERE success = 0) || ' refused' FROM audit WHERE event = 'validate_check'")
in_log=$(grep -c "audit row written to the log instead" serve.log || true)
echo "audit rows (warm-up included): in the database $in_db; written to the log instead: $in_log"
