#!/usr/bin/env bash
# Every GPU check and GPU benchmark of the book, in one run on a CUDA machine.
#
#   OUT=/some/folder bash benchmarks/gpu_all.sh
#
# Uses the machine's own python3 (with a CUDA build of torch); hdlcore is taken from this
# checkout through PYTHONPATH, so nothing is installed. Each step is bounded by `timeout`; the
# JSON of each benchmark and one combined log land in $OUT.
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/gpu_log.txt"
: > "$LOG"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, numpy, scipy; print('torch', torch.__version__, '| numpy', numpy.__version__, '| scipy', scipy.__version__, '|', torch.cuda.get_device_name())"
} >> "$LOG" 2>&1
cat "$LOG"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "=== $name (at most ${limit} s)" | tee -a "$LOG"
  timeout "$limit" "$@" >> "$LOG.$name" 2>&1
  local rc=$?
  cat "$LOG.$name" >> "$LOG"
  echo "=== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"
  tail -n 30 "$LOG.$name"
  rm -f "$LOG.$name"
}

CUDA_TESTS=$(grep -l "mark.cuda" tests/test_*.py | tr '\n' ' ')
step pytest-cuda 100 python3 -m pytest -o addopts="" -p no:cacheprovider -q -m cuda \
  --continue-on-collection-errors $CUDA_TESTS
step completion 180 python3 benchmarks/gpu_completion.py --out "$OUT" --budget 150
step subnetworks 120 python3 benchmarks/gpu_subnetworks.py --out "$OUT"
step homogeneity 40 python3 benchmarks/gpu_homogeneity.py --out "$OUT" --max-seconds 30
step dropout 60 python3 benchmarks/gpu_dropout.py --out "$OUT" --budget 40
echo "=== done"
