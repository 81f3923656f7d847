#!/usr/bin/env bash
# Query benchmark (issue 11): loads the same deterministic history (package
# loadgen through cmd/orrery-bench: QB_SERIES series, one sample every
# QB_INTERVAL for QB_HISTORY, ending near now, written oldest first) into
# Prometheus 3, VictoriaMetrics, Orrery in one process and an Orrery cluster
# (3 ingesters, a distributor and a querier, RF=3, as separate processes),
# then times the dashboard range queries of QB_QUERIES against each
# (`orrery-bench query`: the whole history at QB_STEP, median of QB_RUNS
# after QB_WARMUP untimed runs, every answer checked to be a success) and
# prints markdown tables: per target the geometric mean latency and its ratio
# to Prometheus 3, per query the medians, and each process's peak RSS
# (VmHWM) after the queries.
#
# One target runs at a time: it is started, loaded, left to settle (its
# background work after the load, such as Prometheus' head compaction, done),
# queried and stopped, so no target's housekeeping lands on another's timing.
#
# Everything listens on and is sent to 127.0.0.1 only. Every wait has a time
# bound, and the script stops only the processes it started, by pid. It exits
# non-zero when any target could not be measured, after printing the rest.
#
# Environment (defaults in brackets):
#   QB_SERIES            series [10080: 48 hosts × 3 targets (node,
#                        prometheus, api) of the loadgen catalogue]
#   QB_HISTORY           history loaded and queried, whole hours or minutes [6h]
#   QB_INTERVAL          data-time step between samples of a series [15s]
#   QB_STEP              range query step [60s]
#   QB_RUNS              timed runs per query, the median is reported [3]
#   QB_WARMUP            untimed runs per query before those [1]
#   QB_QUERIES           query file [scripts/dashboard-queries.txt]
#   QB_TARGETS           targets, in order; the first is the ratios' baseline
#                        [prometheus vm orrery cluster]
#   QB_FRONTEND          1 also times the cluster through a
#                        -target=query-frontend process [0]
#   QB_CACHE             off, on or both [off]. off: results caches disabled
#                        (VictoriaMetrics' through nocache=1, the frontend's
#                        with QB_FRONTEND_CACHE_OFF_ARGS); on: caches enabled,
#                        so the timed runs are a dashboard refreshed within
#                        the cache's lifetime (the warm-up filled it); both:
#                        one pass of each, each with its own tables
#   QB_LOAD_CONCURRENCY  requests in flight while loading; each sender owns
#                        whole series and sends them oldest first [2]
#   QB_LOAD_TIMEOUT      bound on loading one target, seconds [1200]
#   QB_SETTLE_TIMEOUT    bound on waiting for a target to go idle after the
#                        load, seconds [180]
#   QB_PORT_BASE         first of the loopback ports used [23000]
#   QB_KEEP              1 keeps the temporary directory with data and logs [0]
#   ORRERY_ARGS          extra flags for every Orrery process []
#   QB_QUERIER_ARGS      extra flags for the cluster's querier []
#   QB_FRONTEND_ARGS     extra flags for the query-frontend []
#   QB_FRONTEND_CACHE_OFF_ARGS  the frontend's flags in a cache-off pass
#                        [-frontend.cache-results=false]
#   PROMETHEUS3_BIN      [$(go env GOPATH)/bin/prometheus3-static-<the prometheus
#                        module version in go.mod>, as scripts/test-deps.sh
#                        builds it]
#   VM_BIN               [/usr/bin/victoria-metrics: apt-get install victoria-metrics]
set -euo pipefail

cd "$(dirname "$0")/.."

