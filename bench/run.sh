#!/usr/bin/env bash
# The benchmark matrix, measured on this machine with the load generator on the same machine:
#
#   {otppin=none, token PIN} x {no event definitions, 20 non-matching, 2 matching} x {SQLite, PostgreSQL}
#
# plus an open-loop run at a fixed rate (p99 from the scheduled send time), runs with 100,000
# tokens (p50 against 1,000; RSS, also with reply attributes on every Accept), and optionally
# the reference systems measured in the same run with the scripts in ../shared/anchors:
# FreeRADIUS's PAP-from-file floor (--with-freeradius) and privacyIDEA 3.14 with one HOTP token
# per user, OTP only, with one event handler, and with the token PIN (--with-privacyidea; its
# first set-up takes about ten minutes, later runs reuse it from $PI_WORK, default
# /tmp/anchors).
#
#   bench/run.sh [--with-freeradius] [--with-privacyidea] [--duration SECONDS] [--rounds N]
#                [--skip-postgres] [--skip-pin] [--skip-ldap] [--soak]
#
# The directory cells (SQLite, in every round after the file-resolver cells they compare with)
# take the users from an OpenLDAP slapd the run starts: OTP only (a cached lookup), the token
# PIN, and otppin=userstore (one bind per login; slapd's CPU per login is recorded too).
#
# --soak adds a cell of three minutes at 2,000 logins/s with no /metrics listener: its RSS
# after the warm-up and its growth per minute tell a leak from the allocator's noise.
#
# The targets that compare two cells (event definitions against none, 100,000 tokens against
# 1,000) are ratios, and this machine's speed drifts by up to 20 % from one minute to the next.
# So the cells they compare run interleaved, in --rounds rounds (default 3): each round runs
# the baseline and its variants back to back, a ratio is taken within each round, and the
# table reports the median over the rounds next to every single value. The open-loop runs are
# repeated in every round too, and their p99 and p50 are judged the same way.
#
# Every cell gets a fresh store and a fresh import, so every request carries a fresh valid OTP.
# The server runs the release build with MALLOC_ARENA_MAX=2 (as docs/performance.md
# recommends for the service). Results: bench/results/<time>/results.jsonl and table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

with_fr=0; with_pi=0; duration=10; rounds=3; skip_pg=0; skip_pin=0; skip_ldap=0; soak=0
while [ $# -gt 0 ]; do
  case "$1" in
    --with-freeradius) with_fr=1 ;;
    --with-privacyidea) with_pi=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --skip-postgres) skip_pg=1 ;;
    --skip-pin) skip_pin=1 ;;
    --skip-ldap) skip_ldap=1 ;;
    --soak) soak=1 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --quiet
BIN=$ROOT/target/release/otpgate
OUT=$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
PORT=18120
SECRET=benchsecret
export MALLOC_ARENA_MAX=2

# ---------------------------------------------------------------- PostgreSQL (own cluster)
PG_DIR=$OUT/pg
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
# the cluster's data directory goes too (its logs stay)
SLAPD_DIR=$OUT/slapd
trap 'stop_server; stop_pg; stop_slapd; rm -rf "$PG_DIR/data" "$SLAPD_DIR/db"' EXIT

# ---------------------------------------------------------------- one cell
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}

# events NAME -> TOML for the event dimension
events() {
  case "$1" in
    none) ;;
    20-nonmatching)
      for i in $(seq 1 10); do printf '[[event]]\nname = "nm-result-%s"\nevent = "validate_check"\nhandler = "Logging"\naction = "logging"\nconditions = { result_value = "False" }\n' "$i"; done
      for i in $(seq 1 5); do printf '[[event]]\nname = "nm-realm-%s"\nevent = "validate_check"\nhandler = "Counter"\naction = "increase_counter"\nconditions = { realm = "elsewhere" }\noptions = { counter_name = "x" }\n' "$i"; done
      for i in $(seq 1 5); do printf '[[event]]\nname = "nm-type-%s"\nevent = "validate_check"\nhandler = "Token"\naction = "disable"\nconditions = { tokentype = "totp", result_value = "True" }\n' "$i"; done ;;
    2-matching)
      printf '[[event]]\nname = "count"\nevent = "validate_check"\nhandler = "Counter"\naction = "increase_counter"\noptions = { counter_name = "logins" }\n'
      printf '[[event]]\nname = "log"\nevent = "validate_check"\nhandler = "Logging"\naction = "logging"\n' ;;
  esac
}

# reply NAME -> TOML for the reply attributes: none, or the kind the example configuration sends
# (each Access-Accept then carries them, and the duplicate cache keeps them for retransmits)
reply() {
  [ "$1" = attributes ] || return 0
  printf '[[radius.reply]]\nrealm = "bench"\nattributes = { "Class" = "vpn", "Session-Timeout" = 28800, "Reply-Message" = "welcome" }\n'
}

