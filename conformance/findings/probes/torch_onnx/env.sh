# Source me from the repository root: `. conformance/findings/probes/torch_onnx/env.sh`.
# The probes run the suite's own code from the installed package bn_conformance
# (`pip install -c constraints.txt -e '.[all]'`), with the python of the active environment.
PROBES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PY:-python}
RUN="$PY $PROBES/run_case.py"
TG=examples/tinygrad_adapter.py:TinygradBatchNorm
