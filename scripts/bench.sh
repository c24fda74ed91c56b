#!/usr/bin/env bash
# Benchmarks sessions against the field: uapi_app (signed cookie, memory and
# Redis sessions), a bare hyper server (the ceiling), axum + tower-sessions
# (memory, Redis) and actix-web + actix-session (cookie, Redis), all built in
# release mode, under wrk, with Redis's own ceiling from redis-benchmark.
#
#   scripts/bench.sh
#
# The load generator runs on one core, the servers and Redis on another
# (taskset); each server is started fresh for each round and the servers take
# turns (A B C … A B C …), so that drift hits all alike. Two workloads:
#
#   READ   GET / with the cookie of one POST /login made just before
#   WRITE  POST /login?username=bench with no cookie: a new session is
#          created and written each time (to Redis for the Redis flavours)
#
# It prints a table (req/s as the median of rounds, p99 latency, server CPU
# time per request from /proc/PID/stat, Redis CPU time per request, ratios to
# bare hyper and to the best peer, how busy wrk's core was and how much of
# both cores' time the hypervisor stole, from /proc/stat) and the issue's
# targets, met or missed, and writes them to $BENCH_OUT.
#
# Settings (environment):
#   BENCH_SECS=8          seconds of each measured wrk run
#   BENCH_WARMUP=1        seconds of wrk before each measured run
#   BENCH_ROUNDS=3        rounds
#   BENCH_CONNECTIONS=32  wrk connections (and redis-benchmark clients)
#   BENCH_LOAD_CPU=0      the core of wrk and redis-benchmark
#   BENCH_SERVER_CPU=1    the core of the servers and Redis
#   BENCH_SERVERS="..."   a subset of: sessions-cookie sessions-memory
#                         sessions-redis hyper axum-memory axum-redis
#                         actix-cookie actix-redis
#   BENCH_WORKLOADS="read write"
#   BENCH_OUT=target/bench/results.md (instructions.md with BENCH_MODE=instructions)
#   BENCH_NO_BUILD=1      use the binaries already built
#   BENCH_MODE=instructions
#                         count instructions per request instead (see below)
#   BENCH_MODE=rate       latencies at one fixed rate for every server (see below)
#   BENCH_RATE=8000       that rate, requests per second
#   BENCH_BASELINE_APP=/path/to/uapi_app
#                         another build of uapi_app (say, of the previous
#                         commit) for a before/after in one run: add
#                         baseline-cookie, baseline-memory, baseline-redis
#                         to BENCH_SERVERS; the wall-clock table then ends
#                         with this build against it, round by round
#
# Needs wrk, redis-server, redis-benchmark, redis-cli, curl and taskset; it
# installs nothing. With the defaults a run takes about 8 minutes.
#
# BENCH_MODE=instructions runs each server under valgrind's callgrind instead
# and prints the instructions the server process executes per request (user
# space only: the kernel's socket work, most of a request's time, is not
# counted), over one round: a measure that a busy or shared machine does not
# move, for comparing builds where wall-clock figures drift. Needs valgrind
# (Debian: apt-get install valgrind); about 4 minutes.
#
# BENCH_MODE=rate offers every server the same load instead, BENCH_RATE
# requests a second from oha, open loop (a request is sent when it is due,
# answered or not, and its latency counts from then), and compares p50, p99
# and p99.9 at that load: at saturation a faster server answers more requests
# with the same 32 connections, and its latencies are not the same measure as
# a slower one's. The rate should be below what the slowest server of the run
# sustains (the "answered" column shows when it is not). Needs oha (cargo
# install oha --locked); writes target/bench/rate.md.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${BENCH_SECS:-8}
warmup=${BENCH_WARMUP:-1}
rounds=${BENCH_ROUNDS:-3}
connections=${BENCH_CONNECTIONS:-32}
load_cpu=${BENCH_LOAD_CPU:-0}
server_cpu=${BENCH_SERVER_CPU:-1}
servers=${BENCH_SERVERS:-"sessions-cookie sessions-memory sessions-redis hyper axum-memory axum-redis actix-cookie actix-redis"}
workloads=${BENCH_WORKLOADS:-"read write"}
out=${BENCH_OUT:-$root/target/bench/results.md}

