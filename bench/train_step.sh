#!/usr/bin/env bash
# MLP training step (784-1024-1024-10, batch 64, SGD, float32): Sluice (bench/train_step_bench.cc)
# against PyTorch 1.13 eager from Debian (bench/torch_mlp_step.py), alternating the two for each
# repetition and thread count so that load from elsewhere hits both alike. Prints the median
# steps per second of each and the ratio Sluice / PyTorch (target >= 1.1).
#
#   bench/train_step.sh                      # 1 and 2 threads, 5 repetitions of 2 s each
#   BENCH_REPETITIONS=9 BENCH_THREADS="1" bench/train_step.sh
#
# Both sides get the same thread count: Sluice's device inter-op and intra-op pools; PyTorch's
# torch.set_num_threads plus OPENBLAS_NUM_THREADS / OMP_NUM_THREADS for the OpenBLAS its GEMMs
# run in (Debian's torch is built with the system BLAS, which resolves to OpenBLAS here), and
# OMP_WAIT_POLICY=PASSIVE: with OpenMP's default spinning, 2-thread PyTorch steps collapse to
# about 7 per second on a shared 2-core machine (BENCH_TORCH_OMP_WAIT_POLICY overrides it).
# python3-torch is large and only this benchmark needs it, so setup.sh does not install it:
# without it the script reports Sluice alone and says the peer was skipped
# (BENCH_INSTALL_TORCH=1 lets it run `apt-get install -y python3-torch` first).
set -euo pipefail
cd "$(dirname "$0")/.."
repetitions="${BENCH_REPETITIONS:-5}"
min_time="${BENCH_MIN_TIME:-2}"
threads_list="${BENCH_THREADS:-1 2}"
python=/usr/bin/python3

have_torch=1
if ! "$python" -c "import torch" 2>/dev/null; then
  if [ "${BENCH_INSTALL_TORCH:-0}" = 1 ]; then
    apt-get install -y python3-torch >&2 || true
  fi
  if ! "$python" -c "import torch" 2>/dev/null; then
    have_torch=0
    echo "skipped: python3-torch not installed (apt-get install -y python3-torch);" \
      "measuring Sluice alone" >&2
  fi
fi

cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
bazel build --disk_cache="$cache" //bench:train_step_bench >&2
bin="$(bazel info bazel-bin 2>/dev/null)/bench/train_step_bench"
out="$(mktemp -d -t sluice-train-step.XXXXXX)"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for rep in $(seq 1 "$repetitions"); do
  for t in $threads_list; do
    echo "== repetition $rep, $t thread(s)" >&2
    "$bin" --benchmark_filter="BM_TrainStep/$t/" --benchmark_min_time="$min_time" \
      --benchmark_format=json >"$out/sluice_${t}_${rep}.json"
    if [ "$have_torch" = 1 ]; then
      OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" \
        OMP_WAIT_POLICY="${BENCH_TORCH_OMP_WAIT_POLICY:-PASSIVE}" \
        "$python" bench/torch_mlp_step.py --threads "$t" --min_time "$min_time" \
        >"$out/torch_${t}_${rep}.json"
    fi
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$python" - "$out" "$threads_list" <<'PYTHON'
"""Medians and ratios of the runs in the output directory."""
import glob
import json
import os
import statistics
import sys

out, threads = sys.argv[1], sys.argv[2].split()
print("| threads | Sluice steps/s | PyTorch steps/s | Sluice / PyTorch | target |")
print("|---|---|---|---|---|")
for t in threads:
    sluice = []
    for path in sorted(glob.glob(os.path.join(out, f"sluice_{t}_*.json"))):
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                if b.get("error_occurred"):
                    sys.exit(f"Sluice benchmark failed: {b.get('error_message')}")
                sluice.append(b["steps_per_s"])
    torch = []
    for path in sorted(glob.glob(os.path.join(out, f"torch_{t}_*.json"))):
        with open(path) as f:
            torch += [json.loads(line)["steps_per_s"] for line in f if line.startswith("{")]
    s = statistics.median(sluice)
    if torch:
        p = statistics.median(torch)
        ratio = s / p
        verdict = "met" if ratio >= 1.1 else "NOT met"
        print(f"| {t} | {s:.1f} | {p:.1f} | {ratio:.2f}x | >= 1.1x {verdict} |")
    else:
        print(f"| {t} | {s:.1f} | skipped | - | >= 1.1x |")
print(f"\nraw results: {out}")
PYTHON
