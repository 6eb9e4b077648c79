#!/usr/bin/env bash
# Build and tag the inference image (and, with --training, the training image).
#
#   ./build.sh                              # CUDA PyTorch base (the Dockerfile's default)
#   ./build.sh --base IMAGE                 # another base, e.g. the local CPU base:
#   ./build.sh --base "$(docker/make-cpu-base.sh)" --network host
#   ./build.sh --training                   # the training image as well
#   ./build.sh -- --no-cache                # anything after -- goes to docker build
#
# Options:
#   --base IMAGE       base image (build argument BASE_IMAGE); default: the Dockerfile's
#   --tag NAME:TAG     inference image tag (default ulf-enc-bridged-diffusion:latest, or $IMAGE)
#   --training         also build the training image (tag: $TRAINING_IMAGE or
#                      ulf-enc-bridged-diffusion-training:latest)
#   --training-only    build only the training image
#   --training-tag T   training image tag
#   --network MODE     network for RUN steps (e.g. host, where the default bridge network
#                      cannot reach the package index)
#   -q, --quiet        less build output
# The inference image is also tagged with the date and, in a git checkout, the commit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[build] %s\n' "$*" >&2; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

image="${IMAGE:-ulf-enc-bridged-diffusion:latest}"
training_image="${TRAINING_IMAGE:-ulf-enc-bridged-diffusion-training:latest}"
base="${BASE_IMAGE:-}"
network="${DOCKER_BUILD_NETWORK:-}"
inference=1 training=0 quiet=()
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --base) base="${2:?--base needs an image}"; shift 2 ;;
        --base=*) base="${1#*=}"; shift ;;
        --tag) image="${2:?--tag needs a name}"; shift 2 ;;
        --tag=*) image="${1#*=}"; shift ;;
        --training) training=1; shift ;;
        --training-only) training=1; inference=0; shift ;;
        --training-tag) training_image="${2:?}"; shift 2 ;;
        --training-tag=*) training_image="${1#*=}"; shift ;;
        --network) network="${2:?--network needs a mode}"; shift 2 ;;
        --network=*) network="${1#*=}"; shift ;;
        -q|--quiet) quiet=(--quiet); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown option $1 (see ./build.sh --help)" ;;
    esac
done

command -v docker >/dev/null 2>&1 || die "docker is not installed or not on PATH.
  Install Docker Engine (https://docs.docker.com/engine/install/; Debian/Ubuntu: apt-get install docker.io)
  and start it, then run ./build.sh again."
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon. Is it running (systemctl start docker, or
  dockerd &), and may this user use it (root, or a member of the docker group)?"

args=(--platform=linux/amd64)  # what Grand Challenge runs
[[ -n "$base" ]] && args+=(--build-arg "BASE_IMAGE=$base")
[[ -n "$network" ]] && args+=(--network "$network")

if [[ "$inference" == 1 ]]; then
    for f in Dockerfile requirements.txt process.py model weights; do
        [[ -e "$here/$f" ]] || die "$f is missing from $here: nothing to build"
    done
    [[ -f "$here/weights/manifest.json" ]] || log "warning: weights/manifest.json is missing: the image will have no baked-in weights"
    name="${image%:*}"; [[ "$name" == "$image" || "$image" == *@* ]] && name="$image"
    tags=(-t "$image")
    tags+=(-t "$name:$(date -u +%Y%m%d)")
    if rev="$(git -C "$here" rev-parse --short=12 HEAD 2>/dev/null)"; then
        git -C "$here" diff --quiet HEAD -- Dockerfile requirements.txt process.py model weights 2>/dev/null || rev="$rev-dirty"
        tags+=(-t "$name:git-$rev")
        args+=(--build-arg "CODE_VERSION=git-$rev")  # recorded in every run record (ULF_CODE_VERSION)
    fi
    log "building $image from ${base:-the default base of the Dockerfile} ..."
    t0=$SECONDS
    if ! docker build "${quiet[@]}" "${args[@]}" "${tags[@]}" -f "$here/Dockerfile" "${extra[@]}" "$here" >&2; then
        [[ -n "$base" ]] || log "where the default base image cannot be pulled (no registry access), build on a local
  CPU base instead:  ./build.sh --base \"\$(docker/make-cpu-base.sh)\" --network host"
        die "docker build failed"
    fi
    log "built $image in $((SECONDS - t0)) s; tags: $(printf '%s ' "${tags[@]}" | sed 's/-t //g')"
fi

if [[ "$training" == 1 ]]; then
    [[ -f "$here/training/Dockerfile" ]] || die "training/Dockerfile is missing"
    # The training image has a context of its own (the repository's .dockerignore keeps training
    # code out of the inference context): the code packages and the requirement files, no data.
    ctx="$(mktemp -d "${TMPDIR:-/tmp}/ulf-training-context.XXXXXX")"
    trap 'rm -rf "$ctx"' EXIT
    cp "$here/training/Dockerfile" "$ctx/Dockerfile"
    printf 'Dockerfile\n.dockerignore\n' > "$ctx/.dockerignore"
    mkdir -p "$ctx/docker" "$ctx/requirements"
    cp "$here/docker/train-entrypoint.sh" "$ctx/docker/"
    cp "$here/requirements.txt" "$ctx/requirements/inference.txt"
    # training/requirements.txt when there is one; else requirements-dev.txt (the simulator's
    # nilearn template and the rest of the research stack); else the inference set alone
    if [[ -f "$here/training/requirements.txt" ]]; then
        cp "$here/training/requirements.txt" "$ctx/requirements/training.txt"
    elif [[ -f "$here/requirements-dev.txt" ]]; then
        cp "$here/requirements-dev.txt" "$ctx/requirements/training.txt"
    else
        : > "$ctx/requirements/training.txt"
    fi
    for pkg in model training simulation evaluation; do
        [[ -d "$here/$pkg" ]] || continue
        tar -C "$here" --exclude=__pycache__ --exclude='*.pyc' --exclude=Dockerfile \
            --exclude='*.pt' --exclude='*.nii.gz' --exclude='*.mha' -cf - "$pkg" | tar -C "$ctx" -xf -
    done
    mkdir -p "$ctx/training"
    log "building $training_image from ${base:-the default base of the Dockerfile} ..."
    t0=$SECONDS
    docker build "${quiet[@]}" "${args[@]}" -t "$training_image" "${extra[@]}" "$ctx" >&2 || die "docker build of the training image failed"
    log "built $training_image in $((SECONDS - t0)) s"
fi