mode=${BENCH_MODE:-wall}
rate=${BENCH_RATE:-8000}
case $mode in
wall) mode_tools=() ;;
instructions)
    mode_tools=(valgrind callgrind_control)
    rounds=${BENCH_ROUNDS:-1}
    out=${BENCH_OUT:-$root/target/bench/instructions.md}
    ;;
rate)
    mode_tools=(oha)
    out=${BENCH_OUT:-$root/target/bench/rate.md}
    [[ $rate =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_RATE is requests per second, not $rate" >&2; exit 1; }
    ;;
*) echo "bench.sh: BENCH_MODE is wall, rate or instructions, not $mode" >&2; exit 1 ;;
esac

missing=()
for tool in wrk redis-server redis-benchmark redis-cli curl taskset awk "${mode_tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "bench.sh: missing: ${missing[*]}" >&2
    for tool in "${missing[@]}"; do
        case $tool in
        wrk) echo "  apt-get install wrk" >&2 ;;
        redis-*) echo "  apt-get install redis-server redis-tools" >&2 ;;
        curl) echo "  apt-get install curl" >&2 ;;
        taskset) echo "  apt-get install util-linux" >&2 ;;
        valgrind | callgrind_control) echo "  apt-get install valgrind" >&2 ;;
        oha) echo "  cargo install oha --locked   (oha 1.x, a few minutes to build)" >&2 ;;
        esac
    done
    exit 1
fi
if (($(nproc --all) < 2)); then
    echo "bench.sh: needs two cores (one for the load, one for the servers)" >&2
    exit 1
fi

main_target=${CARGO_TARGET_DIR:-$root/target}
peers_target=${BENCH_PEERS_TARGET_DIR:-$root/bench/target}
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    echo "== building in release mode (the peers' first build takes a while)" >&2
    (cd "$root" && cargo build --release -p examples --bin uapi_app)
    (cd "$root/bench" && CARGO_TARGET_DIR=$peers_target cargo build --release)
fi
uapi_app=$main_target/release/uapi_app
peers=$peers_target/release
for binary in "$uapi_app" "$peers/hyper_bare" "$peers/axum_peer" "$peers/actix_peer"; do
    [[ -x $binary ]] || { echo "bench.sh: $binary is not built" >&2; exit 1; }
done

baseline_app=${BENCH_BASELINE_APP:-}
if [[ $servers == *baseline-* && ! -x $baseline_app ]]; then
    echo "bench.sh: baseline-* servers need BENCH_BASELINE_APP, the path of a uapi_app binary" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sessions-bench.XXXXXX")
redis_pid=
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $redis_pid ]]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Our own Redis on a free loopback port, on the servers' core.
redis_port=
for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    redis-cli -p "$port" ping >/dev/null 2>&1 && continue
    taskset -c "$server_cpu" redis-server --port "$port" --bind 127.0.0.1 --save "" \
        --appendonly no --protected-mode no >"$work/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do
        if [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; then
            redis_port=$port
            break 2
        fi
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    redis_pid=
done
[[ -n $redis_port ]] || { echo "bench.sh: could not start redis-server" >&2; exit 1; }
redis_url=redis://127.0.0.1:$redis_port
echo "== redis-server $(redis-server --version | awk '{print $3}') on port $redis_port (pid $redis_pid)" >&2

command_of() {
    case $1 in
    sessions-cookie) echo "$uapi_app cookie --port 0 --secret-key bench-secret-key-of-at-least-32-bytes" ;;
    sessions-memory) echo "$uapi_app redis --port 0" ;;
    sessions-redis) echo "$uapi_app redis --port 0 --redis-url $redis_url" ;;
    baseline-cookie) echo "$baseline_app cookie --port 0 --secret-key bench-secret-key-of-at-least-32-bytes" ;;
    baseline-memory) echo "$baseline_app redis --port 0" ;;
    baseline-redis) echo "$baseline_app redis --port 0 --redis-url $redis_url" ;;
    hyper) echo "$peers/hyper_bare --port 0" ;;
    axum-memory) echo "$peers/axum_peer memory --port 0" ;;
    axum-redis) echo "$peers/axum_peer redis --port 0 --redis-url $redis_url" ;;
    actix-cookie) echo "$peers/actix_peer cookie --port 0" ;;
    actix-redis) echo "$peers/actix_peer redis --port 0 --redis-url $redis_url" ;;
    *) echo "bench.sh: unknown server $1" >&2; exit 1 ;;
    esac
}

