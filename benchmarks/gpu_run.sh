#!/usr/bin/env bash
# The suite's GPU results in one prepared call: the default tier of every GPU-capable adapter,
# on CUDA and on the CPU of the same machine, written to a results folder to bring back and
# merge with the CPU run (python -m bn_conformance.reports publish reports/latest OUT -o ...).
#
# 1. Prepare, on a machine that reaches the package registries, from the repository root:
#      benchmarks/gpu_run.sh --prepare
#    This writes .whl/: a wheel of this checkout and the wheels a GPU image with PyTorch, JAX
#    and Flax preinstalled (Python 3.12, manylinux x86-64) lacks: fastjsonschema, dm-haiku,
#    jmp, keras, namex, optree (a few MB). Nothing else is needed there.
# 2. Carry the checkout and .whl/ to the GPU machine and run, from the repository root:
#      benchmarks/gpu_run.sh [OUT]            (OUT defaults to $OUT/gpu, else reports/gpu)
#    It installs .whl/ into a scratch folder (no network, no change to the image's packages),
#    runs `pytest --pyargs bn_conformance --tier default --device cuda --device cpu` on the
#    GPU-capable adapters with one pytest-xdist worker per two cores, stops itself after
#    BN_GPU_BUDGET_S seconds (default 450, inside an 8-minute call: an interrupted run keeps
#    every finished case and says so in its results), and writes OUT/results.jsonl plus
#    OUT/run.log. Exit status: pytest's (1 = failures found, which is a result, not an error).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=${BN_WHEELS:-.whl}
ADAPTERS=(torch.nn torch.nn.native_cuda torch.functional torch.nn.channels_last torch.nn.strided torch.nn.compile
          'torch.func.*' flax.linen.jit flax.nnx.jit haiku.jit equinox.batch.jit equinox.ema.jit jax.stax
          keras3.jax keras3.torch 'onnxruntime.*')
EXTRA=(fastjsonschema==2.22.3 dm-haiku==0.0.17 jmp==0.0.4 keras==3.15.1 namex==0.1.0 optree==0.20.0)

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$WHEELS"
  python3 -m pip wheel -q --no-deps -w "$WHEELS" . || exit 2
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$WHEELS" "${EXTRA[@]}" || exit 2
  du -sh "$WHEELS"
  exit 0
fi

OUT=${1:-${OUT:+$OUT/gpu}}
OUT=${OUT:-reports/gpu}
SITE=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || exit 2
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
WORKERS=$(( $(nproc) / 2 )); [ "$WORKERS" -ge 1 ] || WORKERS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || true
python3 -c "import torch, jax; print('torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, jax.devices())" \
  >> "$OUT/gpu.txt" 2>&1 || true
args=(--pyargs bn_conformance -p no:randomly -q --tier default --device cuda --device cpu --no-report
      --results-dir "$OUT/run" -n "$WORKERS" --dist loadgroup)
for a in "${ADAPTERS[@]}"; do args+=(--adapter "$a"); done
start=$(date +%s)
timeout --signal=INT --kill-after=30 "${BN_GPU_BUDGET_S:-450}" python3 -m pytest "${args[@]}" > "$OUT/run.log" 2>&1
status=$?
echo "exit $status after $(( $(date +%s) - start )) s" | tee -a "$OUT/run.log"
tail -n 40 "$OUT/run.log"
exit $status
