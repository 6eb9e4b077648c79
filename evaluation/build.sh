#!/usr/bin/env bash
# Build the organisers' evaluation image (evaluation/Dockerfile) from a context of its own: the
# evaluation package, the modules of model/ it reads (errors, volumes/layouts, volumes/nifti and their packages), evaluation/requirements.txt and the
# constraints file that pins every dependency (evaluation/constraints.txt).
#
#   evaluation/build.sh [--base IMAGE] [--tag NAME:TAG] [--network MODE] [-- docker build args]
#
#   --base IMAGE     any image with Python >= 3.11 (default: the Dockerfile's python:3.11-slim-bookworm;
#                    without registry access: the local CPU base, "$(docker/make-cpu-base.sh)")
#   --tag NAME:TAG   image tag (default ulf-enc-evaluation:latest, or $EVALUATION_IMAGE)
#   --network MODE   network for the RUN steps (e.g. host, where pip needs it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
log() { printf '[evaluation-build] %s\n' "$*" >&2; }
die() { printf '[evaluation-build] error: %s\n' "$*" >&2; exit 1; }

image="${EVALUATION_IMAGE:-ulf-enc-evaluation:latest}" base="" network="" extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --base) base="${2:?--base needs an image}"; shift 2 ;;
        --tag) image="${2:?--tag needs a name}"; shift 2 ;;
        --network) network="${2:?--network needs a mode}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown option $1 (see evaluation/build.sh --help)" ;;
    esac
done
command -v docker >/dev/null 2>&1 || die "docker is not installed (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (docker/start-dockerd.sh starts one)"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/ulf-evaluation-context.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/Dockerfile"
cp "$here/requirements.txt" "$ctx/requirements.txt"
cp "$here/constraints.txt" "$ctx/constraints.txt"
printf 'Dockerfile\n.dockerignore\n' > "$ctx/.dockerignore"
tar -C "$repo" --exclude=__pycache__ --exclude='*.pyc' --exclude=Dockerfile --exclude=build.sh \
    --exclude=requirements.txt --exclude=constraints.txt -cf - evaluation model/__init__.py model/errors.py model/volumes/__init__.py model/volumes/layouts.py model/volumes/nifti.py | tar -C "$ctx" -xf -
args=(-t "$image" -f "$ctx/Dockerfile")
[[ -n "$base" ]] && args+=(--build-arg "BASE_IMAGE=$base")
[[ -n "$network" ]] && args+=(--network "$network")
log "building $image from ${base:-the default base of the Dockerfile} ..."
t0=$SECONDS
docker build "${args[@]}" "${extra[@]}" "$ctx" >&2 || die "docker build of the evaluation image failed"
log "built $image in $((SECONDS - t0)) s"
