#!/bin/bash
# Run one adapter's selected cases under several CPU-ISA / threading settings and judge each run
# against the findings file.  usage: BASELINE=RESULTS.jsonl isa_matrix.sh ADAPTER TAG "REGEX" [extra case ids...]
# (BASELINE: the results file of a suite run; its case ids for ADAPTER matching REGEX are rerun.)
# Variants: native (AVX-512 on the measuring CPU), XLA capped at AVX2 and at AVX (no FMA), oneDNN capped at AVX2 or off,
# one OpenMP/intra-op thread.  Output: isa/<adapter>_<tag>_<variant>.{jsonl,txt}
set -u
A=$1; TAG=$2; RE=$3; shift 3
# Run from the repository root, in an environment with bn_conformance and the frameworks installed.
D=$(cd "$(dirname "$0")" && pwd)
FINDINGS=${FINDINGS:-conformance/findings/tf_keras.toml}
declare -A ENVS=(
  [native]=""
  [xla_avx2]="XLA_FLAGS=--xla_cpu_max_isa=AVX2"
  [xla_avx]="XLA_FLAGS=--xla_cpu_max_isa=AVX"
  [onednn_avx2]="ONEDNN_MAX_CPU_ISA=AVX2"
  [threads1]="OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1"
  [aten_default]="ATEN_CPU_CAPABILITY=default"
  [onednn_off]="TF_ENABLE_ONEDNN_OPTS=0"
)
for V in ${VARIANTS:-native xla_avx2 xla_avx}; do
  out=$D/isa/${A}_${TAG}_${V}
  env ${ENVS[$V]} nice python $D/run_cases.py "$A" --baseline "$BASELINE" ${BASELINE_FROM:+--baseline-from $BASELINE_FROM} --re "$RE" "$@" \
      --findings "$FINDINGS" --out $out.jsonl > $out.txt 2> $out.err
  echo "== $A $TAG $V: $(grep -c . $out.txt) failing-check lines, $(grep -c UNATTRIBUTED $out.txt) unattributed; $(grep '^# [0-9]* cases' $out.err)"
done
