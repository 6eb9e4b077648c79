#!/usr/bin/env bash
# Build a local CPU base image for the inference and training images, without
# any container registry: Debian bookworm (debootstrap) + Python 3.11 + the CPU
# build of torch, in a virtual environment at /opt/venv that is first on PATH.
#
# It stands in for the CUDA PyTorch runtime image (the Dockerfile's default
# BASE_IMAGE) on machines that cannot pull base images, e.g. CI here:
#
#     docker/make-cpu-base.sh                 # prints the image tag on stdout
#     ./build.sh --base "$(docker/make-cpu-base.sh)"
#
# Cached: the debootstrap root filesystem (a tarball under ULF_CACHE_DIR) and the
# finished image (kept while its recipe label matches) are reused by later runs.
#
# Environment (all optional):
#   ULF_CPU_BASE_TAG  image tag to produce (default ulf-enc/cpu-base:bookworm-torch<ver>)
#   ULF_CACHE_DIR     cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/ulf-enc-docker)
#   DEBIAN_MIRROR     Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   TORCH_VERSION     torch version (default: the torch== pin in requirements.txt)
#   TORCH_WHEEL       path of a CPU torch wheel to install (default: searched in the
#                     find-links folders of pip's configuration and PIP_FIND_LINKS)
#   TORCH_INDEX_URL   where to get torch when no wheel is found locally
#                     (default https://download.pytorch.org/whl/cpu)
#   CA_BUNDLE         CA bundle copied into the image so pip inside trusts this
#                     network's TLS (default: pip's configured cert, else the system bundle)
#   FORCE=1           rebuild even if a matching image exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
log() { printf '[cpu-base] %s\n' "$*" >&2; }
die() { printf '[cpu-base] error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is dockerd running, and may this user use it?)"

if [[ -z "${TORCH_VERSION:-}" ]]; then
    TORCH_VERSION="$(sed -nE 's/^[[:space:]]*torch[[:space:]]*==[[:space:]]*([^[:space:]#;]+).*/\1/p' "$repo/requirements.txt" | head -n1)"
fi
[[ -n "$TORCH_VERSION" ]] || die "cannot tell the torch version (set TORCH_VERSION)"
TORCH_VERSION="${TORCH_VERSION%%+*}"

suite=bookworm
tag="${ULF_CPU_BASE_TAG:-ulf-enc/cpu-base:${suite}-torch${TORCH_VERSION}}"
cache="${ULF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ulf-enc-docker}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-pip,python3-venv,ca-certificates"
mkdir -p "$cache"

# --- the CA bundle ---------------------------------------------------------------
if [[ -z "${CA_BUNDLE:-}" ]]; then
    CA_BUNDLE="$(pip config get global.cert 2>/dev/null || true)"
    [[ -n "$CA_BUNDLE" && -f "$CA_BUNDLE" ]] || CA_BUNDLE="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
fi
[[ -f "$CA_BUNDLE" ]] || die "CA bundle $CA_BUNDLE not found (set CA_BUNDLE)"

# --- the torch wheel ---------------------------------------------------------------
if [[ -z "${TORCH_WHEEL:-}" ]]; then
    dirs=()
    for d in ${PIP_FIND_LINKS:-} $(pip config list 2>/dev/null | sed -nE "s/^[^=]*find-links='?([^']*)'?$/\1/p"); do
        d="${d#file://}"; [[ -d "$d" ]] && dirs+=("$d")
    done
    for d in "${dirs[@]}"; do
        for w in "$d"/torch-"$TORCH_VERSION"+cpu-cp311-cp311-*x86_64.whl "$d"/torch-"$TORCH_VERSION"-cp311-cp311-*x86_64.whl; do
            if [[ -f "$w" ]]; then TORCH_WHEEL="$w"; break 2; fi
        done
    done
fi
if [[ -n "${TORCH_WHEEL:-}" ]]; then
    [[ -f "$TORCH_WHEEL" ]] || die "TORCH_WHEEL=$TORCH_WHEEL does not exist"
    torch_src="wheel $(basename "$TORCH_WHEEL")"
else
    torch_src="index ${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu} torch==$TORCH_VERSION"
    log "no local CPU torch wheel found; torch will come from ${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
fi

# --- cached image? -----------------------------------------------------------------
recipe="$( { cat "${BASH_SOURCE[0]}"; echo "$suite $mirror $packages $torch_src"; sha256sum "$CA_BUNDLE"; } | sha256sum | cut -c1-16)"
if [[ "${FORCE:-0}" != 1 ]] && \
   [[ "$(docker image inspect --format '{{ index .Config.Labels "org.ulf-enc.recipe" }}' "$tag" 2>/dev/null || true)" == "$recipe" ]]; then
    log "cached: $tag (recipe $recipe)"
    echo "$tag"
    exit 0
fi

# --- root filesystem (debootstrap, cached as a tarball) ----------------------------
rootfs_tar="$cache/rootfs-$suite-minbase-$(echo "$mirror $packages" | sha256sum | cut -c1-12).tar"
if [[ ! -s "$rootfs_tar" || "${FORCE:-0}" == 1 ]]; then
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (Debian: apt-get install debootstrap)"
    [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
    work="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    log "debootstrap $suite (minbase + $packages) from $mirror ..."
    debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    # slim it: package lists, caches and docs are not needed in the image
    rm -rf "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/cache/apt/*.bin "$work/rootfs"/var/cache/apt/archives/*.deb \
           "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/locale/* "$work/rootfs"/tmp/* || true
    printf 'deb %s %s main\n' "$mirror" "$suite" > "$work/rootfs/etc/apt/sources.list"
    tar --numeric-owner -C "$work/rootfs" -cf "$rootfs_tar.part" .
    mv "$rootfs_tar.part" "$rootfs_tar"
    rm -rf "$work"; trap - EXIT
else
    log "cached root filesystem: $rootfs_tar"
fi

# --- import, then install torch into /opt/venv ---------------------------------------
rootfs_tag="ulf-enc/rootfs:$suite-$(basename "$rootfs_tar" .tar | sed 's/.*-//')"
if ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
    log "docker import -> $rootfs_tag"
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$rootfs_tar" "$rootfs_tag" >/dev/null
fi

ctr="ulf-enc-cpu-base-build-$$"
cleanup() { docker rm -f "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
mounts=(-v "$CA_BUNDLE:/run/host-ca.crt:ro")
if [[ -n "${TORCH_WHEEL:-}" ]]; then
    mounts+=(-v "$(cd "$(dirname "$TORCH_WHEEL")" && pwd)/$(basename "$TORCH_WHEEL"):/run/wheels/$(basename "$TORCH_WHEEL"):ro")
    torch_req="/run/wheels/$(basename "$TORCH_WHEEL")"
    index_args=""
else
    torch_req="torch==$TORCH_VERSION"
    index_args="--index-url ${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu} --extra-index-url https://pypi.org/simple"
fi
log "installing torch ($torch_src) into /opt/venv ..."
docker run --name "$ctr" --network host "${mounts[@]}" "$rootfs_tag" sh -euc "
    cp /run/host-ca.crt /etc/ssl/certs/ca-certificates.crt
    python3 -m venv /opt/venv
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --progress-bar off -q $index_args '$torch_req'
    /opt/venv/bin/python -W ignore -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda)'
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +
    rm -rf /root/.cache /tmp/* /var/tmp/*
" >&2
docker commit \
    --change 'ENV VIRTUAL_ENV=/opt/venv' \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.ulf-enc.recipe=$recipe org.ulf-enc.torch=$TORCH_VERSION org.ulf-enc.description=local-CPU-stand-in-for-the-CUDA-PyTorch-base" \
    --change 'CMD ["python"]' \
    "$ctr" "$tag" >/dev/null
log "built $tag (recipe $recipe)"
echo "$tag"
