#!/usr/bin/env bash
# Every GPU measurement of issues 6 and 12 in one prepared run (docs/speed.md, "On a GPU"), for a session
# lent a device: run it once, fetch OUT_DIR, give the machine back. Each step writes its own file,
# so a run cut short still returns what it finished (the issue-12 steps come first). Budget on an H100:
# about 12 minutes.
#   bench/gpu_session.sh OUT_DIR        (PYTHON=... to choose the interpreter)
set -uo pipefail
out=${1:?usage: bench/gpu_session.sh OUT_DIR}
py=${PYTHON:-python}
mkdir -p "$out"
step() { echo "== $1 ($(date +%T))"; }

step "device"; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv | tee "$out/gpu.csv"
step "presets x precisions on the whole demo head (time, peak memory, score); the planner under 60 s and 300 s budgets"
$py -m bench.time_budget --device cuda --presets cpu fast --precisions float32 bfloat16 float16 --planned paper \
    --budgets 60 300 --json "$out/time_budget.json" > "$out/time_budget.md" 2> "$out/time_budget.log"
cat "$out/time_budget.md"
step "fast vs paper on crops (2 held-out subjects, the CPU curve's crop)"
$py -m bench.quality --device cuda --subjects 2 --crop 128 160 64 --configurations "identity (input as output)" fast paper \
    --out "$out/fast_vs_paper" > "$out/fast_vs_paper.txt" 2>&1
cat "$out/fast_vs_paper/quality.md" 2>/dev/null || tail -n 20 "$out/fast_vs_paper.txt"
step "matmul peak (float32 with TF32 off, bfloat16)"
$py -m bench.peak --device cuda > "$out/peak.json"; cat "$out/peak.json"
step "memory of the paper-size networks, one batch of 4 windows"
$py -m bench.memory_probe --paper-networks --device cuda > "$out/memory_paper_cuda.json"; cat "$out/memory_paper_cuda.json"
step "engines on the full head, shipped weights"
$py -m bench --device cuda --full-volume --json "$out/bench_shipped.json" > "$out/bench_shipped.txt" 2>&1
tail -n 15 "$out/bench_shipped.txt"
step "engines on the full head, paper-size networks (random weights: time and memory only)"
$py -m bench.scratch_weights "$out/paper_size_weights" --paper-size > /dev/null
$py -m bench --device cuda --full-volume --weights "$out/paper_size_weights" --json "$out/bench_paper_size.json" \
    > "$out/bench_paper_size.txt" 2>&1
tail -n 15 "$out/bench_paper_size.txt"
rm -rf "$out/paper_size_weights"
step "quality-time curve, shipped weights, 2 held-out subjects, the CPU curve's crop (paper last; runs over 180 s skipped)"
$py -m bench.quality --device cuda --subjects 2 --crop 128 160 64 --max-run-seconds 180 --bench-json "$out/bench_shipped.json" \
    --out "$out/quality" > "$out/quality.txt" 2>&1
cat "$out/quality/quality.md" 2>/dev/null || tail -n 20 "$out/quality.txt"
step "done"
