#!/usr/bin/env bash
# The PPO and DQN CartPole benchmarks at 2048 seeds on a lent GPU machine (issue 3),
# in two steps, so that the machine's few minutes go to measuring, not to setting up.
#
#   here:   PUREJAXRL_DIR=/path/to/purejaxrl bash experiments/benchmarks/gpu_seeds.sh prepare
#   there:  bash experiments/benchmarks/gpu_seeds.sh run     (device tool: carry [".gpu"])
#
# prepare (needs PyPI): fills .gpu/ (git-ignored) with what the GPU image lacks — wheels
# for Python 3.12 of gymnax, tyro, rliable and their needs, distrax and flashbax for
# PureJaxRL, at the versions constraints.txt pins — and a copy of PureJaxRL's
# purejaxrl/ folder. The image already has jax (with CUDA), flax, optax, chex,
# orbax, pandas, xarray, seaborn, matplotlib (device tool's KINDS.md).
#
# run: installs the wheels into /tmp/site, then runs ppo_cartpole.py and
# dqn_cartpole.py with --seeds $SEEDS (default 2048) --steps $STEPS (default 5e5),
# one timed call per run (--repeats 1: the device minutes are few; --unpaired:
# one process at a time holds the GPU; --no-one-device: ours runs on the one GPU), each under
# `timeout $LIMIT` (default 270 s), printing their JSON lines and writing them to
# $OUT (or .gpu/out). Exercised on this project's CPU host with Python 3.12,
# jax 0.11.2 (the image's) and only these wheels added, at small --seeds/--steps.
set -euo pipefail
cd "$(dirname "$0")/../.."
GPU_DIR=.gpu

pinned() {  # name==version as constraints.txt pins it
    local line
    line=$(grep -i -m1 "^$1==" constraints.txt) || { echo "no pin for $1" >&2; exit 1; }
    echo "$line"
}

prepare() {
    : "${PUREJAXRL_DIR:?set PUREJAXRL_DIR to a PureJaxRL checkout}"
    test -f "$PUREJAXRL_DIR/purejaxrl/ppo.py" || { echo "no purejaxrl/ppo.py in $PUREJAXRL_DIR" >&2; exit 1; }
    rm -rf "$GPU_DIR" && mkdir -p "$GPU_DIR/wheels" "$GPU_DIR/purejaxrl"
    local binary=() source_only=()
    for name in gymnax gymnasium Farama-Notifications tyro docstring_parser typeguard \
        arch distrax tfp-nightly dm-tree decorator gast flashbax; do
        binary+=("$(pinned "$name")")
    done
    source_only+=("$(pinned rliable)")  # no wheel on PyPI: built here
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$GPU_DIR/wheels" "${binary[@]}"
    python3 -m pip wheel -q --no-deps -w "$GPU_DIR/wheels" "${source_only[@]}"
    cp -r "$PUREJAXRL_DIR/purejaxrl" "$GPU_DIR/purejaxrl/"
    du -sh "$GPU_DIR"
    echo 'now: device run(command="bash experiments/benchmarks/gpu_seeds.sh run", carry=[".gpu"], timeout_s=600)'
}

run() {
    local out="${OUT:-$GPU_DIR/out}" seeds="${SEEDS:-2048}" steps="${STEPS:-500000}"
    local limit="${LIMIT:-270}" python="${PYTHON:-python3}"
    mkdir -p "$out"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$GPU_DIR"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PUREJAXRL_DIR="$PWD/$GPU_DIR/purejaxrl" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$python" -c "import jax; print('jax', jax.__version__, jax.devices())"
    for algo in ppo dqn; do
        timeout "$limit" "$python" "experiments/benchmarks/${algo}_cartpole.py" \
            --seeds "$seeds" --steps "$steps" --repeats 1 --unpaired --no-one-device \
            | tee "$out/${algo}_cartpole_${seeds}.json" \
            || echo "${algo}: exit $? (timeout $limit s?)"
    done
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