QB_SERIES=${QB_SERIES:-10080}
QB_HISTORY=${QB_HISTORY:-6h}
QB_INTERVAL=${QB_INTERVAL:-15s}
QB_STEP=${QB_STEP:-60s}
QB_RUNS=${QB_RUNS:-3}
QB_WARMUP=${QB_WARMUP:-1}
QB_QUERIES=${QB_QUERIES:-scripts/dashboard-queries.txt}
QB_TARGETS=${QB_TARGETS:-prometheus vm orrery cluster}
QB_FRONTEND=${QB_FRONTEND:-0}
QB_CACHE=${QB_CACHE:-off}
QB_LOAD_CONCURRENCY=${QB_LOAD_CONCURRENCY:-2}
QB_LOAD_TIMEOUT=${QB_LOAD_TIMEOUT:-1200}
QB_SETTLE_TIMEOUT=${QB_SETTLE_TIMEOUT:-180}
QB_PORT_BASE=${QB_PORT_BASE:-23000}
QB_KEEP=${QB_KEEP:-0}
ORRERY_ARGS=${ORRERY_ARGS:-}
QB_QUERIER_ARGS=${QB_QUERIER_ARGS:-}
QB_FRONTEND_ARGS=${QB_FRONTEND_ARGS:-}
QB_FRONTEND_CACHE_OFF_ARGS=${QB_FRONTEND_CACHE_OFF_ARGS:--frontend.cache-results=false}
PROMETHEUS3_BIN=${PROMETHEUS3_BIN:-$(go env GOPATH)/bin/prometheus3-static-$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)}
VM_BIN=${VM_BIN:-/usr/bin/victoria-metrics}
ORRERY_BIN=./bin/orrery
BENCH_BIN=./bin/orrery-bench

READY_TIMEOUT=90 # seconds for a process to answer its readiness probe
STOP_TIMEOUT=60  # seconds for a clean shutdown before SIGKILL
QUERY_TIMEOUT=2m # one query

TMP=$(mktemp -d /tmp/orrery-querybench.XXXXXX)
declare -A PID=()   # running processes this script started, by name
declare -A HTTP=()  # their HTTP ports
declare -A NOTE=()  # why a target has no figures
declare -A LOADED=() # a target's load summary: "samples/s seconds"
HWM_ROWS=()          # "| process | MiB |" rows, in the order measured
FAILED=0

log() { printf '%s querybench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
	local name
	for name in "${!PID[@]}"; do
		kill -KILL "${PID[$name]}" 2>/dev/null || true
	done
	if [[ "$QB_KEEP" == 1 ]]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# seconds turns 6h, 90m, 15s or 1m30s into seconds.
seconds() {
	local d=$1 total=0 n unit
	while [[ -n "$d" ]]; do
		[[ "$d" =~ ^([0-9]+)(h|m|s)(.*)$ ]] || { echo "bad duration $1" >&2; return 1; }
		n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
		case $unit in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
	done
	echo "$total"
}

# json_num FILE KEY prints a top-level numeric field of a one-line JSON
# object; the load summary's keys are unique, so no JSON parser is needed.
json_num() { grep -o "\"$2\":[-0-9.eE+]*" "$1" | head -n1 | cut -d: -f2; }

# port_busy PORT tells whether something already listens there: measuring a
# process we did not start would time the wrong thing.
port_busy() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; }

# start NAME HTTP_PORT COMMAND... runs COMMAND in the background, logging to
# $TMP/NAME.log.
start() {
	local name=$1 port=$2
	shift 2
	if port_busy "$port"; then
		log "127.0.0.1:$port is already in use"
		return 1
	fi
	"$@" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!
	HTTP[$name]=$port
}

# wait_ready NAME PATH waits for a 200 from NAME's PATH while NAME lives.
wait_ready() {
	local name=$1 path=$2 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)) && kill -0 "${PID[$name]}" 2>/dev/null; do
		if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${HTTP[$name]}$path" || true)" == 200 ]]; then
			return 0
		fi
		sleep 0.5
	done
	log "$name not ready within ${READY_TIMEOUT}s; its log ends:"
	tail -n 5 "$TMP/$name.log" >&2 || true
	return 1
}

# stop NAME... asks each to stop, waits a bounded time, then kills.
stop() {
	local name deadline=$((SECONDS + STOP_TIMEOUT))
	for name; do
		if [[ -n "${PID[$name]:-}" ]]; then
			kill -TERM "${PID[$name]}" 2>/dev/null || true
		fi
	done
	for name; do
		[[ -n "${PID[$name]:-}" ]] || continue
		while kill -0 "${PID[$name]}" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.5
		done
		kill -KILL "${PID[$name]}" 2>/dev/null || true
		wait "${PID[$name]}" 2>/dev/null || true
		unset "PID[$name]"
	done
}

