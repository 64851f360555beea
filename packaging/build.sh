#!/usr/bin/env bash
# Build the deb and the rpm: the release binary, its man pages and completions, then
# cargo-deb and cargo-generate-rpm (installed at the pinned versions when missing).
#
#   packaging/build.sh [--version X.Y.Z]     (default: Cargo.toml's version)
#
# Results: target/debian/otpgate_*.deb and target/generate-rpm/otpgate-*.rpm.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

tool() {
  local name=$1 want=$2
  if ! "$name" --version 2>/dev/null | grep -q "$want"; then
    echo "== cargo install $name $want"
    cargo install --locked --quiet --version "$want" "$name"
  fi
}
tool cargo-deb "$CARGO_DEB_VERSION"
tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"

cargo build --release --quiet
rm -rf target/packaging
target/release/otpgate generate man target/packaging/man >/dev/null
gzip -9n target/packaging/man/*.1
target/release/otpgate generate completions target/packaging/completions >/dev/null

deb_args=(--no-build --no-strip)
rpm_args=()
if [ -n "$version" ]; then
  deb_args+=(--deb-version "$version-1")
  rpm_args+=(--set-metadata "version = \"$version\"")
fi
cargo deb "${deb_args[@]}"
cargo generate-rpm "${rpm_args[@]}"
ls -l target/debian/*.deb target/generate-rpm/*.rpm