# cell LABEL BACKEND PIN(none|pin|userstore) EVENTS USERS MODE(conc:N|rate:R)
#      [REPLY(none|attributes)] [DIRECTORY(file|ldap)]
cell() {
  local label=$1 backend=$2 pin=$3 ev=$4 users=$5 mode=$6 rep=${7:-none} from=${8:-file}
  local dir=$OUT/cell-$(echo "$label" | tr -c 'A-Za-z0-9' '-')r$ROUND
  mkdir -p "$dir"; cd "$dir"
  seed_files "$users"
  local url="sqlite:otpgate.db"
  if [ "$backend" = postgres ]; then
    local db="bench_$RANDOM$RANDOM"
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $db" >/dev/null
    url="postgres://postgres@127.0.0.1:$PG_PORT/$db"
  fi
  local policy='[[policy]]
name = "no-pin"
scope = "authentication"
actions = { otppin = "none" }'
  [ "$pin" = pin ] && policy=""
  [ "$pin" = userstore ] && policy=${policy/otppin = \"none\"/otppin = \"userstore\"}
  { node_config "$url" "$PORT" "$SECRET" "$from"; cat <<EOF
$policy
$(reply "$rep")
$(events "$ev")
EOF
  } > otpgate.toml
  chmod 600 otpgate.toml   # it holds the RADIUS secret: serve refuses a readable one
  "$BIN" -c otpgate.toml init >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$pin" = pin ]; then "$BIN" -c otpgate.toml token import tokens.csv --pin 1234 >/dev/null
  else "$BIN" -c otpgate.toml token import tokens.csv >/dev/null; fi
  t1=$(date +%s.%N)
  OTPGATE_LOG=warn,pi-eventlogger=info "$BIN" -c otpgate.toml serve >serve.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 50); do grep -q "otpgate ready" serve.log 2>/dev/null && break; sleep 0.1; done
  local args=(--concurrency "${mode#conc:}")
  [ "${mode%%:*}" = rate ] && args=(--rate "${mode#rate:}")
  local pinarg=(); [ "$pin" != none ] && pinarg=(--pin 1234)
  local slapd0=0; [ "$from" = ldap ] && slapd0=$(cpu_ticks "$SLAPD_PID")
  "$BIN" bench --server "127.0.0.1:$PORT" --secret "$SECRET" --tokens tokens.csv "${pinarg[@]}" \
    "${args[@]}" --duration "$duration" --warmup 2 --server-pid "$SERVER_PID" --json > bench.json
  stop_server
  local slapd_ticks=0; [ "$from" = ldap ] && slapd_ticks=$(( $(cpu_ticks "$SLAPD_PID") - slapd0 ))
  # the store and the seeds are gigabytes over a run (WAL files, 100,000 tokens); the results,
  # the configuration and the server's log stay
  rm -f otpgate.db otpgate.db-wal otpgate.db-shm tokens.csv users.csv
  if [ "$backend" = postgres ]; then
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE $db" >/dev/null || true
  fi
  python3 - "$label" "$backend" "$pin" "$ev" "$users" "$mode" "$(echo "$t1 - $t0" | bc)" "$ROUND" \
    "$from" "$slapd_ticks" "$(getconf CLK_TCK)" >> "$RESULTS" <<'PY'
import json, sys
d = json.load(open("bench.json"))
d.update(label=sys.argv[1], backend=sys.argv[2], pin=sys.argv[3], events=sys.argv[4],
         users=int(sys.argv[5]), load=sys.argv[6], import_seconds=float(sys.argv[7]),
         round=int(sys.argv[8]), directory=sys.argv[9])
if sys.argv[9] == "ldap" and d["accepted"]:
    d["slapd_cpu_ms_per_login"] = int(sys.argv[10]) / int(sys.argv[11]) * 1000 / d["accepted"]
print(json.dumps(d))
PY
  tail -n 1 "$RESULTS" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("round %d  %-44s %8.0f/s  cpu %.4f ms  p50 %.2f  p99 %.2f  rss %.1f MiB (%+.2f/min)  (%d acc, %d rej, %d lost)" % (
    d["round"], d["label"], d["accepted_per_second"], d.get("server_cpu_ms_per_login") or 0, d["p50_ms"],
    d["p99_ms"], d.get("server_rss_mib") or 0, d.get("server_rss_growth_mib_per_min") or 0,
    d["accepted"], d["rejected"], d["lost"]))'
  cd "$ROOT"
}