# cpu_ticks NAME... sums the user and system CPU ticks of the named processes.
cpu_ticks() {
	local name total=0 t
	for name; do
		t=$(sed 's/^.*) //' "/proc/${PID[$name]}/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
		total=$((total + ${t:-0}))
	done
	echo "$total"
}

# settle NAME... waits, up to QB_SETTLE_TIMEOUT, until the processes use
# less than 5% of one core over 5 seconds: the load's aftermath (flushes,
# compactions, merges) is over before anything is timed.
settle() {
	local deadline=$((SECONDS + QB_SETTLE_TIMEOUT)) a b
	while ((SECONDS < deadline)); do
		a=$(cpu_ticks "$@")
		sleep 5
		b=$(cpu_ticks "$@")
		if ((b - a < 25)); then
			return 0
		fi
	done
	log "$* still busy after ${QB_SETTLE_TIMEOUT}s; timing anyway"
}

# record_hwm LABEL NAME adds NAME's peak RSS to the memory table.
record_hwm() {
	local mib
	mib=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/${PID[$2]}/status" 2>/dev/null) || true
	HWM_ROWS+=("| $1 | ${mib:-n/a} |")
}

# load TARGET URL pushes the whole history at URL, oldest round first, and
# fails unless every sample was accepted: a partly loaded target would be
# timed on less data than the others.
load() {
	local target=$1 url=$2 json=$TMP/$1.load.json want rc=0 began=$SECONDS
	want=$((QB_SERIES * ROUNDS))
	log "$target: loading $QB_SERIES series × $ROUNDS rounds ($want samples)"
	timeout "$((QB_LOAD_TIMEOUT + 60))" "$BENCH_BIN" -url "$url" -series "$QB_SERIES" \
		-batch "$(((QB_SERIES + QB_LOAD_CONCURRENCY - 1) / QB_LOAD_CONCURRENCY))" \
		-concurrency "$QB_LOAD_CONCURRENCY" -interval "$QB_INTERVAL" -start "$((DATA_START * 1000))" \
		-max-rounds "$ROUNDS" -duration "${QB_LOAD_TIMEOUT}s" -timeout 60s -json \
		>"$json" 2>"$TMP/$target.load.log" || rc=$?
	if [[ ! -s "$json" ]] || [[ "$(json_num "$json" samples_accepted)" != "$want" ]]; then
		NOTE[$target]="load failed (exit $rc): $(json_num "$json" samples_accepted || true) of $want samples accepted; $(grep -o '"errors":{[^}]*}' "$json" || tail -n 1 "$TMP/$target.load.log")"
		log "$target: ${NOTE[$target]}"
		return 1
	fi
	LOADED[$target]="$(json_num "$json" samples_per_s) $((SECONDS - began))"
	log "$target: loaded at $(json_num "$json" samples_per_s | cut -d. -f1) samples/s"
}

# time_queries TARGET PASS URL [PARAMS] times the dashboard against URL.
time_queries() {
	local target=$1 pass=$2 url=$3 params=${4:-} out no_store=false
	# Orrery's one process serves both passes: its frontend's cache is
	# bypassed per request in the cache-off pass.
	[[ $pass == off && $target == orrery ]] && no_store=true
	out=$TMP/$pass/$target.json
	mkdir -p "$TMP/$pass"
	log "$target: timing the dashboard, cache $pass"
	if ! "$BENCH_BIN" query -url "$url" -queries "$QB_QUERIES" -start "$QUERY_START" -end "$QUERY_END" \
		-step "$QB_STEP" -runs "$QB_RUNS" -warmup "$QB_WARMUP" -timeout "$QUERY_TIMEOUT" -params "$params" -no-store="$no_store" -json \
		>"$out" 2>"$TMP/$pass/$target.log"; then
		NOTE[$target]="query failed: $(tail -n 1 "$TMP/$pass/$target.log")"
		log "$target: ${NOTE[$target]}"
		rm -f "$out"
		return 1
	fi
}

passes() {
	case $QB_CACHE in
	off | on) echo "$QB_CACHE" ;;
	both) echo "off on" ;;
	*) echo "QB_CACHE=$QB_CACHE: want off, on or both" >&2; return 1 ;;
	esac
}

