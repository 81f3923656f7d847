#!/usr/bin/env bash
# Soak: a real cluster on loopback (one distributor, one querier, ingesters
# at the chosen replication factor) under orrery-check, while random faults
# hit the ingesters: kill -9 and restart, SIGSTOP/SIGCONT, graceful restart,
# scale out (a new ingester) and scale in (SIGTERM, handover). At the end it
# prints the checker's report, the WAL replay times and the fault list, and
# exits with the checker's status (0: every acknowledged sample read back
# exactly). Minutes long; not part of make test.
#
#   scripts/soak.sh [-duration 15m] [-rf 3] [-ingesters 3] [-faults 24] [-seed N] [-dir DIR]
#
# Every flag has an environment variable too: SOAK_DURATION, SOAK_RF,
# SOAK_INGESTERS, SOAK_FAULTS, SOAK_SEED, SOAK_DIR, and SOAK_PORT_BASE
# (default 21000: ports from there on, ten per process). Logs stay in the
# directory, printed at the start.
set -euo pipefail
# All of it is one function, parsed before it runs: editing this file while
# a soak runs must not change what the running soak does next.
main() {
cd "$(dirname "$0")/.."

duration=${SOAK_DURATION:-15m}
rf=${SOAK_RF:-3}
initial=${SOAK_INGESTERS:-3}
faults=${SOAK_FAULTS:-24}
seed=${SOAK_SEED:-$$}
dir=${SOAK_DIR:-}
port_base=${SOAK_PORT_BASE:-21000}
while [ $# -gt 0 ]; do
  case "$1" in
    -duration) duration=$2 ;;
    -rf) rf=$2 ;;
    -ingesters) initial=$2 ;;
    -faults) faults=$2 ;;
    -seed) seed=$2 ;;
    -dir) dir=$2 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
dir=${dir:-$(mktemp -d /tmp/orrery-soak.XXXXXX)}
mkdir -p "$dir"
RANDOM=$seed

seconds() { # 15m, 90s, 1h -> seconds
  local v=$1
  case "$v" in
    *h) echo $(( ${v%h} * 3600 )) ;;
    *m) echo $(( ${v%m} * 60 )) ;;
    *s) echo "${v%s}" ;;
    *) echo "$v" ;;
  esac
}
total=$(seconds "$duration")
min_ingesters=3
max_ingesters=6

log() { echo "soak $(date -u +%H:%M:%S): $*" >&2; }
fault() { echo "$(date -u +%H:%M:%S) $*" >>"$dir/faults.txt"; log "fault: $*"; }

go build -o "$dir/orrery" ./cmd/orrery
go build -o "$dir/orrery-check" ./cmd/orrery-check
log "dir $dir, rf=$rf, $initial ingesters, $duration, seed $seed"
: >"$dir/faults.txt"

declare -gA pid=() http=() running=()
next_ingester=1

# start NAME TARGET OFFSET: run one process on ports port_base+OFFSET..+2.
start() {
  local name=$1 target=$2 off=$3
  local h=$((port_base + off)) g=$((port_base + off + 1)) m=$((port_base + off + 2))
  http[$name]=$h
  "$dir/orrery" -target="$target" -instance.id="$name" -data.dir="$dir/data/$name" \
    -http.listen-address=127.0.0.1:$h -grpc.listen-address=127.0.0.1:$g \
    -memberlist.bind-address=127.0.0.1:$m -memberlist.join=127.0.0.1:$((port_base + 2)) \
    -replication-factor="$rf" -ring.heartbeat-period=500ms -ring.heartbeat-timeout=4s \
    >>"$dir/$name.log" 2>&1 &
  pid[$name]=$!
}

