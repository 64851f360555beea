# What bench/run.sh and bench/outage.sh share; sourced, with ROOT set.
#
# seed_files N and node_config URL PORT SECRET write a benchmark node: N users with one HOTP
# token each (users.csv, tokens.csv: the seeds the load generator computes OTPs from) and its
# configuration up to the realm (callers append policies, events and reply rules).
#
# node_config's optional fourth argument `ldap` takes the users from the slapd that
# start_slapd N started ($SLAPD_PORT; N users `userI` with the password 1234) instead of the
# file.
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
$(if [ "${4:-file}" = ldap ]; then cat <<LDAP
[[resolver]]
name = "r"
type = "ldap"
servers = ["ldap://127.0.0.1:$SLAPD_PORT"]
bind_dn = "cn=admin,dc=bench"
bind_password = "admin"
base_dn = "ou=people,dc=bench"
filter = "(objectClass=inetOrgPerson)"
LDAP
else printf '[[resolver]]\nname = "r"\ntype = "file"\npath = "users.csv"\n'; fi)
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

SLAPD_PID=""
SLAPD_PORT=""
# start_slapd N: an OpenLDAP server of its own in $SLAPD_DIR with N users (set SLAPD_DIR first)
start_slapd() {
  [ -x /usr/sbin/slapd ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null
  SLAPD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$SLAPD_DIR/db"
  cat > "$SLAPD_DIR/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $SLAPD_DIR/slapd.pid
database mdb
maxsize 268435456
suffix "dc=bench"
rootdn "cn=admin,dc=bench"
rootpw admin
directory $SLAPD_DIR/db
index uid eq
CONF
  /usr/sbin/slapd -f "$SLAPD_DIR/slapd.conf" -h "ldap://127.0.0.1:$SLAPD_PORT/"
  for _ in $(seq 1 100); do [ -s "$SLAPD_DIR/slapd.pid" ] && break; sleep 0.05; done
  SLAPD_PID=$(cat "$SLAPD_DIR/slapd.pid")
  python3 - "$1" > "$SLAPD_DIR/users.ldif" <<'PY'
import sys
print("dn: dc=bench\nobjectClass: dcObject\nobjectClass: organization\ndc: bench\no: bench\n")
print("dn: ou=people,dc=bench\nobjectClass: organizationalUnit\nou: people\n")
for i in range(int(sys.argv[1])):
    print(f"dn: uid=user{i},ou=people,dc=bench\nobjectClass: inetOrgPerson\nuid: user{i}\ncn: User {i}\nsn: U{i}\nmail: user{i}@bench\nuserPassword: 1234\n")
PY
  ldapadd -x -H "ldap://127.0.0.1:$SLAPD_PORT" -D cn=admin,dc=bench -w admin -f "$SLAPD_DIR/users.ldif" >/dev/null
}
stop_slapd() {
  [ -n "$SLAPD_PID" ] || return 0
  kill "$SLAPD_PID" 2>/dev/null || true
  SLAPD_PID=""
}
# cpu_ticks PID: user + system clock ticks of a process so far
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}
