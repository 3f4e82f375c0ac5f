#!/usr/bin/env bash
# Fuzzes the code that parses untrusted input (tests/fuzz, issue 13) for a bounded time: builds
# the libFuzzer targets with clang, ASan and UBSan (--config=fuzz), runs each for SECONDS
# (default 60) from its seed corpus, and lists every input that crashed, leaked, ran out of
# memory or hung, with its path and the first lines of its report.
#
#   tools/fuzz.sh [--merge] [SECONDS] [TARGET...]   # targets: chunk_codec tensor_proto graph_def
#                                                   # worker master (default: all); 0 seconds:
#                                                   # build them and say where they are
#
# New inputs go to a work corpus under ${TMPDIR:-/tmp} (SLUICE_FUZZ_WORK names another), so the
# repository's corpus changes only with --merge, which adds the inputs that gain coverage to
# tests/fuzz/corpus/<target>/. Reproducers stay in the work directory: move what you keep to
# tests/fuzz/crashers/<target>/ (the replay tests do not run those until they are fixed).
# Reproduce one with the libFuzzer binary the script names, or with the gcc build:
#   bazel build //tests/fuzz:worker_fuzz && bazel-bin/tests/fuzz/worker_fuzz <reproducer>
# Exits 1 when any target found something, 0 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
all_targets=(chunk_codec tensor_proto graph_def worker master)
merge=0
seconds=60
targets=()
for arg in "$@"; do
  case "$arg" in
    --merge) merge=1 ;;
    ''|*[!0-9]*) targets+=("$arg") ;;
    *) seconds="$arg" ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -d "tests/fuzz/corpus/$t" ] || { echo "fuzz: unknown target '$t' (${all_targets[*]})" >&2; exit 2; }
done

tools/setup.sh
cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
# The clang output base tools/test.sh uses (the default one plus "-clang"), found without
# starting a server in the default base: Bazel names that <output_user_root>/<md5 of the
# workspace path>.
default_base="${HOME}/.cache/bazel/_bazel_$(id -un)/$(printf %s "$(pwd -P)" | md5sum | cut -d' ' -f1)"
base="${SLUICE_CLANG_OUTPUT_BASE:-${default_base}-clang}"
bazel_fuzz() { bazel --output_base="$base" "$1" --disk_cache="$cache" --config=fuzz "${@:2}"; }
trap 'bazel --output_base="$base" shutdown' EXIT

labels=()
for t in "${targets[@]}"; do labels+=("//tests/fuzz:${t}_fuzz"); done
echo "fuzz: bazel build --config=fuzz ${labels[*]} (output base $base)"
start=$(date +%s)
bazel_fuzz build "${labels[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s"
bin="$(bazel_fuzz info bazel-bin 2>/dev/null)/tests/fuzz"
echo "fuzz: binaries in $bin"
[ "$seconds" -gt 0 ] || exit 0  # 0 seconds: build only (libFuzzer would take 0 as no limit).

work="${SLUICE_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")}"
# A failed allocation is std::bad_alloc, as in production (not an ASan abort); libFuzzer's
# -malloc_limit_mb (= -rss_limit_mb) still reports single allocations above 2 GiB.
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:handle_abort=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
flags=(-timeout=30 -rss_limit_mb=2048 -print_final_stats=1)

# Prints the kind of report in `log` and its first frames in this repository's code.
summarize() {
  local log="$1"
  grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|^[a-z_]+_fuzz: |ALARM:' \
    "$log" | cut -c1-200 || true
  grep -E '^ +#[0-9]+ 0x[0-9a-f]+ in sluice::' "$log" | grep -v 'tests/fuzz/' | head -4 |
    sed -E -e 's/^ +#[0-9]+ 0x[0-9a-f]+ in /  at /' -e 's|/proc/self/cwd/||' | cut -c1-200 || true
}

root="$PWD"
found=0
for t in "${targets[@]}"; do
  dir="$work/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  echo "fuzz: $t for ${seconds} s (log $dir/fuzz.log)"
  # Fork mode: a crash, leak, OOM or timeout is saved and fuzzing goes on in a new process.
  # New inputs go to the first corpus directory (the work one); the seeds are only read.
  status=0
  (cd "$dir" && "$bin/${t}_fuzz" "${flags[@]}" -fork=1 -ignore_crashes=1 -ignore_ooms=1 \
    -ignore_timeouts=1 -max_total_time="$seconds" -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" "$root/tests/fuzz/corpus/$t" >"$dir/fuzz.log" 2>&1) || status=$?
  grep -E '^#[0-9]+: cov:' "$dir/fuzz.log" | tail -1 | sed "s/^/  /" || true
  grep -E '^stat::' "$dir/fuzz.log" | tr '\n' ' ' | sed -e 's/^/  /' -e 's/$/\n/' || true
  shopt -s nullglob
  artifacts=("$dir"/artifacts/{crash,leak,oom,timeout,slow-unit}-*)
  shopt -u nullglob
  if [ "$status" -ne 0 ] && [ ${#artifacts[@]} -eq 0 ]; then
    echo "  the fuzzer exited with status $status and saved no input (see the log)"
    found=1
  fi
  # Each reproducer again, alone, for its own report. Reproducers whose reports start alike
  # (same kind, same first frames, numbers aside) are listed once, with how many there are.
  declare -A count=() first=()
  for a in "${artifacts[@]}"; do
    case "$a" in *.log | *.summary) continue ;; esac
    found=1
    (cd "$dir" && timeout 120 "$bin/${t}_fuzz" "${flags[@]}" -runs=1 "$a" >"$a.log" 2>&1) || true
    summarize "$a.log" >"$a.summary"
    key="$(sed -E 's/[0-9]+//g' "$a.summary" | md5sum | cut -d' ' -f1)"
    count[$key]=$((${count[$key]:-0} + 1))
    [ -n "${first[$key]:-}" ] || first[$key]="$a"
  done
  for key in "${!first[@]}"; do
    echo "  ${first[$key]} (1 of ${count[$key]} with this report; it is in .log beside it)"
    sed 's/^/    /' "${first[$key]}.summary"
  done
  unset count first
  if [ "$merge" -eq 1 ]; then
    echo "  merging new coverage into tests/fuzz/corpus/$t"
    "$bin/${t}_fuzz" "${flags[@]}" -merge=1 "tests/fuzz/corpus/$t" "$dir/corpus" \
      >"$dir/merge.log" 2>&1 || echo "  merge failed (see $dir/merge.log)"
  fi
done
echo "fuzz: work directory $work"
exit "$found"
