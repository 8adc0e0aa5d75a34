#!/usr/bin/env bash
# The suite's GPU results in one prepared call: the default tier of every GPU-capable adapter,
# on CUDA and on the CPU of the same machine, written to a results folder to bring back and
# merge with the CPU run.
#
# 1. Prepare, on a machine that reaches the package registries, from the repository root:
#      benchmarks/gpu_run.sh --prepare
#    This writes .whl/ (about 26 MiB; it stops with exit 2 above 60 MiB): requirements.txt, the
#    suite's needs from pyproject.toml (its dependencies and its torch, jax, keras3 and parallel
#    extras, less matplotlib, which only the HTML report uses), and the wheels of everything those
#    need beyond PyTorch, JAX, jaxlib, Flax and NumPy and what these pull in (the GPU image's own):
#    pytest, pytest-xdist, hypothesis, dm-haiku, equinox, keras 3 and their dependencies at the
#    versions of constraints.txt, for CPython 3.11, 3.12 and 3.13 on manylinux x86-64 (the suite
#    needs 3.11 or newer), and setuptools to build the suite there. ONNX Runtime is not carried
#    (onnxruntime and onnx come to about 30 MiB per Python version): its adapters run, on CPU,
#    only where the image has both.
#    .whl/ is gitignored and never committed: the call on the GPU machine must carry it, e.g.
#    carry [".whl"]; the checkout itself travels as usual.
# 2. On the GPU machine (no network needed), from the repository root:
#      benchmarks/gpu_run.sh reports/gpu
#    (the results folder OUT; with no argument $OUT/gpu where OUT is set, else reports/gpu), and
#    bring that folder back here as reports/gpu.
#    It installs into a scratch prefix, from .whl/ alone, the suite (built from the checkout, so
#    it is the code that travelled) and whatever requirements.txt needs that the image lacks. pip
#    resolves every requirement but with each distribution the image has pinned to its version,
#    so it never upgrades, downgrades or removes one (torch, jax, flax and numpy stay the image's);
#    an image package too old for the suite stops the install with pip's reason. It then checks
#    that the plugin and every framework import, and writes python, torch, jax, their versions and
#    devices to OUT/gpu.txt; a failure of either step exits 2 with the reason (OUT/install.log,
#    OUT/gpu.txt).
#    Then `pytest --pyargs bn_conformance --tier default --device cuda --device cpu --no-report`
#    on the GPU-capable adapters, one pytest-xdist worker per two cores, interrupted
#    BN_GPU_BUDGET_S seconds after the script started (default 440, inside an 8-minute call; an
#    interrupted run keeps every finished case and says so), writes OUT/run/results.jsonl and
#    OUT/run.log. Exit status: pytest's (1 = failures found, which is a result, not an error).
#    A short check without a GPU: BN_GPU_DEVICES=cpu BN_GPU_TIER=quick BN_GPU_WORKERS=1 (defaults:
#    "cuda cpu", default, nproc/2); BN_WHEELS names another wheel folder than .whl.
# 3. Back here, merge with the CPU run:
#      python -m bn_conformance.reports publish reports/latest reports/gpu/run -o reports/published
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=${BN_WHEELS:-.whl}
PYTHONS=(3.11 3.12 3.13)
ADAPTERS=(torch.nn torch.nn.native_cuda torch.functional torch.nn.channels_last torch.nn.strided torch.nn.compile
          'torch.func.*' flax.linen.jit flax.nnx.jit haiku.jit equinox.batch.jit equinox.ema.jit jax.stax
          keras3.jax keras3.torch 'onnxruntime.*')

if [ "${1:-}" = "--prepare" ]; then
  TAGS=(--only-binary=:all: --implementation cp --platform manylinux2014_x86_64)
  for n in $(seq 17 28); do TAGS+=(--platform "manylinux_2_${n}_x86_64"); done
  rm -rf "$WHEELS" && mkdir -p "$WHEELS" && tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT || exit 2
  python3 - > "$WHEELS/requirements.txt" <<'EOF' || exit 2
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = [r for x in ("torch", "jax", "keras3", "parallel") for r in p["optional-dependencies"][x]]
print("\n".join(r for r in p["dependencies"] + extras if not r.startswith("matplotlib")))
EOF
  for v in "${PYTHONS[@]}"; do
    # resolve the whole set for this Python (metadata only), then keep what the image lacks
    python3 -m pip install -q --dry-run --target "$tmp/t" --report "$tmp/$v.json" "${TAGS[@]}" --python-version "$v" \
      -c constraints.txt -r "$WHEELS/requirements.txt" || exit 2
    python3 - "$tmp/$v.json" "$v" "$WHEELS/requirements.txt" > "$tmp/$v.txt" <<'EOF' || exit 2
import json, re, sys
from pip._vendor.packaging.requirements import Requirement
report, ver, roots = sys.argv[1:]
IMAGE = {"torch", "jax", "jaxlib", "flax", "numpy"}   # preinstalled there, with all they require
key = lambda name: re.sub(r"[-_.]+", "-", name).lower()
meta = {key(i["metadata"]["name"]): i["metadata"] for i in json.load(open(report))["install"]}
env = lambda extras: [{"python_version": ver, "python_full_version": ver + ".0", "extra": e} for e in ("", *extras)]
wanted = lambda req, extras=(): not req.marker or any(req.marker.evaluate(x) for x in env(extras))
todo = [Requirement(line) for line in open(roots).read().splitlines() if line.strip()]
todo, seen = [r for r in todo if wanted(r)], set()
while todo:   # the requirement graph from the roots, not entering the image's packages
    r = todo.pop()
    if key(r.name) in IMAGE | seen:
        continue
    seen.add(key(r.name))
    m = meta[key(r.name)]
    print(f"{m['name']}=={m['version']}")
    todo += [d for d in map(Requirement, m.get("requires_dist") or []) if wanted(d, r.extras)]
