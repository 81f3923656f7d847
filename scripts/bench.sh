#!/usr/bin/env bash
# Ingest benchmark: pushes the same deterministic remote-write workload
# (cmd/orrery-bench, package loadgen) at Orrery, Prometheus 3 and
# VictoriaMetrics one after another on this machine, and prints a markdown
# table of samples/s, target CPU seconds per million samples, RSS per series
# and on-disk bytes per sample, with ratios against Prometheus 3.
#
# Everything listens on and is sent to 127.0.0.1 only. Every phase has a time
# bound, and the script stops only the processes it started, by pid.
#
# Environment (defaults in brackets):
#   BENCH_DURATION      timed phase per target [60s]
#   BENCH_SERIES        series [100000]
#   BENCH_BATCH         samples per request [2000]
#   BENCH_CONCURRENCY   requests in flight [4]
#   BENCH_RATE          offered samples/s, 0 = flat out [0]
#   BENCH_PREGEN_MIB    memory for pre-generated bodies [2048]
#   BENCH_MAX_ROUNDS    stop after this many rounds over all series, 0 = no
#                       limit [0]; set it to compare memory and disk on
#                       identical data
#   BENCH_TARGETS       which targets, in order [orrery prometheus vm]
#   BENCH_HISTOGRAMS    1 sends every series as a native histogram (20
#                       buckets) instead of a float [0]; VictoriaMetrics
#                       does not store native histograms, so leave it out
#   BENCH_OTLP          1 sends the same samples as OTLP/HTTP protobuf exports
#                       to each target's OTLP receiver instead of remote write
#                       [0]; Debian's VictoriaMetrics (1.79) has none, so leave
#                       it out
#   BENCH_ALIGN         1 places the data so it ends at the last 2-hour
#                       boundary (with BENCH_MAX_ROUNDS), so that every
#                       partition is complete and Orrery compacts it all [0]
#   BENCH_KEEP          1 keeps the temporary directory with data and logs [0]
#   ORRERY_BIN          Orrery binary, rebuilt from ./cmd/orrery [./bin/orrery]
#   ORRERY_ARGS         extra Orrery flags []
#   PROMETHEUS_BIN      [$(go env GOPATH)/bin/prometheus]
#   VM_BIN              [/usr/bin/victoria-metrics]
set -euo pipefail

cd "$(dirname "$0")/.."

BENCH_DURATION=${BENCH_DURATION:-60s}
BENCH_SERIES=${BENCH_SERIES:-100000}
BENCH_BATCH=${BENCH_BATCH:-2000}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-4}
BENCH_RATE=${BENCH_RATE:-0}
BENCH_PREGEN_MIB=${BENCH_PREGEN_MIB:-2048}
BENCH_MAX_ROUNDS=${BENCH_MAX_ROUNDS:-0}
BENCH_TARGETS=${BENCH_TARGETS:-orrery prometheus vm}
BENCH_HISTOGRAMS=${BENCH_HISTOGRAMS:-0}
BENCH_OTLP=${BENCH_OTLP:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_ALIGN=${BENCH_ALIGN:-0}
ORRERY_BIN=${ORRERY_BIN:-./bin/orrery}
ORRERY_ARGS=${ORRERY_ARGS:-}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-$(go env GOPATH)/bin/prometheus}
VM_BIN=${VM_BIN:-/usr/bin/victoria-metrics}

READY_TIMEOUT=90 # seconds for a target to answer its readiness probe
STOP_TIMEOUT=120 # seconds for a clean shutdown (flushes) before SIGKILL

TMP=$(mktemp -d /tmp/orrery-bench.XXXXXX)
STARTED_PID=""

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
	if [[ -n "$STARTED_PID" ]]; then
		kill -KILL "$STARTED_PID" 2>/dev/null || true
	fi
	if [[ "$BENCH_KEEP" == 1 ]]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# duration_seconds turns a Go-style duration (90s, 2m, 1m30s) into seconds.
