#!/usr/bin/env bash
# Builds and runs every benchmark, then prints one table of Sluice against the peers measured in
# the same run (oneTBB flow graph, OpenBLAS, raw TCP and a protobuf gRPC stream) with the targets
# from docs/benchmarks.md. (The training step against PyTorch has its own script,
# bench/train_step.sh, the convolution step against PyTorch bench/conv_step.py.) The all-reduce
# against gloo, BSP's throughput, the ps pull/push against torch rpc and the pipeline's
# efficiency print tables of their own first.
#
#   bench/run_all.sh                              # about 2 minutes on 2 cores, plus the build
#   BENCH_REPETITIONS=5 bench/run_all.sh          # steadier medians on a noisy machine
#   bench/run_all.sh --benchmark_filter=gemm      # extra flags go to every benchmark binary
#
# Each case runs BENCH_REPETITIONS times (default 3), its repetitions interleaved at random with
# the other cases of the same binary, so a burst of load on a shared machine hits both sides of a
# comparison alike; the table shows medians. Raw results are kept as JSON in BENCH_OUT (default:
# a fresh temporary directory, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
bazel build --disk_cache="$cache" //bench:all

repetitions="${BENCH_REPETITIONS:-3}"
min_time="${BENCH_MIN_TIME:-0.2}"
out="${BENCH_OUT:-$(mktemp -d -t sluice-bench.XXXXXX)}"
mkdir -p "$out"

for bench in executor_bench session_bench gemm_bench; do
  echo "== $bench" >&2
  # GEMM iterations take up to a quarter of a second: give them more time per repetition.
  case_min_time="$min_time"
  [ "$bench" = gemm_bench ] && case_min_time="$(/usr/bin/python3 -c "print(max(1.0, $min_time))")"
  "bazel-bin/bench/$bench" \
    --benchmark_min_time="$case_min_time" \
    --benchmark_repetitions="$repetitions" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$bench.json" --benchmark_out_format=json \
    "$@" >&2
done
echo "== transfer_bench" >&2
BENCH_REPETITIONS="$repetitions" bazel-bin/bench/transfer_bench --out="$out/transfer_bench.json" >&2
# Steps over an emulated long link against raw TCP over the same link; needs root (network
# namespaces) and the Python module, and says why it skips otherwise.
echo "== long_link_bench" >&2
(eval "$(tools/python_env.sh)" && SLUICE_NETNS_OUT="$out/long_link" /usr/bin/python3 \
  bench/long_link_bench.py --out="$out/long_link_bench.json") >&2 || echo "long_link_bench failed" >&2

# The all-reduce against gloo (skips the peer without python3-torch) and BSP's throughput on 1,
# 2 and 4 workers; each prints its own table.
echo "== allreduce_bench" >&2
(eval "$(tools/python_env.sh)" && /usr/bin/python3 bench/allreduce_bench.py --workers 2 4 \
  --repetitions "$repetitions" > "$out/allreduce_bench.md") >&2 || echo "allreduce_bench failed" >&2
echo "== bsp_throughput" >&2
(eval "$(tools/python_env.sh)" && /usr/bin/python3 bench/bsp_throughput.py --workers 1 2 4 \
  --repetitions "$repetitions" > "$out/bsp_throughput.md") >&2 || echo "bsp_throughput failed" >&2
echo "== ps_bench" >&2
(eval "$(tools/python_env.sh)" && /usr/bin/python3 bench/ps_bench.py \
  --repetitions "$repetitions" > "$out/ps_bench.md") >&2 || echo "ps_bench failed" >&2
echo "== async_ps_throughput" >&2
(eval "$(tools/python_env.sh)" && /usr/bin/python3 bench/async_ps_throughput.py \
  --workers 1 2 4 > "$out/async_ps_throughput.md") >&2 || echo "async_ps_throughput failed" >&2
echo "== pipeline_bench" >&2
(eval "$(tools/python_env.sh)" && /usr/bin/python3 bench/pipeline_bench.py \
  > "$out/pipeline_bench.md") >&2 || echo "pipeline_bench failed" >&2
echo "== step_overhead" >&2
(eval "$(tools/python_env.sh)" && /usr/bin/python3 bench/step_overhead.py \
  > "$out/step_overhead.md") >&2 || echo "step_overhead failed" >&2
echo "== tls_bench" >&2
(eval "$(tools/python_env.sh)" && /usr/bin/python3 bench/tls_bench.py \
  > "$out/tls_bench.md") >&2 || echo "tls_bench failed" >&2
for table in allreduce_bench bsp_throughput ps_bench async_ps_throughput pipeline_bench \
  step_overhead tls_bench; do
  echo "$table (bench/$table.py):"
  grep -v '^sluice_server' "$out/$table.md" || true
  echo
done

/usr/bin/python3 - "$out" "$repetitions" <<'PYTHON'
"""Pairs each Sluice case with its peer and prints the ratio table."""
import json
import os
import sys

out = sys.argv[1]
median = {}  # benchmark name without "/real_time" -> median run
errors = {}  # benchmark name -> error message
context = None
for name in ("executor_bench", "session_bench", "gemm_bench"):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        continue
    with open(path) as f:
        data = json.load(f)
    context = context or data.get("context")
    for b in data["benchmarks"]:
        name = b["run_name"].replace("/real_time", "")
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
        elif b.get("run_type") != "aggregate" or b.get("aggregate_name") == "median":
            median[name] = b

TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
rows = []  # case, sluice, peer, ratio, target, met


def fmt(v, unit):
    return "-" if v is None else "%.3g %s" % (v, unit)


def add(case, sluice, peer, unit, ratio_kind, target):
    """ratio_kind "time": sluice/peer, lower is better; "rate": sluice/peer, higher is better;
    "abs": no peer, target bounds sluice itself."""
    if sluice is None:
        return
    if ratio_kind == "abs":
        ratio, met = None, sluice <= target
        target_text = "<= %g %s" % (target, unit)
    else:
        ratio = None if peer is None else sluice / peer
        if target is None:
            met, target_text = None, "(info)"
        elif ratio is None:
            met, target_text = None, ("<= %gx" if ratio_kind == "time" else ">= %gx") % target
        elif ratio_kind == "time":
            met, target_text = ratio <= target, "<= %gx" % target
        else:
            met, target_text = ratio >= target, ">= %gx" % target
    rows.append((case, fmt(sluice, unit), fmt(peer, unit),
                 "-" if ratio is None else "%.2fx" % ratio, target_text,
                 "-" if met is None else ("yes" if met else "NO")))


def counter(name, key):
    b = median.get(name)
    return None if b is None else b.get(key)


for topology in ("dag_16x1024", "dag_1024x16", "chain_10000"):
    for threads in (1, 2):
        tbb = counter("executor/%s/tbb/threads:%d" % (topology, threads), "ns_per_node")
        for engine, target in (("sluice", 2.0), ("sluice_traced", None),
                               ("sluice_expensive", None)):
            v = counter("executor/%s/%s/threads:%d" % (topology, engine, threads), "ns_per_node")
            case = "executor %s %s %dt (ns/node, peer TBB)" % (topology, engine, threads)
            add(case, v, tbb, "ns", "time", target)

for case in ("identity", "add", "add_same", "add_names"):
    b = median.get("session/%s/sluice" % case)
    if b is not None:
        us = b["real_time"] * TO_NS[b["time_unit"]] / 1e3
        add("session %s (us/run, no peer)" % case, us, None, "us", "abs", 2.0)

for n in (1024, 2048):
    for threads, target in ((1, 0.9), (2, 0.8)):
        key = "n:%d/threads:%d" % (n, threads)
        s = counter("gemm/sluice/" + key, "FLOPS")
        p = counter("gemm/openblas/" + key, "FLOPS")
        add("gemm %d %dt (GFLOP/s, peer OpenBLAS)" % (n, threads), s and s / 1e9,
            p and p / 1e9, "GFLOP/s", "rate", target)

transfer_path = os.path.join(out, "transfer_bench.json")
if os.path.exists(transfer_path):
    with open(transfer_path) as f:
        transfer = json.load(f)
    targets = {64 << 10: None, 1 << 20: 0.8, 64 << 20: 0.7}
    for t in transfer["transfer"]:
        size = t["bytes"]
        label = "%d MiB" % (size >> 20) if size >= 1 << 20 else "%d KiB" % (size >> 10)
        add("transfer %s (GB/s, peer raw TCP)" % label, t["sluice_gbps"], t["tcp_gbps"],
            "GB/s", "rate", targets.get(size))
        if "tcp_keep_gbps" in t:  # The raw TCP program holding every tensor, as Sluice does.
            add("transfer %s (GB/s, peer raw TCP keeping tensors)" % label, t["sluice_gbps"],
                t["tcp_keep_gbps"], "GB/s", "rate", None)
        add("transfer %s (GB/s, peer protobuf gRPC)" % label, t["sluice_gbps"],
            t["pb_grpc_gbps"], "GB/s", "rate", None)
    c = transfer["control_us"]
    add("control p99 under load (us, peer: idle p99)", c["loaded_p99"], c["idle_p99"], "us",
        "time", 2.0)
    t = transfer.get("tcp_ping_pong_us")
    if t:
        add("TCP ping-pong p99 under load (us, peer: idle p99)", t["loaded_p99"],
            t["idle_p99"], "us", "time", None)

long_link_path = os.path.join(out, "long_link_bench.json")
if os.path.exists(long_link_path):
    with open(long_link_path) as f:
        link = json.load(f)
    if link.get("sluice"):
        for stat in ("p50", "p90", "max"):
            add("%g ms link, %d MiB each way, step %s (s, peer raw TCP)" % (
                link["one_way_ms"], link["mib_each_way"], stat), link["sluice"][stat],
                link["raw_tcp"][stat], "s", "time", None)

header = ("case", "sluice", "peer", "ratio", "target", "met?")
widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
print()
if context:
    print("%d CPUs at %.0f MHz, load average before the run %s; %s" % (
        context.get("num_cpus", 0), context.get("mhz_per_cpu", 0),
        ", ".join("%.2f" % x for x in context.get("load_avg", [])), context.get("date", "")))
print("medians of %s repetitions; ratio = sluice / peer" % sys.argv[2])
print(line(header))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
for name, message in sorted(errors.items()):
    print("ERROR %s: %s" % (name, message))
print("\nraw results: %s" % out)
sys.exit(1 if errors else 0)
PYTHON