# ---------------------------------------------------------------- the runs
# How steady the CPU is today (a host that slows its guests down now and then shows in every
# tail latency): recorded with the results.
python3 "$ROOT/bench/hostcheck.py" 8 > "$OUT/hostcheck.json"
echo "host CPU: $(cat "$OUT/hostcheck.json")"
# The compared cells of one backend, otppin=none: the baseline, its two event variants and
# (SQLite) 100,000 tokens and the open loop, back to back in every round. 100,000 tokens run
# twice: closed loop (where p50 is the outstanding requests over the throughput) and at the
# open loop's rate (where p50 is one login's latency at the same load).
compared_round() {
  local backend=$1
  for ev in none 20-nonmatching 2-matching; do
    cell "$backend otppin=none events=$ev" "$backend" none "$ev" 1000 "conc:128"
  done
  if [ "$backend" = sqlite ]; then
    cell "sqlite 100000 tokens" sqlite none none 100000 "conc:128"
    cell "sqlite 100000 tokens reply attributes" sqlite none none 100000 "conc:128" attributes
    cell "sqlite open loop 5000/s" sqlite none none 1000 "rate:5000"
    cell "sqlite 100000 tokens open loop 5000/s" sqlite none none 100000 "rate:5000"
  fi
}
# With a token PIN the target is absolute (logins/s per core, almost all of it argon2), and on
# a host whose speed drifts one cell of ten seconds can land in a slow minute: the cell without
# definitions runs in every round and is judged by the median, like the compared cells. The two
# event variants, which no target judges, run in the first round only.
pin_cells() {
  local backend=$1 evs=none
  [ "$skip_pin" = 0 ] || return 0
  [ "$ROUND" = 1 ] && evs="none 20-nonmatching 2-matching"
  for ev in $evs; do
    cell "$backend otppin=pin events=$ev" "$backend" pin "$ev" 1000 "conc:8"
  done
}
# Users from slapd, beside the file-resolver cells of the same round: OTP only (every lookup
# after the first from the cache), the token PIN, and the directory password (a bind a login).
directory_cells() {
  [ "$skip_ldap" = 0 ] || return 0
  cell "sqlite ldap users otppin=none" sqlite none none 1000 "conc:128" none ldap
  if [ "$skip_pin" = 0 ]; then
    cell "sqlite ldap users otppin=pin" sqlite pin none 1000 "conc:8" none ldap
  fi
  cell "sqlite ldap users otppin=userstore" sqlite userstore none 1000 "conc:32" none ldap
}
# SQLite first and PostgreSQL started only after it: that server's checkpoints and autovacuum
# share the disk and the two cores.
[ "$skip_ldap" = 0 ] && start_slapd 1000
for ROUND in $(seq 1 "$rounds"); do compared_round sqlite; pin_cells sqlite; directory_cells; done
stop_slapd
if [ "$skip_pg" = 0 ]; then
  start_pg
  for ROUND in $(seq 1 "$rounds"); do compared_round postgres; pin_cells postgres; done
  stop_pg
fi

if [ "$soak" = 1 ]; then
  ROUND=1 duration=180 cell "sqlite soak 2000/s, 3 minutes" sqlite none none 1000 "rate:2000"
fi

if [ "$with_fr" = 1 ]; then
  ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
  echo "== FreeRADIUS PAP-from-file floor ($ANCHORS)"
  "$ANCHORS/setup-freeradius.sh" >/dev/null
  RESULTS_FR=$OUT/freeradius.jsonl
  RESULTS=$RESULTS_FR REPS=1 RATES_A="" N_A=40000 ANCHOR_WORK=$OUT/anchors "$ANCHORS/bench-freeradius.sh" | tail -n 2
fi

if [ "$with_pi" = 1 ]; then
  ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
  PI_WORK=${PI_WORK:-/tmp/anchors}
  echo "== privacyIDEA ($ANCHORS, set up in $PI_WORK)"
  command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  # Setting up enrolls a token with an argon2-hashed PIN per user (about ten minutes): done once.
  # The runs leave the tokens usable, as the load generator reads their counters from the DB.
  if [ ! -s "$PI_WORK/pi/pi.sqlite" ] || ! "$PI_WORK/pi-venv/bin/pip" show privacyidea >/dev/null 2>&1; then
    ANCHOR_WORK=$PI_WORK "$ANCHORS/setup-privacyidea.sh" | tail -n 1
  fi
  # direct (HTTP /validate/check), one round of each configuration: OTP only, OTP only with
  # the event handler on, and the token PIN
  RESULTS=$OUT/privacyidea.jsonl REPS=1 DUR=20 VIA_FR=0 ANCHOR_WORK=$PI_WORK \
    CONFIGS="none-ev-off none-ev-on default" "$ANCHORS/bench-privacyidea.sh" | grep -v '^{'
fi

python3 "$ROOT/bench/summarize.py" "$RESULTS" "$OUT/freeradius.jsonl" "$OUT/hostcheck.json" \
  "$OUT/privacyidea.jsonl" > "$OUT/table.md"
echo
cat "$OUT/table.md"
echo
echo "results: $OUT"
