#!/usr/bin/env bash
# Installs what the end-to-end tests need and prints the environment that
# points the tests at it: eval "$(scripts/test-deps.sh)".
set -euo pipefail
cd "$(dirname "$0")/.."
GOBIN_DIR="$(go env GOPATH)/bin"

# Debian's Prometheus 2.x: a real remote_write and federation client.
if [ ! -x /usr/bin/prometheus ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq prometheus >&2
  else
    echo "test-deps: /usr/bin/prometheus missing; run: sudo apt-get install prometheus" >&2
  fi
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

# The reference for query results: Prometheus 3 built from the same module
# version as the engine Orrery links, cached by version. The first build
# takes minutes.
version=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
prom3="$GOBIN_DIR/prometheus3-$version"
if [ ! -x "$prom3" ]; then
  tmp=$(mktemp -d)
  echo "test-deps: building Prometheus $version (minutes, once)" >&2
  GOBIN="$tmp" go install "github.com/prometheus/prometheus/cmd/prometheus@$version" >&2
  mv "$tmp/prometheus" "$prom3"
  rm -rf "$tmp"
fi
echo "export ORRERY_PROMETHEUS3=$prom3"
[ -x /usr/bin/prometheus ] && echo "export ORRERY_PROMETHEUS2=/usr/bin/prometheus"
exit 0
