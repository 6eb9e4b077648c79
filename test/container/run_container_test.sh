#!/usr/bin/env bash
# Container test (make container-test): builds the inference and training images, runs the
# inference image the way Grand Challenge does on a small case, in both input layouts, and
# checks the results against process.py run outside the container on the same case.
#
# Not part of the pytest suite: it needs a Docker daemon and takes minutes.
#
# Steps
#   1. base image: $BASE_IMAGE, or (unset) a local CPU base made by docker/make-cpu-base.sh
#      (cached between runs); BASE_IMAGE=default uses the Dockerfile's CUDA default
#   2. ./build.sh: the inference image; image checks (non-root user, nothing in /tmp, --help)
#   3. the training image (./build.sh --training-only) and its --help
#   4. a small case (test/container/container_case.py prepare), model tarball (./export.sh --model-only)
#   5. process.py outside the container on both layouts (the reference)
#   6. the image, Grand Challenge mode (no input options; /input read-only, the model tarball
#      extracted at /opt/ml/model), then the ULF-EnC layout (--input /input --output /output),
#      each with --network none, a memory limit, --shm-size, --pids-limit, --cap-drop ALL,
#      --security-opt no-new-privileges, a read-only root and a /tmp tmpfs, --gpus all only
#      when the host has an NVIDIA runtime
#   7. checks: three outputs per case, geometry identical to the inputs, finite values, written
#      by a non-root user, equal to the reference within CONTAINER_TEST_RTOL
#   8. test/run-container.sh: the image on the committed test input (test/input/), as the platform runs it
#   9. the organisers' evaluation image (test/container/run_evaluation_container_test.sh;
#      CONTAINER_TEST_EVALUATION=0 leaves it out)
#
# Environment (all optional)
#   BASE_IMAGE              base image (see 1)
#   PYTHON                  Python for the reference run and the checks (default .venv/bin/python, else python3)
#   DOCKER_BUILD_NETWORK    network for docker build's RUN steps (default host: needed where the
#                           default bridge network is off, harmless elsewhere)
#   CONTAINER_TEST_IMAGE / CONTAINER_TEST_TRAINING_IMAGE   image tags
#   CONTAINER_TEST_MEMORY (8g), CONTAINER_TEST_SHM (1g), CONTAINER_TEST_PIDS (128),
#   CONTAINER_TEST_TMPFS_SIZE (2g)                       the platform-like limits
#   CONTAINER_TEST_SIZE ("136 120 32")  case size in voxels (x y z); CONTAINER_TEST_SOURCE
#                           (auto|simulation|synthetic); CONTAINER_TEST_PRESET (smoke);
#                           CONTAINER_TEST_MODE (full); CONTAINER_TEST_SEED (0);
#                           CONTAINER_TEST_DEVICE (cpu); CONTAINER_TEST_RTOL (1e-3)
#   CONTAINER_TEST_GPUS     1/0 forces --gpus all on/off (default: detected)
#   CONTAINER_TEST_TIMEOUT  seconds per container or reference run (default 1800)
#   CONTAINER_TEST_EXPORT_IMAGE=1   also run ./export.sh on the image (docker save | gzip)
#   CONTAINER_TEST_WORK     work folder (default: a new temporary folder, removed on success)
#   KEEP_WORK=1             keep the work folder
# shellcheck disable=SC2015  # ok() always succeeds, so "A && ok || fail" is if-then-else here
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
image="${CONTAINER_TEST_IMAGE:-ulf-enc-bridged-diffusion:container-test}"
training_image="${CONTAINER_TEST_TRAINING_IMAGE:-ulf-enc-bridged-diffusion-training:container-test}"
network="${DOCKER_BUILD_NETWORK:-host}"
memory="${CONTAINER_TEST_MEMORY:-8g}"
shm="${CONTAINER_TEST_SHM:-1g}"
pids="${CONTAINER_TEST_PIDS:-128}"
tmpfs_size="${CONTAINER_TEST_TMPFS_SIZE:-2g}"
read -r -a size <<< "${CONTAINER_TEST_SIZE:-136 120 32}"
source_kind="${CONTAINER_TEST_SOURCE:-auto}"
preset="${CONTAINER_TEST_PRESET:-smoke}"
mode="${CONTAINER_TEST_MODE:-full}"
seed="${CONTAINER_TEST_SEED:-0}"
device="${CONTAINER_TEST_DEVICE:-cpu}"
rtol="${CONTAINER_TEST_RTOL:-1e-3}"
run_timeout="${CONTAINER_TEST_TIMEOUT:-1800}"
# The smoke preset (K = 2) lies outside the shipped bridge's trained timesteps: a plumbing test forces it.
# float32: the outputs are compared with process.py outside, on another torch build, to rtol; bfloat16 kernels of
# two oneDNN releases need not agree that closely (the image's own default, bfloat16 where the CPU has it, runs
# in section 8 on the committed test input).
options=(--preset "$preset" --mode "$mode" --seed "$seed" --device "$device" --allow-untrained-levels --precision float32)

