#!/usr/bin/env bash
# One prepared check for a machine with one NVIDIA GPU, at most 8 minutes: it runs what that machine's Python can
# and says what it cannot. Sections (each bounded by `timeout`, none stops the others):
#   1. the machine: GPU, driver, Python packages, the providers onnxruntime offers; `edgekit doctor`
#   2. PyTorch CUDA reference rollouts against the CPU ones (TF32 off and on), both demo models
#   3. the TensorRT engine backend's host loop on REAL CUDA memory through cuda-python (the engines are a stand-in
#      that runs the ONNX graphs with onnxruntime: TensorRT itself is not installed on such a machine)
#   4. the plan script against a stub trtexec reporting TensorRT 10.3 and then 11.x
#   5. execution providers: with onnxruntime-gpu, the CUDA provider's device-resident host loop against CPU
#      answers, `verify --full` on CUDA with TF32 on and off, slot refill vs compaction; without it, a requested
#      provider must fail loudly (exit 2) and --allow-fallback must say so in one line
# Usage (repository root): bash benchmarks/gpu_check.sh   (OUT=dir keeps the JSON files; PYTHON=python to pick one)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export EDGEKIT_CACHE="${EDGEKIT_CACHE:-$(mktemp -d)}"
chmod 700 "$EDGEKIT_CACHE"
START=$SECONDS
section() { echo; echo "== $* ($((SECONDS - START)) s)"; }
EK=("$PY" -m edgekit.cli)

section "1. machine"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv || echo "nvidia-smi failed"
"$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "torch", "onnxruntime", "onnx", "tensorrt", "cuda.bindings"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {getattr(m, '__version__', '?')}")
    except Exception as e:
        print(f"{name}: not importable ({type(e).__name__})")
import onnxruntime as ort
print("onnxruntime providers:", ort.get_available_providers())
EOF
timeout 60 "${EK[@]}" doctor; echo "doctor exit $?"

section "2. PyTorch CUDA vs CPU reference rollouts"
timeout 120 "$PY" benchmarks/gpu_reference_check.py --n 512 --json "$OUT/gpu_reference.json"; echo "exit $?"

section "3. engine backend host loop on real CUDA memory (TensorRT stand-in)"
EDGEKIT_REAL_CUDART=1 timeout 170 "$PY" -m pytest -q -p no:cacheprovider tests/runtime/test_engines.py 2>&1 | tail -15

section "4. plan script against a stub trtexec (TensorRT 10.3 and 11.x)"
timeout 60 "$PY" -m pytest -q -p no:cacheprovider tests/tensorrt_stage/test_plan_stub_trtexec.py 2>&1 | tail -8

section "5. execution providers"
if "$PY" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
    EDGEKIT_GPU_PROVIDERS=1 timeout 200 "$PY" -m pytest -q -p no:cacheprovider tests/runtime/test_gpu_providers.py 2>&1 | tail -15
else
    echo "onnxruntime here has no CUDA provider (onnxruntime-gpu is not installed): device-resident host loop, verify"
    echo "--full on CUDA and slot refill on CUDA NOT RUN. A requested provider must fail loudly:"
    timeout 100 "$PY" -m pytest -q -p no:cacheprovider tests/runtime/test_gpu_providers.py -k missing 2>&1 | tail -6
fi
section "done"
