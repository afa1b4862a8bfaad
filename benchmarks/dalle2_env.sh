#!/usr/bin/env bash
# Create .venv-dalle2/, a benchmark-only environment in which `dalle2_pytorch.dalle2_pytorch.Unet` imports.
#
# Why a separate venv: dalle2-pytorch declares torchvision, open-clip-torch, clip-anytorch and torchmetrics as
# dependencies; torchvision has no CPU build here and installing it breaks `import diffusers`. So the venv reuses the
# global torch/diffusers (--system-site-packages) and adds dalle2-pytorch plus only the packages its import chain
# really needs (pure Python except kornia_rs, a prebuilt wheel), all with --no-deps; the list was found by importing
# until nothing was missing.
# torchvision stays absent: bench_training.py puts an import-only stub in sys.modules while it imports the Unet.
#
#     bash benchmarks/dalle2_env.sh                  # then:
#     .venv-dalle2/bin/python benchmarks/bench_training.py --threads 1
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv-dalle2}"
PYTHON="${PYTHON:-python}"

# Pinned: the versions the figures in benchmarks/RESULTS.md were measured with.
PACKAGES=(
    dalle2-pytorch==1.15.6
    einops==0.8.2                   # dalle2_pytorch, x_clip, coca_pytorch
    kornia==0.9.0                   # dalle2_pytorch: gaussian_blur2d, kornia.augmentation
    kornia_rs==0.2.0                # kornia's image I/O backend, imported by kornia
    resize-right==0.0.2             # dalle2_pytorch: resize
    rotary-embedding-torch==0.9.1   # dalle2_pytorch
    x-clip==0.14.4                  # dalle2_pytorch: CLIP
    coca-pytorch==0.1.0             # dalle2_pytorch: CoCa
    vector-quantize-pytorch==1.32.0 # dalle2_pytorch.vqgan_vae
    einx==0.4.3                     # vector_quantize_pytorch
    frozendict==2.5.1               # einx
    loguru==0.7.3                   # vector_quantize_pytorch
    torch-einops-utils==0.2.0       # vector_quantize_pytorch
    ema-pytorch==0.8.3              # dalle2_pytorch.trainer (imported by the package __init__)
    pytorch-warmup==0.2.0           # dalle2_pytorch.trainer
    ftfy==6.3.1                     # dalle2_pytorch.tokenizer
)

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --no-deps "${PACKAGES[@]}"

# Refuse an environment that got torchvision (or its heavy dependants) in any way.
FORBIDDEN='^(torchvision|open[-_]clip[-_]torch|timm|clip[-_]anytorch) '
if "$VENV/bin/python" -m pip list 2>/dev/null | grep -iE "$FORBIDDEN"; then
    echo "error: $VENV contains torchvision or a package that needs it; remove it (it breaks import diffusers)" >&2
    exit 1
fi

# The import the benchmark needs, with the same stub the benchmark uses.
cd "$ROOT"
PYTHONPATH="$ROOT/benchmarks:$ROOT" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 "$VENV/bin/python" -c '
import bench_training
unet, status = bench_training.import_dalle2_unet()
print(status)
raise SystemExit(unet is None)
'
echo "ready: $VENV"
