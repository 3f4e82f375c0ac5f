#!/usr/bin/env bash
# Fails, listing the files, when a tracked C++ file differs from clang-format's output
# (.clang-format: Google style, 100 columns). Fix with: tools/check_format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
listing="$(git ls-files '*.cc' '*.h')"  # Fails the script (set -e) if git cannot list.
mapfile -t files <<<"$listing"
if [ -z "$listing" ]; then
  echo "format: git lists no C++ files here" >&2
  exit 1
fi
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: ${#bad[@]} file(s) differ from clang-format (run tools/check_format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format: ${#files[@]} files clean"
