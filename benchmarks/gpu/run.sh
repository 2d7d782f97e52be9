#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one go, on a lent GPU machine (the device tool):
#   bash benchmarks/gpu/fetch_wheels.sh                  # here, once
#   run(command="bash benchmarks/gpu/run.sh", carry=[".whl"], timeout_s=600)
# Steps, each under its own time limit so one slow part cannot eat the others' (the device
# budget is about 15 minutes in all, start-up included):
#   1. the trainer's steps/s on Craftax-Classic at 1024 envs, MoE K = 1, 4, 8 beside the reference
#      PPO (target: K = 1 >= 0.8 x the published ~330k steps/s single-GPU PPO);
#   2. the packing estimate against the measured peak (--measure), and how many trainings fit;
#   3. the Craftax-Classic tree through the real flow, default profile, packing on
#      (--per-gpu auto): wall time, frames and trained-vs-random success per skill as far as it gets.
# Everything lands in $OUT (the device tool brings it back); copy the figures into docs/benchmarks.md.
set -uo pipefail
OUT="${OUT:-/tmp/flowrl-gpu}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=200 NO_COLOR=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed" >&2; exit 1; }
  export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PREFECT_HOME=/tmp/prefect-home FLOWRL_JAX_CACHE=/tmp/jax-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt" || exit 1

timeout 150 python3 -m benchmarks.trainer --gpu --part ppo --env Craftax-Classic-Symbolic-v1 \
  --num-envs 1024 --num-steps 64 --width 512 --ks 1,4,8 --rounds 4 2>&1 | tee "$OUT/trainer_craftax.txt"
timeout 120 python3 -m benchmarks.packing --gpu --measure --k 1 4 8 2>&1 | tee "$OUT/packing.txt"
# What is left of the 10-minute call goes to the tree; the table is printed for what trained.
timeout 240 python3 -m benchmarks.craftax_tree --profile default --gpus 0 --per-gpu auto --store /tmp/tree \
  --episodes 256 --json "$OUT/craftax_tree.json" 2>&1 | tee "$OUT/craftax_tree.txt"
timeout 60 python3 -m benchmarks.craftax_tree --skip-train --store /tmp/tree --episodes 256 \
  --json "$OUT/craftax_tree_eval.json" 2>&1 | tee "$OUT/craftax_tree_eval.txt"
exit 0
