#!/usr/bin/env bash
# Binds through the LDAP proxy against the same binds straight to slapd, interleaved in
# rounds: binds per second, otpgate's CPU per proxied bind (password+OTP: an upstream bind and
# the OTP check) and slapd's CPU per plain bind. The client is Python's ldap3 (in a venv).
#
#   bench/ldap_proxy.sh [--rounds N] [--duration SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
rounds=3; duration=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
cargo build --release --quiet
BIN=$ROOT/target/release/otpgate
OUT=$ROOT/bench/results/ldap-proxy-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
venv=$ROOT/target/bench-venv
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import ldap3' 2>/dev/null || {
  python3 -m venv "$venv"; "$venv/bin/pip" install -q --disable-pip-version-check 'ldap3==2.9.*'; }
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
SLAPD_DIR=$OUT/slapd
SERVER_PID=""
trap 'kill $SERVER_PID 2>/dev/null || true; stop_slapd; rm -rf "$SLAPD_DIR/db"' EXIT
start_slapd 100
cd "$OUT"
seed_files 100
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hz=$(getconf CLK_TCK)
results=$OUT/results.jsonl
for round in $(seq 1 "$rounds"); do
  # straight to slapd
  s0=$(cpu_ticks "$SLAPD_PID")
  line=$("$venv/bin/python" "$ROOT/bench/ldap_binds.py" "ldap://127.0.0.1:$SLAPD_PORT" "$duration" 8 tokens.csv)
  s1=$(cpu_ticks "$SLAPD_PID")
  echo "$line" | python3 -c "import json,sys; d=json.load(sys.stdin); d.update(round=$round, cell='direct', slapd_ms=($s1-$s0)/$hz*1000/max(d['binds'],1)); print(json.dumps(d))" >> "$results"
  # through the proxy, a fresh store and fresh counters every round
  rm -f otpgate.db* secret.key
  { node_config "sqlite:otpgate.db" 0 benchsecret ldap
    printf '[ldap_proxy]\nlisten = ["127.0.0.1:%s"]\nupstream = ["ldap://127.0.0.1:%s"]\n' "$PORT" "$SLAPD_PORT"
    printf 'user_dn = ["uid={user},ou=people,dc=bench"]\nrealm = "bench"\npassword = "password+otp"\n'
  } > otpgate.toml
  chmod 600 otpgate.toml
  "$BIN" -c otpgate.toml init >/dev/null
  "$BIN" -c otpgate.toml token import tokens.csv >/dev/null
  OTPGATE_LOG=warn MALLOC_ARENA_MAX=2 "$BIN" -c otpgate.toml serve >serve.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  o0=$(cpu_ticks "$SERVER_PID"); s0=$(cpu_ticks "$SLAPD_PID")
  line=$("$venv/bin/python" "$ROOT/bench/ldap_binds.py" "ldap://127.0.0.1:$PORT" "$duration" 8 tokens.csv --otp)
  o1=$(cpu_ticks "$SERVER_PID"); s1=$(cpu_ticks "$SLAPD_PID")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  echo "$line" | python3 -c "import json,sys; d=json.load(sys.stdin); b=max(d['binds'],1); d.update(round=$round, cell='proxied', otpgate_ms=($o1-$o0)/$hz*1000/b, slapd_ms=($s1-$s0)/$hz*1000/b); print(json.dumps(d))" >> "$results"
  tail -n 2 "$results"
done
python3 - "$results" <<'PY' | tee "$OUT/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(cell, key):
    return statistics.median(r[key] for r in rows if r["cell"] == cell)
d_rate = med("direct", "binds") / med("direct", "seconds")
p_rate = med("proxied", "binds") / med("proxied", "seconds")
direct = med("direct", "slapd_ms"); ours = med("proxied", "otpgate_ms")
ratios = [p["otpgate_ms"] / d["slapd_ms"] for d, p in zip(
    [r for r in rows if r["cell"] == "direct"], [r for r in rows if r["cell"] == "proxied"])]
print("| binds | per second | otpgate CPU ms/bind | slapd CPU ms/bind | failures |")
print("|---|---|---|---|---|")
print(f"| straight to slapd | {d_rate:.0f} | - | {direct:.3f} | {sum(r['failures'] for r in rows if r['cell']=='direct')} |")
print(f"| through the proxy (password+OTP) | {p_rate:.0f} | {ours:.3f} | {med('proxied', 'slapd_ms'):.3f} | {sum(r['failures'] for r in rows if r['cell']=='proxied')} |")
print(f"\notpgate's CPU per proxied bind / slapd's per plain bind, each round: "
      + " / ".join(f"{r:.2f}" for r in ratios) + f"; median {statistics.median(ratios):.2f} (target ≤ 2)")
PY
echo "results: $OUT"
