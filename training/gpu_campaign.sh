#!/usr/bin/env bash
# The prepared GPU training run of issue 11, for a session lent a device (an H200 with 16 CPU cores):
# run it once with the device tool, fetch OUT, give the machine back. About 12 minutes:
#   1. prepares training/configs/gpu-10min.toml's 48 randomised subjects on 16 processes (~1.5 min);
#   2. trains the diffusion network and the bridge at once on the one GPU, bfloat16, each stopped by
#      train.time_limit_minutes (MINUTES, default 9);
#   3. exports both into a weights folder, packs it with the logs and metrics as weights.tar.gz and
#      splits that into parts of at most 15 MiB (the device tool returns at most 8 files of 16 MiB).
# On this machine afterwards:
#   mkdir -p runs/gpu-10min && cat OUT/weights.tar.gz.part-* | tar -xz -C runs/gpu-10min   # -> .../weights/
#   python -m bench.denoising_gate --weights runs/gpu-10min/weights
#   training/gpu_campaign.sh OUT          (PYTHON=..., MINUTES=..., SMOKE=1 for a 2-step CPU dry run)
set -uo pipefail
out=${1:?usage: training/gpu_campaign.sh OUT}
py=${PYTHON:-python}
minutes=${MINUTES:-9}
config=training/configs/gpu-10min.toml
runs=runs/gpu-10min
extra=()
if [ -n "${SMOKE:-}" ]; then  # the whole path on a CPU in a few minutes: tiny subjects, tiny networks, 2 steps
    extra=(--set data.subjects=3 --set data.shape_scale=0.3 --set "data.cache='$runs/smoke-cache'" --set data.patch=[64,64,32]
           --set train.steps=2 --set train.batch_size=2 --set "train.precision='float32'" --set data.workers=0
           --set diffusion.network.channel_mult=[1,2,2] --set diffusion.network.num_blocks=[1,1,1]
           --set bridge.network.feature_size=12 --set bridge.network.depths=[1,1,1,1]
           --set bridge.network.num_heads=[1,1,1,1] --set bridge.network.window_size=4)
fi
mkdir -p "$out" "$runs"
step() { echo "== $1 ($(date +%T))"; }

step "device"; nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
step "prepare the subjects on 16 processes"
$py -m training prepare --config "$config" "${extra[@]}" --processes "${PROCESSES:-16}" 2>&1 | tail -n 3 || exit 1
step "train both networks at once, $minutes minutes each"
for kind in diffusion bridge; do
    rm -rf "$runs/$kind"
    $py -m training "$kind" --config "$config" --run-dir "$runs/$kind" "${extra[@]}" \
        --set train.time_limit_minutes="$minutes" > "$runs/$kind.log" 2>&1 &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
tail -n 4 "$runs/diffusion.log" "$runs/bridge.log"
[ "$failed" = 0 ] || { echo "a training run failed (logs above)"; exit 1; }
step "export and pack"
rm -rf "$runs/weights"
$py -m training export --diffusion-run "$runs/diffusion" --bridge-run "$runs/bridge" --out "$runs/weights" || exit 1
tar -C "$runs" -czf "$runs/weights.tar.gz" weights diffusion.log bridge.log diffusion/metrics.jsonl bridge/metrics.jsonl || exit 1
rm -f "$out"/weights.tar.gz.part-*
split -b 15M -d "$runs/weights.tar.gz" "$out/weights.tar.gz.part-"
ls -l "$out"
step "done"
