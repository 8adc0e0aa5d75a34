export OMP_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3 XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" JAX_PLATFORMS=cpu
# Source me (`. common.sh`) in an environment with the frameworks installed
# (pip install -c constraints.txt -e '.[all]'), then run a script: python s1_stax.py