# utime + stime of a process (all its threads), in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Busy (user, nice, system, irq, softirq) and all ticks of one CPU so far, from /proc/stat.
cpu_busy_total() {
    awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
# Steal ticks (time the hypervisor gave our virtual CPUs to someone else) of the load and
# server cores so far, and how many distinct cores that is.
steal_ticks() {
    awk -v a="cpu$load_cpu" -v b="cpu$server_cpu" '$1 == a || $1 == b { s += $9; n++ } END { print s, n }' /proc/stat
}
ticks_per_sec=$(getconf CLK_TCK)

# Starts a server pinned to the server core; sets server_pid and port.
start_server() {
    local name=$1
    # shellcheck disable=SC2046
    local under=()
    [[ $mode == instructions ]] && under=(valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg")
    # Emptied here, before the server starts: the background job opens its output only
    # once it runs, and until then the loop below would read the port of this server's
    # previous round, long closed.
    : >"$work/$name.out"
    RUST_LOG=${RUST_LOG:-warn} taskset -c "$server_cpu" "${under[@]}" $(command_of "$name") \
        >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    port=
    for _ in $(seq 600); do
        port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/$name.out" 2>/dev/null || true)
        [[ -n $port ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench.sh: $name did not start:" >&2
    cat "$work/$name.err" >&2
    exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# What a failed check prints about the server: whether it still runs, and the end
# of what it wrote.
server_state() {
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "  $name (pid $server_pid, port $port) is running; its stderr ends with:"
    else
        echo "  $name (pid $server_pid, port $port) has exited; its stderr ends with:"
    fi
    tail -n 20 "$work/$name.err" | sed 's/^/    /'
}

# The `name=value` of the session cookie of a fresh login; checks that the
# session is really read back.
login_cookie() {
    local base=$1 cookie body
    cookie=$(curl -sS -D - -o /dev/null -X POST "$base/login?username=bench" |
        tr -d '\r' | awk 'tolower($1) == "set-cookie:" { sub(/^[^:]*: */, ""); sub(/;.*/, ""); print; exit }')
    body=$(curl -sS -H "Cookie: $cookie" "$base/")
    if [[ -z $cookie || $body != *bench* ]]; then
        echo "bench.sh: $name: login did not give a working session (cookie '$cookie', GET / '$body')" >&2
        server_state >&2
        return 1
    fi
    echo "$cookie"
}

echo 'wrk.method = "POST"' >"$work/post.lua"

# Runs wrk; prints "requests req/s p99_us non2xx socket_errors".
run_wrk() {
    local duration=$1
    shift
    taskset -c "$load_cpu" wrk -t1 -c"$connections" -d"${duration}s" --latency "$@" >"$work/wrk.out" 2>&1 || {
        cat "$work/wrk.out" >&2
        exit 1
    }
    awk '
        / requests in / { requests = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /^ +99%/ {
            v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
            p99 = (unit == "us") ? v : (unit == "ms") ? v * 1000 : (unit == "s") ? v * 1e6 : v
        }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { errors = $4 + $6 + $8 + $10; gsub(/,/, "", errors) }
        END { printf "%d %.0f %.0f %d %d\n", requests, rps, p99, non2xx, errors }
    ' "$work/wrk.out"
}

# Runs oha at the fixed rate, open loop: a request is due every 1/rate s whether or not
# the previous ones were answered, and its latency counts from when it was due
# (--latency-correction), so a stall is charged to every request it held up. Prints
# "requests req/s p99_us non2xx errors p50_us p99.9_us".
run_oha() {
    local duration=$1
    shift
    taskset -c "$load_cpu" oha --no-tui --worker-threads 1 -c "$connections" -z "${duration}s" \
        -q "$rate" --latency-correction --output-format json "$@" >"$work/oha.json" 2>"$work/oha.err" || {
        cat "$work/oha.err" >&2
        exit 1
    }
    awk '
        /^  "[A-Za-z]+": \{/ { section = $1; gsub(/[":]/, "", section) }
        section == "summary" && /"requestsPerSec"/ { rps = $2 + 0 }
        section == "latencyPercentiles" && /"p50"/ { p50 = $2 * 1e6 }
        section == "latencyPercentiles" && /"p99"/ { p99 = $2 * 1e6 }
        section == "latencyPercentiles" && /"p99.9"/ { p999 = $2 * 1e6 }
        section == "statusCodeDistribution" && /"[0-9]+"/ {
            code = $1; gsub(/[":]/, "", code); requests += $2
            if (code !~ /^2/) non2xx += $2
        }
        # Requests still open when the run ends are aborted by design; anything else is an error.
        section == "errorDistribution" && /":/ && !/aborted due to deadline/ { n = $NF; errors += n }
        END { printf "%d %.0f %.0f %d %d %.0f %.0f\n", requests, rps, p99, non2xx, errors, p50, p999 }
    ' "$work/oha.json"
}

for name in $servers; do
    command_of "$name" >/dev/null || exit 1
done

results=$work/results.tsv
: >"$results"
echo "== $rounds rounds of ${secs}s per server and workload, $connections connections; wrk on CPU $load_cpu, servers and Redis on CPU $server_cpu" >&2
for round in $(seq "$rounds"); do
    for name in $servers; do
        start_server "$name"
        base=http://127.0.0.1:$port
        for workload in $workloads; do
            case $workload in
            read)
                if [[ $name == hyper ]]; then
                    # No sessions: a cookie of a signed session's size, ignored.
                    cookie="session=$(printf 'x%.0s' $(seq 100))"
                else
                    cookie=$(login_cookie "$base") || exit 1
                fi
                args=(-H "Cookie: $cookie" "$base/")
                ;;
            write)
                status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/login?username=bench" || true)
                [[ $status == 2* ]] || { echo "bench.sh: $name: POST /login answered $status" >&2; server_state >&2; exit 1; }
                args=(-s "$work/post.lua" "$base/login?username=bench")
                ;;
            *) echo "bench.sh: unknown workload $workload" >&2; exit 1 ;;
            esac
            ((warmup > 0)) && run_wrk "$warmup" "${args[@]}" >/dev/null
            if [[ $mode == instructions ]]; then
                # Counted from zero after the warm-up, dumped after the measured run.
                callgrind_control -z "$server_pid" >/dev/null 2>&1 || { echo "bench.sh: $name: callgrind_control -z failed" >&2; exit 1; }
                read -r requests rps p99 non2xx errors < <(run_wrk "$secs" "${args[@]}")
                callgrind_control -d "$server_pid" >/dev/null 2>&1 || { echo "bench.sh: $name: callgrind_control -d failed" >&2; exit 1; }
                dump=$(ls -t "$work/$name.cg".* 2>/dev/null | head -n 1)
                ir=$(awk '/^totals:/ { print $2 }' "$dump")
                rm -f "$work/$name.cg".*
                [[ -n $ir && $requests -gt 0 ]] || { echo "bench.sh: $name: no instruction count" >&2; exit 1; }
                printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$workload" "$requests" "$ir" >>"$results"
                printf '   %-16s %-5s %8s requests  %8d instructions/request\n' \
                    "$name" "$workload" "$requests" "$((ir / requests))" >&2
                continue
            fi
            before=$(cpu_ticks "$server_pid")
            redis_before=$(cpu_ticks "$redis_pid")
            read -r load_busy load_total < <(cpu_busy_total "$load_cpu")
            read -r steal_before steal_cores < <(steal_ticks)
            extra=
            if [[ $mode == rate ]]; then
                oha_args=(-H "Cookie: ${cookie:-}" "$base/")
                [[ $workload == write ]] && oha_args=(-m POST "$base/login?username=bench")
                read -r requests rps p99 non2xx errors p50 p999 < <(run_oha "$secs" "${oha_args[@]}")
                extra=$'\t'"$p50"$'\t'"$p999"
            else
                read -r requests rps p99 non2xx errors < <(run_wrk "$secs" "${args[@]}")
            fi
            [[ -n $requests ]] || { echo "bench.sh: $name: the load generator failed" >&2; exit 1; }
            after=$(cpu_ticks "$server_pid")
            redis_after=$(cpu_ticks "$redis_pid")
            read -r load_busy_after load_total_after < <(cpu_busy_total "$load_cpu")
            read -r steal_after _ < <(steal_ticks)
            # How busy the load generator's core was: near 100 %, it queues itself, and the
            # latencies (the p99 above all) include its delay.
            load_pct=$(((load_busy_after - load_busy) * 100 / (load_total_after - load_total > 0 ? load_total_after - load_total : 1)))
            # Steal: the share of the two cores' time that the hypervisor ran something
            # else in our place. Each tick of it stalls whatever was running, and a stall of a
            # millisecond or more lands in the p99 of whichever server it hits.
            steal_pct=$(awk -v s="$((steal_after - steal_before))" -v t="$((load_total_after - load_total))" -v n="$steal_cores" \
                'BEGIN { printf "%.1f", (t > 0 && n > 0) ? s * 100 / (t * n) : 0 }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$workload" \
                "$requests" "$rps" "$p99" "$((after - before))" "$((redis_after - redis_before))" \
                "$non2xx" "$errors" "$load_pct" "$steal_pct$extra" >>"$results"
            printf '   round %s %-16s %-5s %8s req/s  p99 %6s us  %s non-2xx, %s socket errors, load core %s%%, steal %s%%\n' \
                "$round" "$name" "$workload" "$rps" "$p99" "$non2xx" "$errors" "$load_pct" "$steal_pct" >&2
        done
        stop_server
        redis-cli -p "$redis_port" flushall >/dev/null
    done
done

if [[ $mode == instructions ]]; then
    mkdir -p "$(dirname "$out")"
    {
        echo "# sessions benchmark run: instructions per request"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- machine: $(nproc --all) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r), $(valgrind --version)"
        echo "- command: BENCH_MODE=instructions BENCH_SECS=$secs BENCH_CONNECTIONS=$connections scripts/bench.sh"
        echo "- each server under callgrind; wrk -t1 -c$connections -d${secs}s after a ${warmup}s warm-up; the server process's instructions (user space) over the measured run ÷ its requests"
        echo
        awk -F'\t' -v order="$servers" -v wls="$workloads" '
        function class(s) { return (s ~ /redis/) ? "redis" : "local" }
        { I[$2, $3] = $5 / $4 }
        END {
            ns = split(order, names, " "); nw = split(wls, work, " ")
            for (w = 1; w <= nw; w++) for (i = 1; i <= ns; i++) {
                k = names[i] SUBSEP work[w]
                if (!(k in I) || names[i] !~ /^(axum|actix)/) continue
                c = class(names[i]) SUBSEP work[w]
                if (!(c in best) || I[k] < I[best[c]]) best[c] = k
            }
            print "| server | workload | instructions/request | ÷ hyper | ÷ leanest peer |"
            print "|---|---|---:|---:|---:|"
            for (w = 1; w <= nw; w++) for (i = 1; i <= ns; i++) {
                k = names[i] SUBSEP work[w]
                if (!(k in I)) continue
                h = "hyper" SUBSEP work[w]; b = best[class(names[i]) SUBSEP work[w]]
                printf "| %s | %s | %d | %s | %s |\n", names[i], toupper(work[w]), I[k],
                    (h in I) ? sprintf("%.2f", I[k] / I[h]) : "-",
                    (b != "") ? sprintf("%.2f (%s)", I[k] / I[b], substr(b, 1, index(b, SUBSEP) - 1)) : "-"
            }
        }' "$results"
    } >"$out"
    cat "$out"
    echo "== written to $out" >&2
    exit 0
fi

redis_get=0 redis_set=0
if [[ $mode == wall ]]; then
    echo "== redis-benchmark -c $connections -t get,set (the Redis ceiling)" >&2
    redis_bench=$(taskset -c "$load_cpu" redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$connections" \
        -n 300000 -t get,set -q 2>/dev/null | tr '\r' '\n' | awk -F'[: ]+' '/requests per second/ { printf "%s %.0f\n", $1, $2 }')
    redis_get=$(awk '$1 == "GET" { print $2 }' <<<"$redis_bench")
    redis_set=$(awk '$1 == "SET" { print $2 }' <<<"$redis_bench")
fi

mkdir -p "$(dirname "$out")"
awk -F'\t' -v tps="$ticks_per_sec" -v rget="$redis_get" -v rset="$redis_set" \
    -v order="$servers" -v wls="$workloads" -v secs="$secs" -v conns="$connections" -v mode="$mode" -v rate="$rate" '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function class(s) { return (s ~ /redis/) ? "redis" : "local" }
# The ratio of a to b round by round (servers take turns, so both ran minutes apart at
# most): "min / median / max", which shows how much drift the ratio of medians carries.
function spread(A, a, b, w,    r, list, n, x, lo, hi) {
    list = ""; n = 0
    for (r in rounds_seen) {
        if (!(((a, w, r) in A) && ((b, w, r) in A)) || A[b, w, r] <= 0) continue
        x = A[a, w, r] / A[b, w, r]; list = list " " x; n++
        if (n == 1 || x < lo) lo = x
        if (n == 1 || x > hi) hi = x
    }
    return n ? sprintf("%.2f / %.2f / %.2f", lo, median(list), hi) : "-"
}
function nm(k) { return substr(k, 1, index(k, SUBSEP) - 1) }
function peer(s) { return s ~ /^(axum|actix)/ }
{
    k = $2 SUBSEP $3
    rps[k] = rps[k] " " $5; p99[k] = p99[k] " " $6
    RR[$2, $3, $1] = $5; CR[$2, $3, $1] = $4 ? $7 / $4 : 0; rounds_seen[$1] = 1
    req[k] += $4; cpu[k] += $7; rcpu[k] += $8; bad[k] += $9 + $10; runs[k]++
    load[k] = load[k] " " $11; steal[k] = steal[k] " " $12; PR[$2, $3, $1] = $6
    p50[k] = p50[k] " " $13; p999[k] = p999[k] " " $14
}
# BENCH_MODE=rate: every server at the same offered load, so the latencies compare.
function rate_table(    w, i, k, b, W) {
    print "| server | workload | offered req/s | answered req/s (median) | p50 | p99 | p99.9 | server CPU/req | p99 ÷ best peer | core used | load core busy | steal | errors |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (w = 1; w <= nw; w++) for (i = 1; i <= ns; i++) {
        k = names[i] SUBSEP work[w]
        if (!(k in req)) continue
        b = best[class(names[i]) SUBSEP work[w]]
        printf "| %s | %s | %d | %d | %.2f ms | %.2f ms | %.2f ms | %.1f µs | %s | %.0f%% | %.0f%% | %.1f%% | %d |\n", names[i], toupper(work[w]), rate, R[k],
            median(p50[k]) / 1000, P[k] / 1000, median(p999[k]) / 1000, C[k],
            (b != "" && P[b] > 0) ? sprintf("%.2f (%s)", P[k] / P[b], nm(b)) : "-",
            (cpu[k] + rcpu[k]) / tps / (runs[k] * secs) * 100, median(load[k]), median(steal[k]), bad[k]
    }
    print "\nLatencies are medians of rounds, each counted from when its request was due (open"
    print "loop, oha --latency-correction), so a stall is charged to every request it held up."
    print "An \"answered\" rate below the offered one means the server could not keep up and its"
    print "latencies grow with the run. \"best peer\": the peer with the lowest p99 in its class."
    print "\nTargets (issue 7), within this run:\n"
    print "| target | measured | per round | met |"
    print "|---|---|---|---|"
    for (w = 1; w <= nw; w++) for (i = 1; i <= ns; i++) {
        if (names[i] !~ /^sessions-/) continue
        k = names[i] SUBSEP work[w]; b = best[class(names[i]) SUBSEP work[w]]; W = toupper(work[w])
        if ((k in P) && b != "") printf "| %s %s: p99 at %d req/s ≤ best peer (%s) | %.2f× | %s | %s |\n", names[i], W, rate, nm(b), P[k] / P[b], spread(PR, names[i], nm(b), work[w]), (P[k] <= P[b]) ? "yes" : "**no**"
    }
}
END {
    ns = split(order, names, " "); nw = split(wls, work, " ")
    for (w = 1; w <= nw; w++) for (i = 1; i <= ns; i++) {
        k = names[i] SUBSEP work[w]
        if (!(k in req)) continue
        R[k] = median(rps[k]); P[k] = median(p99[k])
        C[k] = req[k] ? cpu[k] / tps / req[k] * 1e6 : 0
        RC[k] = req[k] ? rcpu[k] / tps / req[k] * 1e6 : 0
        if (peer(names[i])) {
            c = class(names[i]) SUBSEP work[w]
            # At saturation the best peer is the fastest; at a fixed rate, the one with the
            # lowest p99.
            if (!(c in best) || (mode == "rate" ? P[k] < P[best[c]] : R[k] > R[best[c]])) best[c] = k
        }
    }
    if (mode == "rate") { rate_table(); exit }
    print "| server | workload | req/s (median) | p99 | server CPU/req | Redis CPU/req | req/s ÷ hyper | CPU/req ÷ hyper | req/s ÷ best peer | p99 ÷ best peer | core used | wrk core busy | steal | errors |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (w = 1; w <= nw; w++) for (i = 1; i <= ns; i++) {
        k = names[i] SUBSEP work[w]
        if (!(k in req)) continue
        h = "hyper" SUBSEP work[w]; b = best[class(names[i]) SUBSEP work[w]]
        printf "| %s | %s | %d | %.2f ms | %.1f µs | %s | %s | %s | %s | %s | %.0f%% | %.0f%% | %.1f%% | %d |\n", names[i], toupper(work[w]), R[k], P[k] / 1000, C[k],
            (class(names[i]) == "redis") ? sprintf("%.1f µs", RC[k]) : "-",
            (h in R) ? sprintf("%.2f", R[k] / R[h]) : "-",
            (h in C && C[h] > 0) ? sprintf("%.2f", C[k] / C[h]) : "-",
            (b != "") ? sprintf("%.2f (%s)", R[k] / R[b], substr(b, 1, index(b, SUBSEP) - 1)) : "-",
            (b != "" && P[b] > 0) ? sprintf("%.2f", P[k] / P[b]) : "-",
            (cpu[k] + rcpu[k]) / tps / (runs[k] * secs) * 100, median(load[k]), median(steal[k]), bad[k]
    }
    printf "\nredis-benchmark -c %d: GET %d req/s, SET %d req/s (the Redis ceiling)\n", conns, rget, rset
    print "\n\"core used\": the server'"'"'s and Redis'"'"'s CPU time over the measured time. A server that keeps"
    print "wrk busy uses nearly all of its core; much less means something else ran on that core"
    print "and its req/s is not comparable (CPU/req still is). \"wrk core busy\": the load"
    print "generator'"'"'s core over the measured run (median of rounds); near 100 % wrk queues too,"
    print "and a faster server'"'"'s latencies, the p99 above all, include more of wrk'"'"'s own delay."
    print "\"steal\": the share of both cores'"'"' time that the hypervisor gave to someone else (median"
    print "of rounds, from /proc/stat); on a virtual machine each stolen slice stalls both wrk and"
    print "the server, and a few stalls of a millisecond or more decide a p99."
    print "\nTargets (issue 7), within this run:\n"
    print "The verdict is on the medians; \"per round\" is the same ratio taken round by round"
    print "(min / median / max), to show how much the machine drifted.\n"
    print "| target | measured | per round | met |"
    print "|---|---|---|---|"
    for (w = 1; w <= nw; w++) {
        W = toupper(work[w]); s = "sessions-cookie" SUBSEP work[w]; h = "hyper" SUBSEP work[w]; b = best["local" SUBSEP work[w]]
        if ((s in C) && (h in C)) printf "| cookie %s: server CPU/req within 10%% of bare hyper | %.2f× | %s | %s |\n", W, C[s] / C[h], spread(CR, "sessions-cookie", "hyper", work[w]), (C[s] <= 1.10 * C[h]) ? "yes" : "**no**"
        if ((s in R) && b != "") printf "| cookie %s: req/s ≥ best peer (%s) | %.2f× | %s | %s |\n", W, nm(b), R[s] / R[b], spread(RR, "sessions-cookie", nm(b), work[w]), (R[s] >= R[b]) ? "yes" : "**no**"
        s = "sessions-memory" SUBSEP work[w]; a = "axum-memory" SUBSEP work[w]
        if ((s in R) && (a in R)) printf "| memory %s: req/s ≥ 1.2× tower-sessions memory | %.2f× | %s | %s |\n", W, R[s] / R[a], spread(RR, "sessions-memory", "axum-memory", work[w]), (R[s] >= 1.2 * R[a]) ? "yes" : "**no**"
        s = "sessions-redis" SUBSEP work[w]; a = "actix-redis" SUBSEP work[w]; f = (work[w] == "read") ? 1.3 : 1.2
        if ((s in R) && (a in R)) printf "| Redis %s: req/s ≥ %.1f× actix-session Redis | %.2f× | %s | %s |\n", W, f, R[s] / R[a], spread(RR, "sessions-redis", "actix-redis", work[w]), (R[s] >= f * R[a]) ? "yes" : "**no**"
        for (i = 1; i <= ns; i++) {
            if (names[i] !~ /^sessions-/) continue
            s = names[i] SUBSEP work[w]; b = best[class(names[i]) SUBSEP work[w]]
            if ((s in P) && b != "") printf "| %s %s: p99 ≤ best peer (%s) | %.2f× | %s | %s |\n", names[i], W, nm(b), P[s] / P[b], spread(PR, names[i], nm(b), work[w]), (P[s] <= P[b]) ? "yes" : "**no**"
        }
    }
    # With baseline-* servers (BENCH_BASELINE_APP): this build against that one, round by
    # round, so that a change is judged against the drift of the same rounds.
    header = 0
    for (w = 1; w <= nw; w++) for (i = 1; i <= ns; i++) {
        if (names[i] !~ /^baseline-/) continue
        b = names[i]; s = "sessions-" substr(b, length("baseline-") + 1)
        if (!((s SUBSEP work[w]) in R) || !((b SUBSEP work[w]) in R)) continue
        if (!header++) {
            print "\nThis build against BENCH_BASELINE_APP, round by round (min / median / max):\n"
            print "| workload | req/s ÷ baseline | server CPU/req ÷ baseline |"
            print "|---|---|---|"
        }
        printf "| %s %s | %s | %s |\n", substr(b, length("baseline-") + 1), toupper(work[w]), spread(RR, s, b, work[w]), spread(CR, s, b, work[w])
    }
}' "$results" >"$out.table"
{
    echo "# sessions benchmark run"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc --all) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
    if [[ $mode == rate ]]; then
        echo "- command: BENCH_MODE=rate BENCH_RATE=$rate BENCH_SECS=$secs BENCH_ROUNDS=$rounds BENCH_CONNECTIONS=$connections scripts/bench.sh"
        echo "- oha -c$connections -q$rate --latency-correction -z${secs}s ($(oha --version 2>/dev/null)) on CPU $load_cpu, after ${warmup}s of wrk; servers and Redis on CPU $server_cpu; median of $rounds rounds"
    else
        echo "- command: BENCH_SECS=$secs BENCH_ROUNDS=$rounds BENCH_CONNECTIONS=$connections scripts/bench.sh"
        echo "- wrk -t1 -c$connections -d${secs}s on CPU $load_cpu; servers and Redis on CPU $server_cpu; median of $rounds rounds"
    fi
    echo
    cat "$out.table"
    echo
    legend="round, server, workload, requests, req/s, p99 µs, server ticks, Redis ticks, non-2xx, socket errors, load core busy %, steal %"
    [[ $mode == rate ]] && legend="$legend, p50 µs, p99.9 µs"
    echo "Raw rounds ($legend):"
    echo
    echo '```'
    cat "$results"
    echo '```'
} >"$out"
rm -f "$out.table"
cat "$out"
echo "== written to $out" >&2
