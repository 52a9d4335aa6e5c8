#!/usr/bin/env bash
# One time-boxed libFuzzer campaign per target, one after the other, on one core at the
# lowest priority. Works on the stable toolchain (see README.md). Usage:
#   fuzz/campaign.sh [SECONDS_PER_TARGET] [TARGET...]
# Env: FUZZ_TARGET_DIR (build folder, default /work/fuzz-target-asan), FUZZ_OUT (working
# corpora, crashes and logs, default /work/fuzz-runs), SANITIZER (address or none),
# FUZZ_ARGS (more libFuzzer flags; `-fork=1 -ignore_crashes=1` goes on past known crashes,
# still one fuzzing process at a time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(check coco_json image_decode checkpoint pickle)
tdir="${FUZZ_TARGET_DIR:-/work/fuzz-target-asan}"
out="${FUZZ_OUT:-/work/fuzz-runs}"
san="${SANITIZER:-address}"

cd "$here"
for t in "${targets[@]}"; do
  RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" nice -n 19 \
    cargo +stable fuzz build -s "$san" --target-dir "$tdir" "$t" >/dev/null
  bin="$tdir/x86_64-unknown-linux-gnu/release/$t"
  mkdir -p "$out/$t/corpus" "$out/$t/artifacts"
  cp -n "$here/corpus/$t/"* "$out/$t/corpus/"
  # Temporary checkpoint folders and annotation files go to memory, not disk.
  export TMPDIR=/dev/shm
  start=$(date +%s)
  # No -jobs/-workers: libFuzzer fuzzes in this one process, on one core. Stderr holds its
  # statistics and the `warning: skipped` lines of coco_json.
  nice -n 19 "$bin" "$out/$t/corpus" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/$t/artifacts/" ${FUZZ_ARGS:-} \
    >"$out/$t/stdout.log" 2>"$out/$t/fuzz.log" || true
  end=$(date +%s)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t/fuzz.log" | grep -o '[0-9]*$' || echo '?')
  files=$(find "$out/$t/corpus" -type f | wc -l)
  bytes=$(du -sb "$out/$t/corpus" | cut -f1)
  crashes=$(find "$out/$t/artifacts" -type f | wc -l)
  echo "$t: $((end - start)) s, $execs execs, corpus $files files / $bytes bytes, $crashes artifacts"
done
