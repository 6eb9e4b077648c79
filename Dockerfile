# Inference image: bridged denoising diffusion for ultra-low-field MRI enhancement.
#
# Build:  ./build.sh                      (CUDA PyTorch base, the default below)
#         ./build.sh --base IMAGE         (any image with Python >= 3.11 and torch, e.g. the
#                                          local CPU base made by docker/make-cpu-base.sh)
# Run:    docker run --rm --gpus all --network none \
#             -v IN:/input:ro -v OUT:/output IMAGE          (Grand Challenge mode)
# See docs/container.md.
#
# Base image: PyTorch 2.10.0 (CUDA 12.8, cuDNN 9.15). Not 2.9.x: 2.9.0 switched cuDNN off
# for half-precision 3D convolutions (a slow, memory-hungry fallback under autocast), and
# 2.8 ships cuDNN 9.10.2, whose 3D convolution kernels give wrong results in some bf16/TF32
# cases; 2.10 re-enables cuDNN for 3D convolutions with the fixed cuDNN. CUDA 12.8 runs on
# Turing (T4) and newer cards, on drivers of the R525 series or newer.
# The base's torch is kept: requirements.txt is installed with torch filtered out and the
# installed torch pinned as a constraint.
ARG BASE_IMAGE=pytorch/pytorch:2.10.0-cuda12.8-cudnn9-runtime
# Grand Challenge runs linux/amd64 images (the forge templates pin it too; build.sh passes it to docker build).
FROM --platform=linux/amd64 ${BASE_IMAGE}

USER root
# At run time only /output and /tmp are writable: every cache points into /tmp.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HOME=/home/user \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    TORCH_HOME=/tmp/.cache/torch \
    CUDA_CACHE_PATH=/tmp/.cache/nv
# The run's defaults, each overridable with docker run -e or a derived image (docs/container.md):
# every process.py option is ULF_<OPTION>. A Grand Challenge job has 20 minutes by default; the run plans
# itself to 16 of them (counted from the process's start, reading and writing included), leaving 4 for
# the platform's container start-up. ULF_TIME_BUDGET=0 runs the preset as asked, however long it takes.
# The budget is per case (ULF_BUDGET_SCOPE=case): a Grand Challenge job is one case, and an organiser's local
# rerun over a cohort plans every case as the platform planned it.
ENV ULF_TIME_BUDGET=960 \
    ULF_BUDGET_SCOPE=case \
    ULF_PRECISION=auto
LABEL org.opencontainers.image.title="ulf-enc-bridged-diffusion" \
      org.opencontainers.image.description="Bridged denoising diffusion for ultra-low-field (64 mT) MRI enhancement: T1w, T2w, FLAIR in; enhanced T1w, T2w, FLAIR out" \
      org.ulf-enc.inputs="low-field-t1-brain-mri low-field-t2-brain-mri low-field-flair-brain-mri" \
      org.ulf-enc.outputs="enhanced-t1-brain-mri enhanced-t2-brain-mri enhanced-flair-brain-mri"
WORKDIR /opt/app
ENTRYPOINT ["python", "/opt/app/process.py"]

# Dependencies first (they change rarely, so this layer stays cached). Nothing is left in /tmp:
# pip's scratch space is a folder under /var/tmp, removed in the same step.
COPY requirements.txt /opt/app/requirements.txt
RUN set -eu; \
    getent group user >/dev/null || groupadd --system user; \
    id -u user >/dev/null 2>&1 || useradd --system --no-log-init --gid user --create-home --home-dir /home/user --shell /bin/sh user; \
    mkdir -p /opt/ml/model /input /output /var/tmp/pip-build; \
    chown user:user /output; \
    export TMPDIR=/var/tmp/pip-build; \
    python -c "from importlib.metadata import version; print('torch==' + version('torch'))" > /opt/app/constraints-base.txt; \
    grep -viE '^[[:space:]]*torch[[:space:]]*([=<>!~;[]|$)' /opt/app/requirements.txt > /opt/app/requirements-image.txt; \
    python -m pip install --no-cache-dir --constraint /opt/app/constraints-base.txt --requirement /opt/app/requirements-image.txt; \
    python -c "import torch, monai, SimpleITK, numpy, skimage; print('torch', torch.__version__, '| cuda', torch.version.cuda, '| monai', monai.__version__, '| numpy', numpy.__version__)"; \
    rm -rf /var/tmp/pip-build /root/.cache /tmp/.cache

# Code and weights, in one layer (the build context is an allow-list, see .dockerignore).
# The weights are baked in under /opt/app/weights; a model tarball that the platform extracts
# to /opt/ml/model is used instead when it holds a manifest.json.
COPY . /opt/app/
RUN set -eu; \
    chmod -R a+rX /opt/app /opt/ml; \
    python -m compileall -q /opt/app/process.py /opt/app/model; \
    python -c "import model"; \
    test -f /opt/app/weights/manifest.json || echo "WARNING: no weights/manifest.json baked in" >&2; \
    rm -rf /tmp/.cache
# The code version every run record names (build.sh passes the git commit).
ARG CODE_VERSION=unknown
ENV ULF_CODE_VERSION=$CODE_VERSION

USER user