passed=0 failed=0
failures=()
timings=()
t_start=$SECONDS
say() { printf '[container-test] %s\n' "$*"; }
ok() { passed=$((passed + 1)); say "ok: $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); say "FAIL: $*"; }
timed() {  # timed LABEL CMD... : run, record the duration
    local label="$1" t0=$SECONDS rc=0
    shift
    "$@" || rc=$?
    timings+=("$(printf '%-44s %5d s' "$label" $((SECONDS - t0)))")
    return $rc
}
summary() {
    say "step times:"
    local line
    for line in "${timings[@]}"; do say "  $line"; done
    say "  $(printf '%-44s %5d s' total $((SECONDS - t_start)))"
    if ((failed)); then
        say "failures:"
        local f
        for f in "${failures[@]}"; do say "  - $f"; done
    fi
    echo "container-test: $passed passed, $failed failed"
}
abort() {  # a step that later steps depend on failed
    fail "$*"
    summary
    exit 1
}

# ---------------------------------------------------------------- preflight
command -v docker >/dev/null 2>&1 || abort "docker is not installed (Debian: apt-get install docker.io; see docs/container.md)"
docker info >/dev/null 2>&1 || abort "cannot reach the Docker daemon (start dockerd; see docs/container.md)"
"$PYTHON" -c 'import SimpleITK, numpy' 2>/dev/null || abort "$PYTHON lacks SimpleITK/numpy (set PYTHON, or make the .venv)"
[[ -f weights/manifest.json ]] || abort "weights/manifest.json is missing: the image would have no weights"

work="${CONTAINER_TEST_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/ulf-container-test.XXXXXX")}"
mkdir -p "$work/logs"
containers=()
cleanup() {
    local c
    for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    if [[ "${KEEP_WORK:-0}" != 1 && $failed == 0 && -z "${CONTAINER_TEST_WORK:-}" ]]; then
        rm -rf "$work"
    else
        say "work folder kept: $work"
    fi
}
trap cleanup EXIT
show_log() { say "last lines of $1:"; tail -n "${2:-40}" "$1" | sed 's/^/    /'; }

gpu_args=()
if [[ "${CONTAINER_TEST_GPUS:-auto}" == 1 ]]; then
    gpu_args=(--gpus all)
elif [[ "${CONTAINER_TEST_GPUS:-auto}" == auto ]] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    # an NVIDIA runtime: registered with the daemon, or the container toolkit's hook that --gpus uses
    if docker info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}' 2>/dev/null | grep -qw nvidia \
        || command -v nvidia-container-runtime-hook >/dev/null 2>&1 || command -v nvidia-container-cli >/dev/null 2>&1; then
        gpu_args=(--gpus all)
    fi
fi
say "repo $repo, work $work, python $PYTHON, gpus: ${gpu_args[*]:-none}"

# ---------------------------------------------------------------- 1. base image
base="${BASE_IMAGE:-}"
if [[ -z "$base" ]]; then
    timed "base image (docker/make-cpu-base.sh)" docker/make-cpu-base.sh >"$work/logs/base.out" 2>"$work/logs/base.log" \
        || { show_log "$work/logs/base.log"; abort "could not make the local CPU base image"; }
    base="$(tail -n 1 "$work/logs/base.out")"
    sed 's/^/    /' "$work/logs/base.log"
elif [[ "$base" == default ]]; then
    base=""
fi
say "base image: ${base:-the default of the Dockerfile}"

# ---------------------------------------------------------------- 2. inference image
build_args=(--tag "$image" --network "$network")
[[ -n "$base" ]] && build_args+=(--base "$base")
if timed "build inference image" ./build.sh "${build_args[@]}" >"$work/logs/build.log" 2>&1; then
    ok "inference image $image built"
