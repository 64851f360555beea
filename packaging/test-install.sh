#!/usr/bin/env bash
# The packages, checked as an admin would meet them (run as root on a Debian machine; CI runs
# it from scripts/test --packages): build the deb and the rpm, inspect both (lintian, rpmlint,
# the unit's security exposure), install the deb, check the user, files, owners and modes, start
# the daemon exactly as the unit's ExecStart does as the service user, log in with radtest,
# upgrade to a higher version (edits and the database survive), purge (nothing left).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

[ "$(id -u)" = 0 ] || { echo "packaging/test-install.sh installs a package: run it as root" >&2; exit 2; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

need=()
command -v lintian >/dev/null || need+=(lintian)
command -v rpm >/dev/null || need+=(rpm)
command -v rpmlint >/dev/null || need+=(rpmlint)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if dpkg -s otpgate >/dev/null 2>&1; then dpkg --purge otpgate >/dev/null; fi

step "build 0.1.0"
packaging/build.sh --version 0.1.0 >/dev/null
deb=$(ls target/debian/otpgate_0.1.0-1_*.deb)
rpmfile=$(ls target/generate-rpm/otpgate-0.1.0-1.*.rpm)

step "inspect the deb"
dpkg-deb -I "$deb" | grep -E "Package|Version|Depends"
dpkg-deb -c "$deb" > target/debian/contents.txt
for f in ./usr/bin/otpgate ./etc/otpgate/otpgate.toml ./usr/share/otpgate/dictionaries/dictionary \
         ./usr/share/man/man1/otpgate.1.gz ./usr/share/man/man1/otpgate-token-enroll.1.gz \
         ./usr/share/doc/otpgate/install.md ./usr/share/bash-completion/completions/otpgate \
         ./usr/share/zsh/vendor-completions/_otpgate ./usr/share/fish/vendor_completions.d/otpgate.fish; do
  grep -q " $f\$" target/debian/contents.txt || fail "the deb lacks $f"
done
grep -q "otpgate.service" target/debian/contents.txt || fail "the deb lacks the unit"
lintian --fail-on error "$deb"

step "inspect the rpm"
rpm -qpi "$rpmfile" | grep -E "^(Name|Version|Release)"
rpm -qpl "$rpmfile" > target/generate-rpm/contents.txt
grep -q "^/usr/lib/systemd/system/otpgate.service$" target/generate-rpm/contents.txt || fail "the rpm lacks the unit"
grep -q "^/usr/share/man/man1/otpgate.1.gz$" target/generate-rpm/contents.txt || fail "the rpm lacks the man page"
rpm -qp --scripts "$rpmfile" | grep -q "useradd -r" || fail "the rpm's scripts make no user"
rpm -qpc "$rpmfile" | grep -q "^/etc/otpgate/otpgate.toml$" || fail "the rpm's config is not %config"
rpmlint -r packaging/rpmlintrc "$rpmfile" | tail -n 1
rpmlint -r packaging/rpmlintrc "$rpmfile" | grep -q " 0 errors" || fail "rpmlint found errors"

step "the unit's exposure"
score=$(systemd-analyze security --offline=true packaging/otpgate.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for otpgate.service: \([0-9.]*\).*/\1/p')
echo "exposure $score"
python3 -c "import sys; sys.exit(0 if float('$score') <= 2.0 else 1)" || fail "exposure $score > 2.0"

step "install"
dpkg -i "$deb" >/dev/null
getent passwd otpgate >/dev/null || fail "no user otpgate"
check_mode() { # path owner:group mode
  local got
  got=$(stat -c '%U:%G %a' "$1")
  [ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
}
check_mode /etc/otpgate root:otpgate 750
check_mode /etc/otpgate/otpgate.toml root:otpgate 640
check_mode /etc/otpgate/localhost.secret root:otpgate 640
check_mode /var/lib/otpgate otpgate:otpgate 750
check_mode /var/lib/otpgate/secret.key otpgate:otpgate 600
check_mode /var/lib/otpgate/otpgate.db otpgate:otpgate 600
check_mode /usr/bin/otpgate root:root 755
systemd-analyze verify /usr/lib/systemd/system/otpgate.service 2>&1 | grep -v "^$" || true
as_otpgate() { runuser -u otpgate -- "$@"; }
as_otpgate otpgate -c /etc/otpgate/otpgate.toml check-config

step "log in as the unit would run it"
# the admin's edit, which an upgrade must keep
printf '\n[[user]]\nusername = "tester"\n' >> /etc/otpgate/users.toml
as_otpgate otpgate -c /etc/otpgate/otpgate.toml token enroll --type hotp --serial PKG1 \
  --user tester --pin 1234 --key 3132333435363738393031323334353637383930 >/dev/null
start_daemon() {
  # ExecStart of packaging/otpgate.service, as User=otpgate
  runuser -u otpgate -- /usr/bin/otpgate -c /etc/otpgate/otpgate.toml serve >/tmp/otpgate-pkg.log 2>&1 &
  DAEMON=$!
  for _ in $(seq 1 100); do grep -q "otpgate ready" /tmp/otpgate-pkg.log && return 0; sleep 0.1; done
  cat /tmp/otpgate-pkg.log; fail "the daemon did not start"
}
stop_daemon() { kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; }
login() { # OTP -> radtest's exit code
  otpgate -c /etc/otpgate/otpgate.toml radtest --secret "$(cat /etc/otpgate/localhost.secret)" \
    --user tester --password "1234$1" >/dev/null && echo 0 || echo $?
}
start_daemon
[ "$(login 755224)" = 0 ] || fail "the first login was not accepted"
stop_daemon
key_sum=$(sha256sum /var/lib/otpgate/secret.key)

step "upgrade to 0.1.1"
packaging/build.sh --version 0.1.1 >/dev/null
dpkg -i target/debian/otpgate_0.1.1-1_*.deb >/dev/null
[ "$(dpkg-query -W -f '${Version}' otpgate)" = "0.1.1-1" ] || fail "not upgraded"
grep -q 'username = "tester"' /etc/otpgate/users.toml || fail "the upgrade lost the users.toml edit"
[ "$(sha256sum /var/lib/otpgate/secret.key)" = "$key_sum" ] || fail "the upgrade changed the key file"
start_daemon
[ "$(login 287082)" = 0 ] || fail "the token did not survive the upgrade"
[ "$(login 755224)" = 1 ] || fail "a used OTP was accepted after the upgrade"
stop_daemon

step "purge"
dpkg --purge otpgate >/dev/null
for p in /etc/otpgate /var/lib/otpgate /usr/bin/otpgate /usr/share/otpgate /usr/share/doc/otpgate \
         /usr/lib/systemd/system/otpgate.service /usr/share/man/man1/otpgate.1.gz; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
echo "== packages OK"