# orrery_member NAME TARGET OFFSET [FLAGS...] starts one Orrery process on
# ports QB_PORT_BASE+OFFSET (HTTP), +1 (gRPC) and +2 (gossip).
orrery_member() {
	local name=$1 target=$2 off=$3
	shift 3
	local h=$((QB_PORT_BASE + off))
	# shellcheck disable=SC2086 # ORRERY_ARGS is a list of flags
	start "$name" "$h" "$ORRERY_BIN" -target="$target" -instance.id="$name" -data.dir="$TMP/data/$name" \
		-http.listen-address=127.0.0.1:$h -grpc.listen-address=127.0.0.1:$((h + 1)) \
		-memberlist.bind-address=127.0.0.1:$((h + 2)) "$@" $ORRERY_ARGS
}

run_prometheus() {
	local pass
	mkdir -p "$TMP/data/prometheus"
	printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$TMP/prometheus.yml"
	start prometheus $((QB_PORT_BASE + 90)) "$PROMETHEUS3_BIN" --web.enable-remote-write-receiver \
		--storage.tsdb.path="$TMP/data/prometheus" --config.file="$TMP/prometheus.yml" \
		--web.listen-address=127.0.0.1:$((QB_PORT_BASE + 90)) || { NOTE[prometheus]="could not start"; return 1; }
	wait_ready prometheus /-/ready || { NOTE[prometheus]="not ready"; stop prometheus; return 1; }
	load prometheus "http://127.0.0.1:${HTTP[prometheus]}/api/v1/write" || { stop prometheus; return 1; }
	prometheus_compacted
	settle prometheus
	for pass in $(passes); do
		time_queries prometheus "$pass" "http://127.0.0.1:${HTTP[prometheus]}" || break
	done
	record_hwm "Prometheus 3" prometheus
	stop prometheus
}

# prometheus_compacted waits until the head spans at most 3 hours, the point
# past which Prometheus compacts it into 2-hour blocks: a Prometheus that had
# been running for the whole history would hold the rest in blocks.
prometheus_compacted() {
	local deadline=$((SECONDS + QB_SETTLE_TIMEOUT)) m lo hi
	while ((SECONDS < deadline)); do
		m=$(curl -s --max-time 5 "http://127.0.0.1:${HTTP[prometheus]}/metrics" || true)
		lo=$(awk '/^prometheus_tsdb_head_min_time / { printf "%d", $2 }' <<<"$m")
		hi=$(awk '/^prometheus_tsdb_head_max_time / { printf "%d", $2 }' <<<"$m")
		if [[ -n "$lo" && -n "$hi" ]] && ((hi - lo <= 3 * 3600 * 1000)); then
			return 0
		fi
		sleep 2
	done
	log "prometheus: head still spans more than 3h after ${QB_SETTLE_TIMEOUT}s; timing anyway"
}

run_vm() {
	local pass
	start vm $((QB_PORT_BASE + 28)) "$VM_BIN" -storageDataPath="$TMP/data/vm" \
		-httpListenAddr=127.0.0.1:$((QB_PORT_BASE + 28)) || { NOTE[vm]="could not start"; return 1; }
	wait_ready vm /health || { NOTE[vm]="not ready"; stop vm; return 1; }
	load vm "http://127.0.0.1:${HTTP[vm]}/api/v1/write" || { stop vm; return 1; }
	# Recently written rows become searchable only after a flush.
	curl -s -o /dev/null --max-time 60 "http://127.0.0.1:${HTTP[vm]}/internal/force_flush" || true
	settle vm
	for pass in $(passes); do
		local params=""
		[[ $pass == off ]] && params=nocache=1
		time_queries vm "$pass" "http://127.0.0.1:${HTTP[vm]}" "$params" || break
	done
	record_hwm VictoriaMetrics vm
	stop vm
}

