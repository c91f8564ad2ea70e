#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 60) each, from the seeds in
# fuzz/seeds and the corpus a previous run left in fuzz/corpus. A crash fails the run and
# leaves its input in fuzz/artifacts/<target>/ (replay: cargo fuzz run <target> <file>).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: installing it from crates.io (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi
# libFuzzer's instrumentation takes nightly flags: the nightly toolchain when there is one,
# else the stable one allowed to take them.
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi

targets=$(cargo "${toolchain[@]}" fuzz list)
cargo "${toolchain[@]}" fuzz build
for target in $targets; do
  echo "==> fuzzing $target for ${seconds}s"
  mkdir -p "corpus/$target"
  log="corpus/$target.log"
  status=0
  cargo "${toolchain[@]}" fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" >"$log" 2>&1 || status=$?
  grep -E '^Done [0-9]+ runs' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzzing passed:" $targets