EOF
    python3 -m pip download -q --no-deps "${TAGS[@]}" --python-version "$v" -d "$WHEELS" -r "$tmp/$v.txt" || exit 2
  done
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" 'setuptools>=68' || exit 2
  ls "$WHEELS"
  bytes=$(du -sb "$WHEELS" | cut -f1)
  echo "$WHEELS: $(( bytes / 1048576 )) MiB for CPython ${PYTHONS[*]}"
  [ "$bytes" -le $(( 60 * 1048576 )) ] || { echo "$WHEELS is over 60 MiB: a device call carries 64 MiB at most" >&2; exit 2; }
  exit 0
fi

OUT=${1:-${OUT:+$OUT/gpu}}
OUT=${OUT:-reports/gpu}
mkdir -p "$OUT" || exit 2
start=$(date +%s)
fail() { echo "gpu_run.sh: $*" | tee -a "$OUT/gpu.txt" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
[ -f "$WHEELS/requirements.txt" ] || fail "no $WHEELS/requirements.txt: run benchmarks/gpu_run.sh --prepare and carry $WHEELS"
WHEELS=$(cd "$WHEELS" && pwd)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "the suite needs Python 3.11 or newer, not $(python3 -V 2>&1)"

# .whl/ alone (no index, no pip configuration of this machine), into a scratch prefix
PREFIX=$(mktemp -d) && trap 'rm -rf "$PREFIX"' EXIT
pip_() { env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
         python3 -m pip install --no-index --find-links "$WHEELS" --prefix "$PREFIX" --no-warn-script-location "$@"; }
python3 -P - > "$PREFIX/image.txt" <<'EOF'   # -P: not the checkout's own metadata
import importlib.metadata as md, re
from pip._vendor.packaging.version import InvalidVersion, Version
seen = set()
for d in md.distributions():   # sys.path order: the copy that imports comes first
    name = d.metadata["Name"] or ""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if name and key not in seen:
        seen.add(key)
        try:
            print(f"{name}=={Version(d.version)}")
        except InvalidVersion:   # a version pip cannot read either: nothing to pin
            pass
EOF
mkdir "$PREFIX/src" && cp -r pyproject.toml README.md $(python3 -c 'import tomllib
print(*set(tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"].values()))') "$PREFIX/src"
{ pip_ -c "$PREFIX/image.txt" -r "$WHEELS/requirements.txt" && pip_ --no-deps "$PREFIX/src"; } > "$OUT/install.log" 2>&1 ||
  { tail -n 15 "$OUT/install.log"; fail "installing from $WHEELS failed (the reason is in $OUT/install.log)"; }
PYTHONPATH=$(find "$PREFIX" -maxdepth 4 -type d \( -name site-packages -o -name dist-packages \) | paste -sd:)${PYTHONPATH:+:$PYTHONPATH}
export PYTHONPATH XLA_PYTHON_CLIENT_PREALLOCATE=false   # several workers share the GPU: JAX allocates as it goes

KERAS_BACKEND=jax python3 -P - >> "$OUT/gpu.txt" 2>&1 <<'EOF' || fail "$(tail -n 1 "$OUT/gpu.txt") (see $OUT/gpu.txt)"
import importlib, importlib.metadata as md, platform, sys
print("python", platform.python_version(), sys.executable)
print("bn-conformance", *(d.version for d in md.distributions(name="bn-conformance")))
bad = [] if any(e.value == "bn_conformance.plugin" for e in md.entry_points(group="pytest11")) else ["its pytest plugin"]
for m in "bn_conformance.plugin xdist hypothesis torch jax flax haiku equinox keras onnxruntime".split():
    try:
        print(m, getattr(importlib.import_module(m), "__version__", ""))
    except Exception as e:  # onnxruntime is optional: the image's, where it has one
        print(m, "does not import:", type(e).__name__, e)
        bad += [m] if m != "onnxruntime" else []
if "torch" not in bad:
    import torch
    print("torch cuda", torch.version.cuda, [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
if "jax" not in bad:
    import jax
    print("jax devices", jax.devices())
sys.exit(f"missing after installing: {', '.join(bad)}" if bad else 0)
EOF

WORKERS=${BN_GPU_WORKERS:-$(( $(nproc) / 2 ))}; [ "$WORKERS" -ge 1 ] || WORKERS=1
args=(--pyargs bn_conformance -p no:randomly -q --tier "${BN_GPU_TIER:-default}" --no-report
      --results-dir "$OUT/run" -n "$WORKERS" --dist loadgroup)
for d in ${BN_GPU_DEVICES:-cuda cpu}; do args+=(--device "$d"); done
for a in "${ADAPTERS[@]}"; do args+=(--adapter "$a"); done
left=$(( ${BN_GPU_BUDGET_S:-440} - ($(date +%s) - start) )); [ "$left" -ge 60 ] || left=60
timeout --signal=INT --kill-after=30 "$left" python3 -P -m pytest "${args[@]}" > "$OUT/run.log" 2>&1
status=$?
echo "exit $status after $(( $(date +%s) - start )) s (installing included)" | tee -a "$OUT/run.log"
tail -n 40 "$OUT/run.log"
exit $status
