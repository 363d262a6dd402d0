#!/usr/bin/env bash
# Run tests over and over with every core kept busy by a CPU-bound process, as on a loaded CI machine.
#
#   scripts/test_under_load.sh RUNS [pytest arguments]   the selection RUNS times in a row, each a fresh pytest
#   e.g. scripts/test_under_load.sh 5                     the whole suite, 5 times
#        scripts/test_under_load.sh 1 --count 50 tests/inference/test_serve.py -k stop_signal
#                                                          the drain test 50 times in one run (pytest-repeat)
#
# Prints each run's result line and the load average; exits non-zero at the first failing run (its log is
# build/under_load/run-N.log). Uses the project's .venv (`make setup` first).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:?usage: scripts/test_under_load.sh RUNS [pytest arguments]}
shift
mkdir -p build/under_load
busy=()
for _ in $(seq "$(nproc)"); do
  (while :; do :; done) &
  busy+=($!)
done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
echo "$(nproc) busy loops started (pids ${busy[*]})"
for n in $(seq "$runs"); do
  log=build/under_load/run-$n.log
  started=$SECONDS
  if .venv/bin/python -m pytest -p no:cacheprovider "$@" >"$log" 2>&1; then status=passed; else status=FAILED; fi
  printf 'run %d/%d %s in %d s, load average %s: %s\n' "$n" "$runs" "$status" $((SECONDS - started)) \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(tail -n 1 "$log")"
  [ "$status" = passed ] || exit 1
done
