#!/usr/bin/env bash
# npm run fuzz — libFuzzer on the pre-init hook's environment parsing
# (native/fuzz/fuzz_env.c: gons_order, gons_<type>, gons_target_types, the
# numeric variables and the LD_PRELOAD scrubbing), with AddressSanitizer and
# UndefinedBehaviorSanitizer, for a bounded time.
#
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
#   CC=...            clang to use (default: clang; Debian: apt-get install clang
#                     libclang-rt-14-dev)
#   GONS_FUZZ_KEEP=1  keeps the temporary directory (grown corpus, artifacts)
# Runs on a copy of native/fuzz/corpus in a temporary directory, so the seed
# corpus in the repository is not changed. Prints the number of executions and
# crashes found; exits non-zero if a crash (or leak, timeout, OOM) was found.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_TO_RUN=${1:-60}
if ! [[ "$SECONDS_TO_RUN" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "fuzz: $CC not found; libFuzzer needs clang (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gons-fuzz.XXXXXX")
cleanup() {
  if [ "${GONS_FUZZ_KEEP:-0}" = 1 ]; then
    echo "fuzz: kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FUZZER=$WORK/fuzz_env
CFLAGS=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -Werror)
echo "fuzz: building with $CC ${CFLAGS[*]}"
# The hook's units (binding.gyp's list), the constructor disabled, their syscall/fork/getenv/setenv/unsetenv pointed at
# fuzz_env.c's stubs by native/fuzz/stubs.h.
mapfile -t HOOK_SOURCES < <(node "$ROOT/scripts/hook-sources.mjs" | sed "s|^|$ROOT/|")
if [ "${#HOOK_SOURCES[@]}" -eq 0 ]; then
  echo "fuzz: no hook sources (scripts/hook-sources.mjs)"
  exit 1
fi
if ! "$CC" "${CFLAGS[@]}" -DGONS_PREINIT_CONSTRUCTOR= -include "$ROOT/native/fuzz/stubs.h" -o "$FUZZER" \
    "$ROOT/native/fuzz/fuzz_env.c" "${HOOK_SOURCES[@]}"; then
  echo "fuzz: build failed"
  exit 1
fi

mkdir -p "$WORK/corpus" "$WORK/artifacts"
cp "$ROOT"/native/fuzz/corpus/* "$WORK/corpus/"
seeds=$(find "$WORK/corpus" -type f | wc -l)
echo "fuzz: running for ${SECONDS_TO_RUN}s on a copy of $seeds seed inputs"

LOG=$WORK/fuzz.log
# -timeout: a single input taking over 10 s counts as a crash (a hang).
ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$FUZZER" -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=4096 -dict="$ROOT/native/fuzz/env.dict" \
    -artifact_prefix="$WORK/artifacts/" "$WORK/corpus" >"$LOG" 2>&1
status=$?

execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$LOG" | tail -n 1)
if [ -z "$execs" ]; then
  # No final stats (e.g. after a crash): the last status line's "#N".
  execs=$(grep -oE '^#[0-9]+' "$LOG" | tail -n 1 | tr -d '#')
fi
corpus_after=$(find "$WORK/corpus" -type f | wc -l)
mapfile -t artifacts < <(find "$WORK/artifacts" -type f | sort)
crashes=${#artifacts[@]}
if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
  crashes=1 # libFuzzer failed without writing an artifact
fi

grep -E '^(stat::|INFO: Seed|Done )' "$LOG" | sed 's/^/  /'
echo "fuzz: corpus $seeds -> $corpus_after inputs"
if [ "$crashes" -gt 0 ]; then
  echo "fuzz: libFuzzer exited with status $status; report:"
  grep -nE 'ERROR: |runtime error|check failed|SUMMARY|Test unit written|==[0-9]+==' "$LOG" | head -n 40 | sed 's/^/  /'
  for a in "${artifacts[@]}"; do
    echo "  artifact: $a"
    if [ "${GONS_FUZZ_KEEP:-0}" != 1 ]; then
      mkdir -p "$ROOT/native/fuzz/artifacts" 2>/dev/null && cp "$a" "$ROOT/native/fuzz/artifacts/" &&
        echo "    copied to native/fuzz/artifacts/$(basename "$a")"
    fi
  done
fi
echo "executions: ${execs:-unknown}, crashes found: $crashes"
[ "$crashes" -eq 0 ] && [ "$status" -eq 0 ]
