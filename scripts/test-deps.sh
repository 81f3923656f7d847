#!/usr/bin/env bash
# Installs what the end-to-end tests need and prints the environment that
# points the tests at it: eval "$(scripts/test-deps.sh)".
#
# It exits non-zero when anything could not be installed, after printing
# the exports of what is there, so a caller can refuse to go on and the
# tests themselves fail under CI=true (integration/harness_test.go).
set -euo pipefail
cd "$(dirname "$0")/.."
GOBIN_DIR="$(go env GOPATH)/bin"
missing=()

# Debian's Prometheus 2.x (and its promtool): a real remote_write and
# federation client.
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
  sudo=()
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  fi
  if [ "$(id -u)" = 0 ] || [ ${#sudo[@]} -gt 0 ]; then
    # An install failure is reported below, with how to fix it, instead of
    # ending the script before Prometheus 3 is built.
    if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; } >&2; then
      echo "test-deps: apt-get install prometheus failed" >&2
    fi
  fi
  for bin in /usr/bin/prometheus /usr/bin/promtool; do
    [ -x "$bin" ] || missing+=("$bin (Debian's prometheus package): run: sudo apt-get install prometheus")
  done
fi

# ip (iproute2) and iptables: the partition tests put an ingester in its own
# network namespace and filter its gossip there, never on the host.
if ! command -v ip >/dev/null || ! command -v iptables >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq iproute2 iptables >&2
  else
    echo "test-deps: ip or iptables missing; run: sudo apt-get install iproute2 iptables" >&2
  fi
fi

# memcached: the query frontend's results cache is tested against a real
# one (frontend/memcached_test.go), in the unit tests.
if ! command -v memcached >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq memcached >&2 || echo "test-deps: apt-get install memcached failed" >&2
  fi
  command -v memcached >/dev/null || missing+=("memcached: run: sudo apt-get install memcached")
fi

# The reference for query results: Prometheus 3 built from the same module
# version as the engine Orrery links, cached by version. The first build
# takes minutes.
version=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
prom3="$GOBIN_DIR/prometheus3-$version"
if [ ! -x "$prom3" ]; then
  tmp=$(mktemp -d)
  mkdir -p "$GOBIN_DIR"
  echo "test-deps: building Prometheus $version (minutes, once)" >&2
  if GOBIN="$tmp" go install "github.com/prometheus/prometheus/cmd/prometheus@$version" >&2; then
    mv "$tmp/prometheus" "$prom3"
  else
    missing+=("$prom3: go install github.com/prometheus/prometheus/cmd/prometheus@$version failed (see above)")
  fi
  rm -rf "$tmp"
fi

[ -x "$prom3" ] && echo "export ORRERY_PROMETHEUS3=$prom3"
[ -x /usr/bin/prometheus ] && echo "export ORRERY_PROMETHEUS2=/usr/bin/prometheus"
if [ ${#missing[@]} -gt 0 ]; then
  printf 'test-deps: missing %s\n' "${missing[@]}" >&2
  exit 1
fi
exit 0
