# What bench/run.sh and bench/outage.sh share; sourced, with ROOT set.
#
# seed_files N and node_config URL PORT SECRET write a benchmark node: N users with one HOTP
# token each (users.csv, tokens.csv: the seeds the load generator computes OTPs from) and its
# configuration up to the realm (callers append policies, events and reply rules).
#
# PostgreSQL: a cluster of their own in $PG_DIR on a free loopback port, fsync on (the numbers
# include durable commits); set PG_DIR first. start_pg sets PG_BIN and PG_PORT; stop_pg and
# resume_pg stop it (fast: open connections are cut, as in a restart or a failover) and start
# it again on the same port.
seed_files() {
  python3 - "$1" <<'PY'
import sys
n = int(sys.argv[1])
with open("users.csv", "w") as f:
    for i in range(n):
        f.write(f"user{i}\n")
with open("tokens.csv", "w") as f:
    for i in range(n):
        f.write(f"B{i:06d}, {i * 7919 + 12345:040x}, hotp, 6, 0, user{i}\n")
PY
}
node_config() {
  cat <<EOF
node = "bench"
[database]
url = "$1"
[secrets]
key_file = "secret.key"
[radius]
listen = ["127.0.0.1:$2"]
dictionaries = "$ROOT/dictionaries"
[[radius.client]]
name = "bench"
address = "127.0.0.1"
secret = "$3"
[[resolver]]
name = "r"
type = "file"
path = "users.csv"
[[realm]]
name = "bench"
resolvers = ["r"]
EOF
}
PG_PORT=""
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_pg() {
  [ -n "$PG_PORT" ] || return 0
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
}
resume_pg() {
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR -c max_connections=100" start >/dev/null
}
start_pg() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort | tail -1)
  if [ -z "$PG_BIN" ]; then
    echo "== installing postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
  fi
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  as_postgres "$PG_BIN/initdb" -A trust -U postgres -D "$PG_DIR/data" >"$PG_DIR/initdb.log" 2>&1
  resume_pg
}
