#!/bin/bash
# The opt-in variants (two-pass, eager) on the cases that fail or come near the tolerance for
# their jit sibling (near_<family>.txt), native ISA; serial and niced.
# Run from the repository root in an environment with bn_conformance and the JAX frameworks installed;
# results go to $RUNS (default: a new temporary folder, printed), one <isa>_<adapter>.jsonl per run.
S=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-$(mktemp -d)}; mkdir -p "$RUNS"; echo "results in $RUNS"
run() { out=$RUNS/$1_$2.jsonl; [ -s "$out" ] && return
        nice python $S/evalcases.py --adapter $2 --cases $S/near_$3.txt --out $out.tmp && mv $out.tmp $out; }
unset XLA_FLAGS
run native flax.linen.jit.twopass flax
run native flax.nnx.jit.twopass flax
export XLA_FLAGS=--xla_cpu_max_isa=AVX2
run AVX2 flax.linen.jit.twopass flax
unset XLA_FLAGS
run native haiku haiku
run native equinox.batch equinox
run native equinox.ema equinox
run native flax.linen flax
run native flax.nnx flax
