#!/usr/bin/env bash
# Issue 29's device check, one short run on one GPU machine (about 10 minutes):
#
#   bash benchmarks/threebody_gpu.sh [OUT_DIR]     # from the repository root
#
# 1. `benchmarks/threebody-gpu.toml`: ThreeBody-v0 at B = 16,384 .. 1,048,576 (random mu, K = 1
#    and 8; fixed mu = 1e-2), REBOUND on the host, PPO on ThreeBody (report.md, results.jsonl).
# 2. XLA's while loops as command buffers (CUDA graphs with conditional nodes) beside the default,
#    the same bench back to back: `--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL`.
# Each part has its own time limit, so a slow one leaves the others' figures written. OUT_DIR gets
# seven files (the device tool returns at most eight): the suite's report.md, results.jsonl and
# manifest.json, both benches' JSON, the GPU's name and a summary; the whole run stays in
# /tmp/threebody-gpu.
set -u
out=${1:-${OUT:-results/runs/threebody-gpu-device}}
work=/tmp/threebody-gpu
mkdir -p "$out" "$work"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
scalegym() { python3 -m scalegym.cli "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.txt" 2>&1

timeout 390 bash -c "$(declare -f scalegym); scalegym run benchmarks/threebody-gpu.toml \
  --out '$work/suite' --no-progress" >"$work/suite.log" 2>&1
echo "suite: exit $?" >>"$out/summary.txt"
tail -n 20 "$work/suite.log" >>"$out/summary.txt"
for f in report.md results.jsonl manifest.json; do cp "$work/suite/$f" "$out/" 2>/dev/null; done

schedule="{'tile': 1048576, 'groups': (), 'substeps_per_iteration': 8}"
for variant in default while-command-buffer; do
  flags=""
  [ "$variant" = while-command-buffer ] && flags="--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"
  XLA_FLAGS="$flags" timeout 100 python3 -m scalegym.cli bench ThreeBody-v0 \
    --batch-sizes 16384,131072 --steps 4 --repeats 3 --set lane_schedule="$schedule" \
    --no-progress --json --out "$out/bench-$variant.json" >/dev/null 2>"$work/bench-$variant.log"
  echo "bench $variant: exit $?" >>"$out/summary.txt"
  tail -n 5 "$work/bench-$variant.log" >>"$out/summary.txt"
done
cat "$out/summary.txt"
