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
# its gossip there, never on the host), and Docker with docker-compose (the
# deploy tests build Orrery's image and run deploy/compose; they start
# dockerd themselves when none runs).
debian=(
  "prometheus /usr/bin/prometheus /usr/bin/promtool"
  "memcached /usr/bin/memcached"
  "prometheus-alertmanager /usr/bin/prometheus-alertmanager"
  "victoria-metrics /usr/bin/victoria-metrics"
  "iproute2 ip"
  "iptables iptables"
  "docker.io /usr/sbin/dockerd docker"
  "docker-compose docker-compose"
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
# version as the engine Orrery links, and Alertmanager of the version the
# ruler's notifier links, both cached by version. Static (CGO_ENABLED=0),
# as their release builds are, so the compose test can put them in images
# built FROM scratch. The first build takes minutes.
build_static() { # module/cmd/path version target-file
  local tmp
  [ -x "$3" ] && return 0
  tmp=$(mktemp -d)
  mkdir -p "$GOBIN_DIR"
  echo "test-deps: building $1@$2 (minutes, once)" >&2
  if CGO_ENABLED=0 GOBIN="$tmp" go install "$1@$2" >&2; then
    mv "$tmp/$(basename "$1")" "$3"
  else
    missing+=("$3: CGO_ENABLED=0 go install $1@$2 failed (see above)")
  fi
  rm -rf "$tmp"
}
version=$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
prom3="$GOBIN_DIR/prometheus3-static-$version"
build_static github.com/prometheus/prometheus/cmd/prometheus "$version" "$prom3"
# Alertmanager's module leaves out the web UI it embeds (ui/app/dist is
# built by npm in its release process), so it is built from a copy of the
# module with a one-page placeholder there: the API the tests use is whole.
amversion=$(go list -m -f '{{.Version}}' github.com/prometheus/alertmanager)
am="$GOBIN_DIR/alertmanager-static-$amversion"
if [ ! -x "$am" ]; then
  echo "test-deps: building Alertmanager $amversion (minutes, once)" >&2
  tmp=$(mktemp -d)
  if go mod download github.com/prometheus/alertmanager &&
     cp -r "$(go list -m -f '{{.Dir}}' github.com/prometheus/alertmanager)" "$tmp/am" &&
     chmod -R u+w "$tmp/am" && mkdir -p "$tmp/am/ui/app/dist" &&
     echo '<!doctype html><title>Alertmanager</title><p>UI not built; the API is at /api/v2/.' >"$tmp/am/ui/app/dist/index.html" &&
     (cd "$tmp/am" && CGO_ENABLED=0 go build -o "$am" ./cmd/alertmanager) >&2; then
    :
  else
    missing+=("$am: building Alertmanager $amversion from its module failed (see above)")
  fi
  rm -rf "$tmp"
fi

[ -x "$prom3" ] && echo "export ORRERY_PROMETHEUS3=$prom3"
[ -x "$am" ] && echo "export ORRERY_ALERTMANAGER_STATIC=$am"
[ -x /usr/bin/prometheus ] && echo "export ORRERY_PROMETHEUS2=/usr/bin/prometheus"
[ -x /usr/bin/memcached ] && echo "export ORRERY_MEMCACHED=/usr/bin/memcached"
[ -x /usr/bin/prometheus-alertmanager ] && echo "export ORRERY_ALERTMANAGER=/usr/bin/prometheus-alertmanager"
[ -x /usr/bin/victoria-metrics ] && echo "export ORRERY_VICTORIA_METRICS=/usr/bin/victoria-metrics"
[ -x /usr/sbin/dockerd ] && echo "export ORRERY_DOCKERD=/usr/sbin/dockerd"
command -v docker >/dev/null && echo "export ORRERY_DOCKER=$(command -v docker)"
command -v docker-compose >/dev/null && echo "export ORRERY_DOCKER_COMPOSE=$(command -v docker-compose)"
if [ ${#missing[@]} -gt 0 ]; then
  printf 'test-deps: missing %s\n' "${missing[@]}" >&2
  exit 1
fi
exit 0