run_orrery() {
	local pass
	orrery_member orrery all 0 || { NOTE[orrery]="could not start"; return 1; }
	wait_ready orrery /ready || { NOTE[orrery]="not ready"; stop orrery; return 1; }
	load orrery "http://127.0.0.1:${HTTP[orrery]}/api/v1/push" || { stop orrery; return 1; }
	settle orrery
	for pass in $(passes); do
		time_queries orrery "$pass" "http://127.0.0.1:${HTTP[orrery]}/prometheus" || break
	done
	record_hwm "Orrery one process" orrery
	stop orrery
}

# ring_ready NAME waits until NAME sees 3 healthy ACTIVE token owners.
ring_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) n
	while ((SECONDS < deadline)); do
		n=$(curl -s --max-time 2 "http://127.0.0.1:${HTTP[$1]}/ring?format=json" |
			grep -o '"state":"ACTIVE","owns_tokens":true[^}]*"healthy":true' | wc -l) || n=0
		((n == 3)) && return 0
		sleep 0.5
	done
	log "$1 does not see 3 healthy ACTIVE ingesters"
	return 1
}

CLUSTER=(ing-1 ing-2 ing-3 distributor querier)

run_cluster() {
	local i pass seed=$((QB_PORT_BASE + 12)) cluster_flags
	cluster_flags=(-replication-factor=3 "-memberlist.join=127.0.0.1:$seed")
	for i in 1 2 3; do
		# Handing series over at shutdown is pointless when the whole
		# cluster stops, and would hold each ingester for a minute.
		orrery_member "ing-$i" ingester $((i * 10)) "${cluster_flags[@]}" -ingester.handover-on-shutdown=false || { NOTE[cluster]="could not start"; stop "${CLUSTER[@]}"; return 1; }
	done
	orrery_member distributor distributor 40 "${cluster_flags[@]}" || { NOTE[cluster]="could not start"; stop "${CLUSTER[@]}"; return 1; }
	# shellcheck disable=SC2086 # QB_QUERIER_ARGS is a list of flags
	orrery_member querier querier 50 "${cluster_flags[@]}" $QB_QUERIER_ARGS || { NOTE[cluster]="could not start"; stop "${CLUSTER[@]}"; return 1; }
	for i in "${CLUSTER[@]}"; do
		wait_ready "$i" /ready || { NOTE[cluster]="$i not ready"; stop "${CLUSTER[@]}"; return 1; }
	done
	if ! ring_ready distributor || ! ring_ready querier; then
		NOTE[cluster]="ring not formed"
		stop "${CLUSTER[@]}"
		return 1
	fi
	load cluster "http://127.0.0.1:${HTTP[distributor]}/api/v1/push" || { stop "${CLUSTER[@]}"; return 1; }
	settle "${CLUSTER[@]}"
	for pass in $(passes); do
		time_queries cluster "$pass" "http://127.0.0.1:${HTTP[querier]}/prometheus" || break
		if [[ "$QB_FRONTEND" == 1 ]]; then
			time_frontend "$pass" "${cluster_flags[@]}" || true
		fi
	done
	for i in "${CLUSTER[@]}"; do
		record_hwm "Orrery cluster $i" "$i"
	done
	stop "${CLUSTER[@]}"
}

# time_frontend PASS FLAGS... starts a query-frontend in the cluster with
# that pass's cache setting, times the dashboard through it and stops it; a
# fresh frontend per pass starts with an empty cache.
time_frontend() {
	local pass=$1 cache_args=""
	shift
	[[ $pass == off ]] && cache_args=$QB_FRONTEND_CACHE_OFF_ARGS
	# shellcheck disable=SC2086 # lists of flags
	orrery_member frontend query-frontend 60 "$@" $QB_FRONTEND_ARGS $cache_args || { NOTE[frontend]="could not start"; return 1; }
	if ! wait_ready frontend /ready; then
		NOTE[frontend]="not ready"
		stop frontend
		return 1
	fi
	if time_queries frontend "$pass" "http://127.0.0.1:${HTTP[frontend]}/prometheus"; then
		record_hwm "Orrery cluster frontend (cache $pass)" frontend
	fi
	stop frontend
}

