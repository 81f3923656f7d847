#!/usr/bin/env bash
# Seed 000's stack with Orrery in the federation leader's place, without
# containers: the processes of deploy/compose/docker-compose.yml, from the
# same configuration files, as real processes on 127.0.0.1 (`make cluster`).
#
#   distributor :9009  querier :9010  ingesters :9011-9013  ruler :9014
#   Prometheus followers :9099 :9098  Alertmanager :9093
#
# Each process logs to $CLUSTER_DATA/<name>.log and keeps its data in
# $CLUSTER_DATA/<name>, so a second run starts where the first stopped.
# Ctrl-C (or SIGTERM) stops them all. Environment:
#   ORRERY        the orrery binary (bin/orrery)
#   PROMETHEUS    a Prometheus 2 or 3 (prometheus on PATH: Debian's works)
#   ALERTMANAGER  an Alertmanager (alertmanager or prometheus-alertmanager)
#   CLUSTER_DATA  where data and logs go (./cluster-data)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
compose="$root/deploy/compose"
ORRERY="${ORRERY:-$root/bin/orrery}"
PROMETHEUS="${PROMETHEUS:-$(command -v prometheus || true)}"
ALERTMANAGER="${ALERTMANAGER:-$(command -v alertmanager || command -v prometheus-alertmanager || true)}"
CLUSTER_DATA="${CLUSTER_DATA:-./cluster-data}"

for bin in "$ORRERY" "$PROMETHEUS" "$ALERTMANAGER"; do
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "cluster: missing an executable (ORRERY=$ORRERY PROMETHEUS=$PROMETHEUS ALERTMANAGER=$ALERTMANAGER);" \
      "make build, and apt-get install prometheus prometheus-alertmanager" >&2
    exit 1
  fi
done
mkdir -p "$CLUSTER_DATA"
CLUSTER_DATA="$(cd "$CLUSTER_DATA" && pwd)"

# Each process runs in a session of its own (setsid): Ctrl-C, or a closed
# terminal's SIGHUP, reaches only this script, which stops them in order.
# Their pids are in $CLUSTER_DATA/pids for anyone who must clean up after
# a kill -9 of the script.
orrery_pids=()
other_pids=()
: >"$CLUSTER_DATA/pids"
stop() { # exit code
  trap - INT TERM HUP EXIT
  echo "cluster: stopping" >&2
  # The followers and Alertmanager first, while the distributor still takes
  # the followers' last remote-write batches; then Orrery.
  kill -TERM "${other_pids[@]}" 2>/dev/null || true
  wait "${other_pids[@]}" 2>/dev/null || true
  kill -TERM "${orrery_pids[@]}" 2>/dev/null || true
  wait "${orrery_pids[@]}" 2>/dev/null || true
  rm -f "$CLUSTER_DATA/pids"
  exit "$1"
}
trap 'stop 0' INT TERM HUP
trap 'stop 1' EXIT

run() { # orrery|other name command args...
  local kind=$1 name=$2
  shift 2
  mkdir -p "$CLUSTER_DATA/$name"
  setsid "$@" >"$CLUSTER_DATA/$name.log" 2>&1 </dev/null &
  if [ "$kind" = orrery ]; then orrery_pids+=($!); else other_pids+=($!); fi
  echo $! >>"$CLUSTER_DATA/pids"
}

# Orrery first, so the followers' first writes find a distributor.
for name in ingester-1 ingester-2 ingester-3 distributor querier; do
  run orrery "$name" "$ORRERY" -config.file="$compose/orrery/$name.yaml" -data.dir="$CLUSTER_DATA/$name" \
    -auth.tokens-file="$compose/orrery/tokens.yaml"
done
run orrery ruler "$ORRERY" -config.file="$compose/orrery/ruler.yaml" -data.dir="$CLUSTER_DATA/ruler" \
  -auth.tokens-file="$compose/orrery/tokens.yaml" -ruler.rule-path="$compose/rules"
run other alertmanager "$ALERTMANAGER" --config.file="$compose/alertmanager/alertmanager.yml" \
  --storage.path="$CLUSTER_DATA/alertmanager" --web.listen-address=127.0.0.1:9093 --cluster.listen-address=
run other prometheus-follower-1 "$PROMETHEUS" --config.file="$compose/prometheus/follower-1.yml" \
  --storage.tsdb.path="$CLUSTER_DATA/prometheus-follower-1" --web.listen-address=127.0.0.1:9099 \
  --storage.remote.flush-deadline=10s
run other prometheus-follower-2 "$PROMETHEUS" --config.file="$compose/prometheus/follower-2.yml" \
  --storage.tsdb.path="$CLUSTER_DATA/prometheus-follower-2" --web.listen-address=127.0.0.1:9098 \
  --storage.remote.flush-deadline=10s

cat >&2 <<EOF
cluster: running; logs and data in $CLUSTER_DATA
  remote write  http://127.0.0.1:9009/api/v1/push   (tenant demo: deploy/compose/orrery/tokens.yaml)
  query API     http://127.0.0.1:9010/prometheus     (Grafana's data source)
  rules, alerts http://127.0.0.1:9014/prometheus/api/v1/rules
  Alertmanager  http://127.0.0.1:9093
Ctrl-C stops everything.
EOF
# Any process that ends on its own ends the cluster: a half-running stack
# would only confuse.
wait -n "${orrery_pids[@]}" "${other_pids[@]}" || true
echo "cluster: a process ended; see its log in $CLUSTER_DATA" >&2
stop 1
