#!/usr/bin/env bash
# Runs every fuzzer of a fuzz build (-DRV_FUZZ=ON, CC=clang) for a bounded
# time over its seed corpus. Any crash, leak, sanitizer report or failed
# property stops the run with a non-zero exit and leaves the input that
# caused it in the work directory (printed). New inputs libFuzzer finds go
# to the work directory, never into the committed corpus.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_FUZZER]   (default 20)
set -euo pipefail
build="${1:?usage: run.sh BUILD_DIR [SECONDS]}"
secs="${2:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/rv-fuzz.XXXXXX")"

targets=(request_download request_small url_normalize url_redact header_allowed httphdr config jobstore)
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin is missing (build the rv_fuzzers target)" >&2; exit 1; }
  mkdir -p "$work/$t"
  dict=()
  case "$t" in
    url_*|request_download) dict=(-dict="$here/url.dict") ;;
    httphdr) dict=(-dict="$here/httphdr.dict") ;;
    config) dict=(-dict="$here/config.dict") ;;
  esac
  echo "fuzz: $t for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -print_final_stats=1 -artifact_prefix="$work/$t/" "${dict[@]}" \
       "$work/$t" "$here/corpus/$t" >"$work/$t.log" 2>&1; then
    tail -n 60 "$work/$t.log" >&2
    echo "fuzz: $t FAILED; the input is in $work/$t/ (crash-*, leak-*, timeout-*)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/$t.log" | tail -n 2 || true
done
rm -rf "$work"
echo "fuzz: ${#targets[@]} fuzzers ran ${secs}s each without a finding"
