#!/usr/bin/env bash
# Run the built inference image on the committed test input the way Grand Challenge runs a job, and
# check its outputs: about a minute once the image is built (./build.sh).
#
#   test/run-container.sh [IMAGE] [-- DOCKER RUN OPTIONS...]
#   test/run-container.sh ulf-enc-bridged-diffusion:latest -- -e ULF_PRESET=cpu
#
# For every interface folder test/input/<name>/ (inputs.json + images/<relative_path>/<uuid>.mha; made by
# test/container/make_test_input.py), a container with --network none, --gpus all when the host has an
# NVIDIA runtime, the input read-only, a read-only root file system with a tmpfs /tmp, a memory limit,
# no capabilities, and a time budget (RUN_CONTAINER_TIME_BUDGET, default 45 s: the planner fits the run
# into it). Then test/container/check_gc_outputs.py, run inside the same image, checks every output
# (one file per output interface, the input's grid, float32, finite, not a copy of the input).
#
# Environment: RUN_CONTAINER_TIME_BUDGET (45), RUN_CONTAINER_MEMORY (8g), RUN_CONTAINER_GPUS (auto|1|0),
# RUN_CONTAINER_OUT (a folder for the outputs; default a new temporary folder, kept on failure).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${IMAGE:-ulf-enc-bridged-diffusion:latest}"
if [[ $# -gt 0 && "$1" != -- ]]; then image="$1"; shift; fi
[[ $# -gt 0 && "$1" == -- ]] && shift
extra=("$@")
budget="${RUN_CONTAINER_TIME_BUDGET:-45}"
memory="${RUN_CONTAINER_MEMORY:-8g}"
say() { printf '[run-container] %s\n' "$*"; }

command -v docker >/dev/null 2>&1 || { say "docker is not installed"; exit 2; }
docker image inspect "$image" >/dev/null 2>&1 || { say "no image $image: build it first (./build.sh)"; exit 2; }
gpus=()
case "${RUN_CONTAINER_GPUS:-auto}" in
    1) gpus=(--gpus all) ;;
    auto) if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 \
              && docker info --format '{{range $n, $_ := .Runtimes}}{{$n}} {{end}}' 2>/dev/null | grep -qw nvidia; then
              gpus=(--gpus all)
          fi ;;
esac

out_root="${RUN_CONTAINER_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/run-container.XXXXXX")}"
status=0
for input in "$repo"/test/input/*/; do
    input="${input%/}"
    name="$(basename "$input")"
    [[ -f "$input/inputs.json" ]] || continue
    output="$out_root/$name"
    mkdir -p "$output"
    chmod 0777 "$output"  # the image's user (not root) writes here
    chmod -R a+rX "$input"
    say "$name: docker run ($image, time budget $budget s, ${gpus[*]:-no GPU})"
    started=$SECONDS
    if ! docker run --rm --init --platform=linux/amd64 --network none "${gpus[@]}" \
            --memory "$memory" --memory-swap "$memory" --cap-drop ALL --security-opt no-new-privileges \
            --read-only --tmpfs /tmp:rw,exec,nosuid,nodev,size=2g \
            -v "$input:/input:ro" -v "$output:/output:rw" -e "ULF_TIME_BUDGET=$budget" "${extra[@]}" \
            "$image" > "$out_root/$name.log" 2>&1; then
        tail -n 30 "$out_root/$name.log" | sed 's/^/    /'
        say "$name: FAIL: the container exited with an error (log: $out_root/$name.log)"
        status=1
        continue
    fi
    say "$name: container ran in $((SECONDS - started)) s; $(grep -E 'time budget: (the run took|.*estimated)' "$out_root/$name.log" | sed 's/^.*time budget: //' | tr '\n' ' ')"
    # the checker reads the same ULF_* output variables the run was given
    env_args=()
    for word in "${extra[@]}"; do [[ "$word" == ULF_OUTPUT_* || "$word" == ULF_SOCKET_* ]] && env_args+=(-e "$word"); done
    if docker run --rm --network none --read-only --entrypoint python "${env_args[@]}" \
            -v "$repo/test/container/check_gc_outputs.py:/check.py:ro" -v "$input:/input:ro" -v "$output:/output:ro" \
            "$image" /check.py /input /output | sed 's/^/    /'; then
        say "$name: ok"
    else
        say "$name: FAIL: outputs (kept in $output)"
        status=1
    fi
done
if [[ $status == 0 && -z "${RUN_CONTAINER_OUT:-}" ]]; then rm -rf "$out_root"; fi
exit $status