duration_seconds() {
	local d=$1 total=0 n unit
	while [[ -n "$d" ]]; do
		[[ "$d" =~ ^([0-9]+)(h|m|s)(.*)$ ]] || { echo "bad duration $1" >&2; return 1; }
		n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
		case $unit in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
	done
	echo "$total"
}

# json_num FILE KEY prints a top-level numeric field of a one-line JSON
# object, or nothing; the summary keys are unique, so no JSON parser needed.
json_num() {
	grep -o "\"$2\":[-0-9.eE+]*" "$1" | head -n1 | cut -d: -f2
}

# port_busy URL tells whether something already answers there; measuring a
# process we did not start would attribute its load to the wrong pid.
port_busy() { curl -s -o /dev/null --max-time 2 "$1"; }

wait_ready() {
	local url=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" == 200 ]]; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

stop_target() {
	local pid=$1 deadline=$((SECONDS + STOP_TIMEOUT))
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; killing it (its disk figure is not after a clean stop)"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	STARTED_PID=""
}

# start_TARGET sets START_PID, READY_URL, PUSH_URL and DATA_DIR.
start_orrery() {
	DATA_DIR=$TMP/orrery
	READY_URL=http://127.0.0.1:9009/ready
	PUSH_URL=http://127.0.0.1:9009/api/v1/push
	[[ $BENCH_OTLP == 1 ]] && PUSH_URL=http://127.0.0.1:9009/otlp/v1/metrics
	port_busy "$READY_URL" && { log "127.0.0.1:9009 is already in use"; return 1; }
	# shellcheck disable=SC2086 # ORRERY_ARGS is a list of flags
	"$ORRERY_BIN" -target=all -data.dir="$DATA_DIR" \
		-http.listen-address=127.0.0.1:9009 -grpc.listen-address=127.0.0.1:9095 \
		$ORRERY_ARGS >"$TMP/orrery.log" 2>&1 &
	START_PID=$!
}

start_prometheus() {
	DATA_DIR=$TMP/prom
	READY_URL=http://127.0.0.1:19090/-/ready
	PUSH_URL=http://127.0.0.1:19090/api/v1/write
	[[ $BENCH_OTLP == 1 ]] && PUSH_URL=http://127.0.0.1:19090/api/v1/otlp/v1/metrics
	port_busy "$READY_URL" && { log "127.0.0.1:19090 is already in use"; return 1; }
	printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$TMP/prometheus.yml"
	# The admin API is enabled only to snapshot the head as a block, which
	# gives a compressed on-disk figure comparable with the others.
	"$PROMETHEUS_BIN" --web.enable-remote-write-receiver --web.enable-otlp-receiver --web.enable-admin-api \
		--storage.tsdb.path="$DATA_DIR" --config.file="$TMP/prometheus.yml" \
		--web.listen-address=127.0.0.1:19090 >"$TMP/prometheus.log" 2>&1 &
	START_PID=$!
}

start_vm() {
	DATA_DIR=$TMP/vm
	READY_URL=http://127.0.0.1:18428/health
	PUSH_URL=http://127.0.0.1:18428/api/v1/write
	[[ $BENCH_OTLP == 1 ]] && { log "VictoriaMetrics 1.79 has no OTLP receiver"; return 1; }
	port_busy "$READY_URL" && { log "127.0.0.1:18428 is already in use"; return 1; }
	"$VM_BIN" -storageDataPath="$DATA_DIR" -httpListenAddr=127.0.0.1:18428 >"$TMP/vm.log" 2>&1 &
	START_PID=$!
}

# prometheus_snapshot writes the head as a block under snapshots/ and prints
# the snapshot's size in bytes (empty on failure).
prometheus_snapshot() {
	local name
	name=$(curl -s --max-time 300 -XPOST 'http://127.0.0.1:19090/api/v1/admin/tsdb/snapshot' |
		grep -o '"name":"[^"]*"' | cut -d'"' -f4) || true
	[[ -n "$name" ]] && du -sb "$DATA_DIR/snapshots/$name" | cut -f1
}

# orrery_compacted restarts Orrery on its data with compaction due at once,
# waits for the pass to end, stops it and prints the bytes its store's
# data occupies (orrery-bench store-size; empty on failure).
orrery_compacted() {
	local pid deadline
	# shellcheck disable=SC2086 # ORRERY_ARGS is a list of flags
	"$ORRERY_BIN" -target=all -data.dir="$DATA_DIR" \
		-http.listen-address=127.0.0.1:9009 -grpc.listen-address=127.0.0.1:9095 \
		-ingester.compact-after=1s $ORRERY_ARGS >"$TMP/orrery-compact.log" 2>&1 &
	pid=$!
	STARTED_PID=$pid
	wait_ready "$READY_URL" "$pid" || { stop_target "$pid"; return 1; }
	deadline=$((SECONDS + 900))
	until grep -q 'compacted stored chunks\|compaction failed' "$TMP/orrery-compact.log"; do
		((SECONDS < deadline)) || { log "compaction did not finish"; stop_target "$pid"; return 1; }
		sleep 2
	done
	stop_target "$pid"
	"$TMP/orrery-bench" store-size "$DATA_DIR/store.db"
}

declare -A SPS CPU RSS RSSPS DISK BLOCK FAILED NOTE

# run_target NAME starts a target, pushes at it, stops it cleanly and records
# its figures; a target that cannot be measured gets a NOTE instead.
run_target() {
	local name=$1 json=$TMP/$1.json rc=0 samples bench_timeout
	START_PID=""
	if ! "start_$name"; then
		NOTE[$name]="could not start"
		return 0
	fi
	STARTED_PID=$START_PID
	if ! wait_ready "$READY_URL" "$START_PID"; then
		NOTE[$name]="not ready within ${READY_TIMEOUT}s"
		tail -n 5 "$TMP/$name.log" >&2 || true
		stop_target "$START_PID"
		return 0
	fi
	log "$name ready (pid $START_PID); pushing $BENCH_SERIES series for $BENCH_DURATION"
	# Pre-generation, the timed phase and the last requests' timeouts.
	bench_timeout=$(($(duration_seconds "$BENCH_DURATION") + 180))
	local start=()
	if [[ $BENCH_ALIGN == 1 ]]; then
		start=(-start $(((($(date +%s) / 7200) * 7200 - BENCH_MAX_ROUNDS * 15) * 1000)))
	fi
	timeout "$bench_timeout" "$TMP/orrery-bench" -url "$PUSH_URL" -pid "$START_PID" "${start[@]}" \
		-series "$BENCH_SERIES" -batch "$BENCH_BATCH" -concurrency "$BENCH_CONCURRENCY" \
		-rate "$BENCH_RATE" -duration "$BENCH_DURATION" -pregen-mib "$BENCH_PREGEN_MIB" -max-rounds "$BENCH_MAX_ROUNDS" \
		-native-histograms="$([[ $BENCH_HISTOGRAMS == 1 ]] && echo true || echo false)" \
		-otlp="$([[ $BENCH_OTLP == 1 ]] && echo true || echo false)" \
		-json >"$json" 2>"$TMP/$name.bench.log" || rc=$?
	if [[ $name == prometheus ]]; then
		BLOCK[$name]=$(prometheus_snapshot || true)
	fi
	stop_target "$START_PID"
	if [[ $name == orrery ]]; then
		log "orrery: compacting its complete partitions"
		BLOCK[$name]=$(orrery_compacted || true)
	fi
	if [[ ! -s "$json" ]]; then
		NOTE[$name]="orrery-bench failed (exit $rc): $(tail -n 1 "$TMP/$name.bench.log")"
		return 0
	fi
	[[ $rc == 0 ]] || NOTE[$name]="orrery-bench exit $rc"
	samples=$(json_num "$json" samples_accepted)
	SPS[$name]=$(json_num "$json" samples_per_s)
	CPU[$name]=$(json_num "$json" cpu_s_per_1m_samples)
	RSS[$name]=$(json_num "$json" rss_end_mib)
	RSSPS[$name]=$(json_num "$json" rss_bytes_per_series)
	FAILED[$name]=$(json_num "$json" requests_failed)
	if ((${samples:-0} > 0)); then
		DISK[$name]=$(awk -v b="$(du -sb --exclude=snapshots "$DATA_DIR" | cut -f1)" -v n="$samples" 'BEGIN { print b / n }')
		if [[ -n "${BLOCK[$name]:-}" ]]; then
			BLOCK[$name]=$(awk -v b="${BLOCK[$name]}" -v n="$samples" 'BEGIN { print b / n }')
		fi
	fi
	log "$name: $(tr -d '\n' <"$json")"
}

# cell VALUE BASE FORMAT prints VALUE and, when both are known, its ratio to
# the Prometheus 3 figure BASE.
cell() {
	local v=$1 base=$2 f=$3
	if [[ -z "$v" ]]; then
		printf 'n/a'
	elif [[ -n "$base" ]] && awk -v b="$base" 'BEGIN { exit !(b > 0) }'; then
		awk -v v="$v" -v b="$base" -v f="$f" 'BEGIN { printf f " (%.2f×)", v, v / b }'
	else
		awk -v v="$v" -v f="$f" 'BEGIN { printf f, v }'
	fi
}

print_table() {
	local name label
	echo
	echo "Ingest, $BENCH_SERIES series, $BENCH_BATCH samples/request, $BENCH_CONCURRENCY in flight," \
		"$BENCH_DURATION per target, rate ${BENCH_RATE} (0 = flat out), $(nproc) cores shared with the load tool."
	echo "Ratios are target / Prometheus 3: above 1 is better for samples/s, worse for the rest."
	echo
	echo "| target | samples/s | CPU s per 1M samples | RSS MiB | RSS B/series | disk B/sample | disk B/sample as block | failed requests | note |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for name in $BENCH_TARGETS; do
		case $name in orrery) label=Orrery ;; prometheus) label="Prometheus 3" ;; vm) label=VictoriaMetrics ;; esac
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" \
			"$(cell "${SPS[$name]:-}" "${SPS[prometheus]:-}" '%.0f')" \
			"$(cell "${CPU[$name]:-}" "${CPU[prometheus]:-}" '%.3f')" \
			"$(cell "${RSS[$name]:-}" "${RSS[prometheus]:-}" '%.0f')" \
			"$(cell "${RSSPS[$name]:-}" "${RSSPS[prometheus]:-}" '%.0f')" \
			"$(cell "${DISK[$name]:-}" "${DISK[prometheus]:-}" '%.2f')" \
			"$(cell "${BLOCK[$name]:-}" "" '%.2f')" \
			"${FAILED[$name]:-n/a}" "${NOTE[$name]:-}"
	done
	echo
	echo "disk: du of the data directory after a clean stop. As block: Prometheus' head written as a TSDB block by the snapshot API;" \
		"Orrery's store after compacting its complete partitions (the pages its data occupies: orrery-bench store-size)."
}

main() {
	local name
	log "building the load tool into $TMP"
	go build -o "$TMP/orrery-bench" ./cmd/orrery-bench
	for name in $BENCH_TARGETS; do
		case $name in
		orrery)
			log "building $ORRERY_BIN"
			go build -o "$ORRERY_BIN" ./cmd/orrery || NOTE[orrery]="build failed"
			;;
		prometheus)
			"$PROMETHEUS_BIN" --version >/dev/null 2>&1 || NOTE[prometheus]="$PROMETHEUS_BIN missing"
			;;
		vm)
			[[ -x "$VM_BIN" ]] || NOTE[vm]="$VM_BIN missing"
			;;
		*)
			echo "unknown target $name (want orrery, prometheus or vm)" >&2
			exit 2
			;;
		esac
	done
	for name in $BENCH_TARGETS; do
		if [[ -z "${NOTE[$name]:-}" ]]; then
			run_target "$name"
		fi
	done
	print_table
}

main "$@"