wait_ready() {
  local name=$1
  for _ in $(seq 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:${http[$name]}/ready" 2>/dev/null; then return 0; fi
    if ! kill -0 "${pid[$name]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  fault "ERROR: $name not ready (see $dir/$name.log)"
  return 1
}

offset_of() { echo $(( 100 + 10 * ${1#ing} )); }

start_ingester() {
  start "$1" ingester "$(offset_of "$1")"
  running[$1]=1
}

# stop_wait NAME SIGNAL: signal and wait for the process to exit.
stop_wait() {
  kill -"$2" "${pid[$1]}" 2>/dev/null || true
  wait "${pid[$1]}" 2>/dev/null || true
}

cleanup() {
  for name in "${!pid[@]}"; do
    kill -CONT "${pid[$name]}" 2>/dev/null || true
    kill -KILL "${pid[$name]}" 2>/dev/null || true
  done
  if [ -n "${checker:-}" ]; then kill -KILL "$checker" 2>/dev/null || true; fi
}
trap cleanup EXIT

start dist distributor 0
wait_ready dist
start quer querier 10
wait_ready quer
for _ in $(seq "$initial"); do
  start_ingester "ing$next_ingester"
  next_ingester=$((next_ingester + 1))
done
for name in "${!running[@]}"; do wait_ready "$name"; done
sleep 3 # a few heartbeats: every member sees every ingester ACTIVE

"$dir/orrery-check" -report.json="$dir/report.json" -duration="${total}s" -write.retry-for=5m -final.timeout=3m \
  -write.url="http://127.0.0.1:${http[dist]}/api/v1/push" -read.url="http://127.0.0.1:${http[quer]}/prometheus" \
  >"$dir/report.txt" 2>"$dir/orrery-check.log" &
checker=$!
began=$(date +%s)

random_running() {
  local names=("${!running[@]}")
  echo "${names[RANDOM % ${#names[@]}]}"
}

# One fault at a time, so that at RF=3 quorum always holds. Fault n
# happens at a random moment of the n-th of $faults equal slots (at once
# when the previous fault ran past it), and the last slot ends 60 s before
# the writes do, so the cluster has settled when the final read runs.
slot=$(( (total - 60) / faults ))
if [ "$slot" -lt 1 ]; then slot=1; fi
n=0
while [ "$n" -lt "$faults" ]; do
  at=$(( began + n * slot + RANDOM % slot ))
  now=$(date +%s)
  if [ "$at" -gt "$now" ]; then sleep $((at - now)); fi
  if [ $(( $(date +%s) - began + 60 )) -gt "$total" ]; then break; fi
  for name in "${!running[@]}"; do
    if ! kill -0 "${pid[$name]}" 2>/dev/null; then
      fault "ERROR: $name died on its own (see $dir/$name.log); starting it again"
      wait "${pid[$name]}" 2>/dev/null || true
      start_ingester "$name"
      wait_ready "$name" || true
    fi
  done
  count=${#running[@]}
  victim=$(random_running)
  kind=$((RANDOM % 5))
  if [ "$kind" = 3 ] && [ "$count" -ge "$max_ingesters" ]; then kind=4; fi
  if [ "$kind" = 4 ] && [ "$count" -le "$min_ingesters" ]; then kind=3; fi
  n=$((n + 1))
  case $kind in
    0)
      down=$((2 + RANDOM % 9))
      fault "kill -9 $victim, restart after ${down}s"
      stop_wait "$victim" KILL
      sleep "$down"
      start_ingester "$victim"
      wait_ready "$victim" || true
      ;;
    1)
      down=$((2 + RANDOM % 14))
      fault "SIGSTOP $victim for ${down}s"
      kill -STOP "${pid[$victim]}" || true
      sleep "$down"
      kill -CONT "${pid[$victim]}" || true
      ;;
    2)
      fault "graceful restart of $victim (SIGTERM, start again on its data dir)"
      stop_wait "$victim" TERM
      start_ingester "$victim"
      wait_ready "$victim" || true
      ;;
    3)
      new="ing$next_ingester"
      next_ingester=$((next_ingester + 1))
      fault "scale out: $new joins"
      start_ingester "$new"
      wait_ready "$new" || true
      ;;
    4)
      fault "scale in: $victim leaves (SIGTERM, handover)"
      stop_wait "$victim" TERM
      unset "running[$victim]"
      ;;
  esac
done
log "$n faults injected; waiting for the checker's final read"
status=0
wait "$checker" || status=$?

echo "== orrery-check report (also $dir/report.json)"
cat "$dir/report.txt"
echo "== WAL replays (every ingester start; from the logs)"
grep -h 'msg="wal replayed"' "$dir"/ing*.log | sed -E 's/.*instance=([^ ]+).* series=([0-9]+) duration=([^ ]+).*/\1 series=\2 duration=\3/' || true
echo "== orrery_ingester_wal_replay_duration_seconds of the running ingesters"
for name in $(printf '%s\n' "${!running[@]}" | sort); do
  printf '%s ' "$name"
  curl -fsS "http://127.0.0.1:${http[$name]}/metrics" | grep '^orrery_ingester_wal_replay_duration_seconds ' || echo "(unreachable)"
done
echo "== faults ($n)"
cat "$dir/faults.txt"
echo "== checker exit status $status; logs in $dir"
return "$status"
}

main "$@"