label() {
	case $1 in
	prometheus) echo "Prometheus 3" ;;
	vm) echo VictoriaMetrics ;;
	orrery) echo "Orrery one process" ;;
	cluster) echo "Orrery RF=3 cluster" ;;
	frontend) echo "Orrery RF=3 cluster + frontend" ;;
	esac
}

print_tables() {
	local pass name args target
	echo
	echo "Dashboard range queries ($(grep -cv '^\s*\(#\|$\)' "$QB_QUERIES") in $QB_QUERIES), $QB_HISTORY at a $QB_STEP step," \
		"$QB_SERIES series every $QB_INTERVAL, median of $QB_RUNS after $QB_WARMUP warm-up;" \
		"$(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), load average before the run $LOAD_BEFORE, after it $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine moves every figure)."
	for pass in $(passes); do
		echo
		echo "### Cache $pass"
		echo
		args=()
		for target in $TARGET_ORDER; do
			[[ -s "$TMP/$pass/$target.json" ]] && args+=("$(label "$target")=$TMP/$pass/$target.json")
		done
		if ((${#args[@]} > 0)); then
			"$BENCH_BIN" query-report "${args[@]}" || FAILED=1
		else
			echo "no target answered"
		fi
	done
	echo
	echo "| target | load samples/s | load s | note |"
	echo "|---|---|---|---|"
	for target in $TARGET_ORDER; do
		read -r sps secs <<<"${LOADED[$target]:-n/a n/a}"
		printf '| %s | %s | %s | %s |\n' "$(label "$target")" "${sps%.*}" "$secs" "${NOTE[$target]:-}"
	done
	echo
	echo "| process | peak RSS MiB (VmHWM after the queries) |"
	echo "|---|---|"
	printf '%s\n' "${HWM_ROWS[@]}"
}

main() {
	local target began=$SECONDS step history
	passes >/dev/null
	step=$(seconds "$QB_STEP")
	history=$(seconds "$QB_HISTORY")
	ROUNDS=$((history / $(seconds "$QB_INTERVAL")))
	# The history ends at the last step boundary before now, so every target
	# gets the same timestamps and the queries the same aligned window.
	DATA_START=$((($(date +%s) - history) / step * step))
	QUERY_START=$DATA_START
	QUERY_END=$((DATA_START + history))
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	TARGET_ORDER=$QB_TARGETS
	if [[ "$QB_FRONTEND" == 1 && " $QB_TARGETS " == *" cluster "* ]]; then
		TARGET_ORDER="$QB_TARGETS frontend"
	fi

	log "building $ORRERY_BIN and $BENCH_BIN"
	go build -o "$ORRERY_BIN" ./cmd/orrery
	go build -o "$BENCH_BIN" ./cmd/orrery-bench
	log "history $(date -u -d "@$DATA_START" +%FT%TZ) .. $(date -u -d "@$QUERY_END" +%FT%TZ), temporary directory $TMP"
	for target in $QB_TARGETS; do
		case $target in
		prometheus) [[ -x "$PROMETHEUS3_BIN" ]] || { NOTE[prometheus]="$PROMETHEUS3_BIN missing (scripts/test-deps.sh builds it)"; continue; } ;;
		vm) [[ -x "$VM_BIN" ]] || { NOTE[vm]="$VM_BIN missing (apt-get install victoria-metrics)"; continue; } ;;
		orrery | cluster) ;;
		*)
			echo "unknown target $target (want prometheus, vm, orrery or cluster)" >&2
			exit 2
			;;
		esac
		"run_$target" || true
	done
	print_tables
	log "done in $((SECONDS - began))s"
	for target in $TARGET_ORDER; do
		if [[ -n "${NOTE[$target]:-}" ]]; then
			log "$(label "$target"): ${NOTE[$target]}"
			FAILED=1
		fi
	done
	return "$FAILED"
}

main "$@"