else
    show_log "$work/logs/build.log" 60
    abort "./build.sh failed"
fi

user="$(docker image inspect --format '{{.Config.User}}' "$image")"
[[ -n "$user" && "$user" != root && "$user" != 0 && "$user" != 0:* ]] \
    && ok "image user is '$user'" || fail "image runs as root (Config.User '$user')"
uid="$(docker run --rm --network none --entrypoint id "$image" -u 2>&1 || true)"
[[ "$uid" =~ ^[0-9]+$ && "$uid" != 0 ]] && ok "process uid inside the image is $uid" || fail "uid inside the image: '$uid'"
entry="$(docker image inspect --format '{{json .Config.Entrypoint}}' "$image")"
[[ "$entry" == *process.py* ]] && ok "entry point $entry" || fail "entry point is $entry, not process.py"
in_tmp="$(docker run --rm --network none --entrypoint find "$image" /tmp /var/tmp -mindepth 1 2>&1 || true)"
[[ -z "$in_tmp" ]] && ok "nothing in /tmp or /var/tmp in the image" || fail "the image has files in /tmp or /var/tmp: $(echo "$in_tmp" | head -n 5 | tr '\n' ' ')"
baked="$(docker run --rm --network none --entrypoint ls "$image" /opt/app/weights 2>&1 || true)"
[[ "$baked" == *manifest.json* ]] && ok "weights baked in at /opt/app/weights" || fail "no /opt/app/weights/manifest.json in the image"
if timed "image --help" docker run --rm --network none "$image" --help >"$work/logs/help.log" 2>&1; then
    ok "process.py --help runs in the image"
else
    show_log "$work/logs/help.log"; fail "process.py --help fails in the image"
