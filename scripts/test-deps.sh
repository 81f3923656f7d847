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

# Debian packages, each named with the executables that prove it installed:
# Prometheus 2.x and promtool (a real remote_write and federation client),
# memcached (the query frontend's results cache), Alertmanager (where the
# ruler's alerts go), VictoriaMetrics (a
# reference in scripts/querybench.sh), and ip (iproute2) and iptables (the
# partition tests put an ingester in its own network namespace and filter
# its gossip there, never on the host).
debian=(
  "prometheus /usr/bin/prometheus /usr/bin/promtool"
  "memcached /usr/bin/memcached"
  "prometheus-alertmanager /usr/bin/prometheus-alertmanager"
  "victoria-metrics /usr/bin/victoria-metrics"
  "iproute2 ip"
  "iptables iptables"
)
have() { [ -x "$1" ] || command -v "$1" >/dev/null; }
absent=()
for entry in "${debian[@]}"; do
  read -r pkg bins <<<"$entry"
  for bin in $bins; do
    have "$bin" || { absent+=("$pkg"); break; }
  done
done
if [ ${#absent[@]} -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  fi
  if [ "$(id -u)" = 0 ] || [ ${#sudo[@]} -gt 0 ]; then
    # An install failure is reported below, with how to fix it, instead of
    # ending the script before Prometheus 3 is built.
    if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${absent[@]}"; } >&2; then
      echo "test-deps: apt-get install ${absent[*]} failed" >&2
    fi
  fi
  for entry in "${debian[@]}"; do
    read -r pkg bins <<<"$entry"
    for bin in $bins; do
      have "$bin" || missing+=("$bin (Debian's $pkg package): run: sudo apt-get install $pkg")
    done
  done
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
[ -x /usr/bin/memcached ] && echo "export ORRERY_MEMCACHED=/usr/bin/memcached"
[ -x /usr/bin/prometheus-alertmanager ] && echo "export ORRERY_ALERTMANAGER=/usr/bin/prometheus-alertmanager"
[ -x /usr/bin/victoria-metrics ] && echo "export ORRERY_VICTORIA_METRICS=/usr/bin/victoria-metrics"
if [ ${#missing[@]} -gt 0 ]; then
  printf 'test-deps: missing %s\n' "${missing[@]}" >&2
  exit 1
fi
exit 0
