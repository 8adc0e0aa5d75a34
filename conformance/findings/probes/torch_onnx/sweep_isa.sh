#!/bin/bash
# Machine sensitivity: the same near-threshold cases under ATEN_CPU_CAPABILITY=avx512 (native on the measuring CPU),
# avx2, default (no vectorisation; also Inductor's vec ISA), and OMP_NUM_THREADS=1.
# Output: sweep_isa.out (raw) -> summarised by sweep_summary.py
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"     # run from the repository root
OUT=$PROBES/sweep_isa.out
CACHE=$(mktemp -d)
: > $OUT
EAGER="train_bf16_ncl_2x2x3_normal_m0.1_e1e-05_k2_noaff_notrs_s5 train_f16_nc_2x1_normal_m0.1_e1e-05_k1_noaff_notrs_s0 train_bf16_ncl_2x5x3_normal_m0.1_e1e-05_k2_noaff_notrs_s5 train_bf16_ncl_2x5x5_normal_m0.1_e1e-05_k3_noaff_notrs_s3676 train_f16_nchw_8x4x16x16_normal_m0.1_e1e-05_k1_aff_trs_s0 train_f32_nchw_8x4x16x16_exact_m1.0_e1e-05_k1_aff_trs_s0 train_f16_nc_2048x4_normal_m0.1_e1e-05_k1_aff_trs_s0"
COMP="train_bf16_nchw_2x3x4x5_normal_m0.1_e1e-05_k1_aff_trs_s0 train_f16_nc_16x5_exact_m1.0_e1e-05_k1_aff_trs_s0 train_f16_nchw_2x3x4x5_offset1e2_m0.1_e1e-05_k1_aff_trs_s0 train_f16_ncl_4x3x7_normal_m0.1_e1e-05_k1_aff_trs_s0 frozen_f16_nchw_2x3x4x5_normal_m0.1_e1e-05_k1_aff_trs_s0 train_f16_nc_2048x4_normal_m0.1_e1e-05_k1_aff_trs_s0 train_f32_nchw_8x4x16x16_exact_m1.0_e1e-05_k1_aff_trs_s0 train_f32_nc_2048x4_exact_m1.0_e1e-05_k1_aff_trs_s0"
STR="train_f16_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0 train_f16_nc_2048x4_normal_m0.1_e1e-05_k1_aff_trs_s0 train_bf16_nc_16x5_offset1e2_m0.1_e1e-05_k1_aff_trs_s0 train_f16_nc_16x5_const_m0.1_e1e-05_k1_aff_trs_s0"
for cfg in "avx512 2" "avx2 2" "default 2" "avx512 1"; do
  set -- $cfg
  export ATEN_CPU_CAPABILITY=$1 OMP_NUM_THREADS=$2 TORCHINDUCTOR_CACHE_DIR=$CACHE/ind_cache_$1_$2
  echo "### CONFIG cap=$1 threads=$2" >> $OUT
  $PY -c "import torch; print('### capability', torch.backends.cpu.get_cpu_capability(), 'threads', torch.get_num_threads())" >> $OUT 2>&1
  $RUN torch.nn $EAGER >> $OUT 2>&1
  $RUN torch.nn.compile $COMP >> $OUT 2>&1
  $RUN $PROBES/strided_adapter.py:Strided $STR >> $OUT 2>&1
done
echo "### DONE" >> $OUT