fi
bytes="$(docker image inspect --format '{{.Size}}' "$image")"
say "image size: $((bytes / 1024 / 1024)) MiB"
((bytes < 10 * 1024 * 1024 * 1024)) && ok "image smaller than 10 GB" || fail "image is $((bytes / 1024 / 1024)) MiB: over Grand Challenge's 10 GB"
if ((${#gpu_args[@]})); then
    if docker run --rm --network none "${gpu_args[@]}" --entrypoint python "$image" \
        -c 'import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))' >"$work/logs/cuda.log" 2>&1; then
        ok "CUDA visible in the image: $(tail -n 1 "$work/logs/cuda.log")"
    else
        show_log "$work/logs/cuda.log"; fail "CUDA not usable in the image with ${gpu_args[*]}"
    fi
fi

# ---------------------------------------------------------------- 3. training image
if [[ -f training/Dockerfile ]]; then
    targs=(--training-only --training-tag "$training_image" --network "$network")
    [[ -n "$base" ]] && targs+=(--base "$base")
    if timed "build training image" ./build.sh "${targs[@]}" >"$work/logs/build-training.log" 2>&1; then
        ok "training image $training_image built"
        if [[ -d simulation ]]; then
            docker run --rm --network none --entrypoint python "$training_image" -c \
                'import importlib.util, sys; sys.exit(importlib.util.find_spec("nilearn") is None)' \
                && ok "training image has nilearn (the simulator's anatomy template)" \
                || fail "training image lacks nilearn, which the simulator needs (training/requirements.txt)"
        fi
        if [[ -f training/__main__.py ]]; then
            if timed "training image --help" timeout -k 10 300 docker run --rm --network none --cap-drop ALL --security-opt no-new-privileges \
                "$training_image" --help >"$work/logs/training-help.log" 2>&1; then
                ok "training image: torchrun -m training --help"
            else
                show_log "$work/logs/training-help.log"; fail "training image --help failed"
            fi
        else
            say "training/__main__.py does not exist yet: checking torchrun alone instead of --help"
            timeout -k 10 300 docker run --rm --network none --entrypoint torchrun "$training_image" --help >"$work/logs/training-help.log" 2>&1 \
                && ok "training image: torchrun --help (training entry point not written yet)" \
                || { show_log "$work/logs/training-help.log"; fail "torchrun does not run in the training image"; }
        fi
    else
        show_log "$work/logs/build-training.log" 60; fail "training image build failed"
    fi
fi

# old, now untagged builds of these images (earlier runs) only take disk space
for title in ulf-enc-bridged-diffusion ulf-enc-bridged-diffusion-training; do
    docker image prune -f --filter "label=org.opencontainers.image.title=$title" >/dev/null 2>&1 || true
done

# ---------------------------------------------------------------- 4. test case, model tarball
if timed "make the test case" "$PYTHON" test/container/container_case.py prepare "$work" \
        --size "${size[@]}" --source "$source_kind" >"$work/logs/case.log" 2>&1; then
    say "case: $(tail -n 1 "$work/logs/case.log")"
else
    show_log "$work/logs/case.log"; abort "could not make the test case"
fi
if ./export.sh --model-only --out "$work/export" >"$work/logs/export-model.log" 2>&1; then
    mkdir -p "$work/opt_ml_model"
    tar -xzf "$work/export"/model_*.tar.gz -C "$work/opt_ml_model"
    [[ -f "$work/opt_ml_model/manifest.json" ]] \
        && ok "model tarball has manifest.json at its top" || fail "model tarball lacks a top-level manifest.json"
    chmod -R a+rX "$work/opt_ml_model"
else
    show_log "$work/logs/export-model.log"; fail "./export.sh --model-only failed"
fi
if [[ "${CONTAINER_TEST_EXPORT_IMAGE:-0}" == 1 ]]; then
    if timed "export image (docker save | gzip)" ./export.sh --image-only --image "$image" --out "$work/export" \
            >"$work/logs/export-image.log" 2>&1; then
        ok "image exported: $(grep -o 'wrote .*' "$work/logs/export-image.log" | head -n 1)"
    else
        show_log "$work/logs/export-image.log"; fail "./export.sh --image-only failed"
    fi
fi

# ---------------------------------------------------------------- 5. reference: process.py outside
# The Grand Challenge runs are configured through the environment alone, as an organiser would without
# rebuilding: the sampler options (ULF_PRESET, ...), one output socket renamed (ULF_OUTPUT_SOCKET_T2) and
# one output interface whose relative_path differs from its slug (ULF_OUTPUT_PATH_FLAIR); the image's
# default time budget (ULF_TIME_BUDGET) is given to the reference run too, so both plan alike.
gc_env=(ULF_OUTPUT_SOCKET_T2=enhanced-t2-brain-mri-renamed ULF_OUTPUT_PATH_FLAIR=images/pseudo-3t/flair
        ULF_PRESET="$preset" ULF_MODE="$mode" ULF_SEED="$seed" ULF_DEVICE="$device" ULF_TIME_BUDGET=960
        ULF_ALLOW_UNTRAINED_LEVELS=1 ULF_PRECISION=float32)
layout_env() { if [[ "$1" == gc ]]; then echo "${gc_env[@]}"; fi; }
for layout in gc ulf; do
    # shellcheck disable=SC2046
    layout_options=("${options[@]}")
    [[ "$layout" == gc ]] && layout_options=()   # the environment says it all
    if timed "process.py outside ($layout)" env $(layout_env "$layout") timeout "$run_timeout" "$PYTHON" process.py --input "$work/${layout}_in" \
            --output "$work/ref_$layout" --weights weights "${layout_options[@]}" >"$work/logs/ref-$layout.log" 2>&1; then
        say "reference ($layout): $(grep -E 'done in|wrote' "$work/logs/ref-$layout.log" | tail -n 1)"
    else
        show_log "$work/logs/ref-$layout.log"; fail "process.py outside the container failed ($layout layout)"
    fi
done

# ---------------------------------------------------------------- 6. the image, as the platform runs it
platform_args=(
    --rm --init
    --network none
    --memory "$memory" --memory-swap "$memory"
    --shm-size "$shm"
    --pids-limit "$pids"
    --cap-drop ALL
    --security-opt no-new-privileges
    --read-only --tmpfs "/tmp:rw,exec,nosuid,nodev,size=$tmpfs_size"
    "${gpu_args[@]}"
)
run_image() {  # run_image LAYOUT [extra docker args...] -- [process.py args...]
    local layout="$1"; shift
    local docker_extra=()
    while [[ $# -gt 0 && "$1" != -- ]]; do docker_extra+=("$1"); shift; done
    shift
    local name="ulf-container-test-$$-$layout"
    containers+=("$name")
    mkdir -p "$work/out_$layout"
    chmod 0777 "$work/out_$layout"   # the image's user (not root) writes here
    say "docker run ${platform_args[*]} -v $work/${layout}_in:/input:ro -v $work/out_$layout:/output ${docker_extra[*]} $image $*"
    timeout -k 30 "$run_timeout" docker run --name "$name" "${platform_args[@]}" \
        -v "$work/${layout}_in:/input:ro" -v "$work/out_$layout:/output:rw" "${docker_extra[@]}" "$image" "$@" \
        >"$work/logs/run-$layout.log" 2>&1
}
gc_docker_env=()
for assignment in "${gc_env[@]}"; do gc_docker_env+=(-e "$assignment"); done
if timed "image, Grand Challenge mode" run_image gc -v "$work/opt_ml_model:/opt/ml/model:ro" "${gc_docker_env[@]}" --; then
    ok "container run, Grand Challenge layout (no options: the environment, ${gc_env[*]}; model tarball at /opt/ml/model)"
    grep -q "time budget: .*estimated" "$work/logs/run-gc.log" && ok "the run planned itself to its time budget: $(grep -o 'time budget: .*estimated.*' "$work/logs/run-gc.log" | head -n 1)" \
        || fail "no time-budget plan in the Grand Challenge run's log"
    grep -q "/opt/ml/model" "$work/logs/run-gc.log" && say "  (it logged using /opt/ml/model)"
else
    show_log "$work/logs/run-gc.log"; fail "container run failed (Grand Challenge layout)"
fi
if timed "image, ULF-EnC layout" run_image ulf -- --input /input --output /output "${options[@]}"; then
    ok "container run, ULF-EnC layout (baked-in weights)"
else
    show_log "$work/logs/run-ulf.log"; fail "container run failed (ULF-EnC layout)"
fi

# ---------------------------------------------------------------- 7. checks
for layout in gc ulf; do
    # shellcheck disable=SC2046
    if env $(layout_env "$layout") "$PYTHON" test/container/container_case.py check "$work" --layout "$layout" --outputs "$work/out_$layout" \
            --reference "$work/ref_$layout" --rtol "$rtol" --result "$work/logs/check-$layout.json"; then
        ok "outputs ($layout): three files, input geometry, finite, non-root, equal to process.py outside"
    else
        fail "output checks ($layout): $("$PYTHON" -c 'import json,sys; print("; ".join(json.load(open(sys.argv[1]))["failures"]))' "$work/logs/check-$layout.json" 2>/dev/null || echo see above)"
    fi
done

# ---------------------------------------------------------------- 8. the committed test input, as an organiser runs it
if timed "test/run-container.sh (committed test input)" test/run-container.sh "$image" >"$work/logs/run-container.log" 2>&1; then
    ok "test/run-container.sh on test/input: $(grep -c ': ok$' "$work/logs/run-container.log") interface folder(s) ok"
    sed 's/^/    /' "$work/logs/run-container.log"
else
    show_log "$work/logs/run-container.log"; fail "test/run-container.sh failed on the committed test input"
fi

# ---------------------------------------------------------------- 9. the organisers' evaluation image
# A script of its own (test/container/run_evaluation_container_test.sh): evalutils validation and
# scoring of simulated submissions (local and predictions.json), a duplicated volume rejected.
if [[ "${CONTAINER_TEST_EVALUATION:-1}" == 1 ]]; then
    if timed "evaluation image (build, 3 runs)" env BASE_IMAGE="${base:-default}" PYTHON="$PYTHON" DOCKER_BUILD_NETWORK="$network" \
            EVALUATION_TEST_WORK="$work/evaluation" test/container/run_evaluation_container_test.sh >"$work/logs/evaluation.log" 2>&1; then
        ok "evaluation image: $(grep -c '\] ok: ' "$work/logs/evaluation.log") checks passed"
    else
        sed 's/^/    /' "$work/logs/evaluation.log" | tail -n 30
        fail "evaluation image: $(grep '\] FAIL: ' "$work/logs/evaluation.log" | sed 's/.*FAIL: //' | paste -sd ';' -)"
    fi
    grep -E '\] (ok|FAIL|[a-z]+: exit)' "$work/logs/evaluation.log" | sed 's/^/    /' || true
fi

summary
((failed == 0))
