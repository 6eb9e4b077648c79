#!/usr/bin/env bash
# The organisers' evaluation container, end to end (called by run_container_test.sh; runs alone too):
#   1. evaluation/build.sh on the base image ($BASE_IMAGE, else the local CPU base of docker/make-cpu-base.sh)
#   2. simulated ground truth and submissions (test/container/evaluation_case.py prepare), and the
#      expected numbers from `python -m evaluation` run outside
#   3. the image as the platform runs it (no network, read-only /input and ground truth, non-root) on
#      a local ULF-EnC submission and on a Grand Challenge one (predictions.json): metrics.json equal
#      to the expected numbers (aggregates: per metric {"mean", "std", "count"}, numbers only)
#   4. the Grand Challenge submission again with GRAND_CHALLENGE_MAX_WORKERS=2: subjects scored in two
#      processes, the same metrics.json byte for byte
#   5. a submission with one volume written to two contrasts: rejected (exit 1) by evalutils'
#      UniqueImagesValidator with a message naming the two, and no metrics.json
# Environment: BASE_IMAGE, PYTHON, DOCKER_BUILD_NETWORK (host), EVALUATION_TEST_IMAGE,
# EVALUATION_TEST_WORK (default: a new temporary folder, removed on success), KEEP_WORK=1.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
image="${EVALUATION_TEST_IMAGE:-ulf-enc-evaluation:container-test}"
network="${DOCKER_BUILD_NETWORK:-host}"
passed=0 failed=0
t_start=$SECONDS
say() { printf '[evaluation-test] %s\n' "$*"; }
ok() { passed=$((passed + 1)); say "ok: $*"; }
fail() { failed=$((failed + 1)); say "FAIL: $*"; }
finish() { say "total $((SECONDS - t_start)) s"; echo "evaluation-container-test: $passed passed, $failed failed"; ((failed == 0)); }

work="${EVALUATION_TEST_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/ulf-evaluation-test.XXXXXX")}"
mkdir -p "$work/logs"
cleanup() {
    if [[ "${KEEP_WORK:-0}" != 1 && $failed == 0 && -z "${EVALUATION_TEST_WORK:-}" ]]; then rm -rf "$work"; else say "work folder kept: $work"; fi
}
trap cleanup EXIT

base="${BASE_IMAGE:-}"
if [[ -z "$base" ]]; then
    base="$(docker/make-cpu-base.sh 2>"$work/logs/base.log" | tail -n 1)" || { tail -n 20 "$work/logs/base.log"; fail "no base image"; finish; exit 1; }
elif [[ "$base" == default ]]; then
    base=""
fi
t0=$SECONDS
if evaluation/build.sh --tag "$image" --network "$network" ${base:+--base "$base"} >"$work/logs/build.log" 2>&1; then
    ok "evaluation image $image built in $((SECONDS - t0)) s on ${base:-the default base of the Dockerfile}"
else
    tail -n 40 "$work/logs/build.log" | sed 's/^/    /'; fail "evaluation/build.sh failed"; finish; exit 1
fi
user="$(docker image inspect --format '{{.Config.User}}' "$image")"
[[ -n "$user" && "$user" != root && "$user" != 0 ]] && ok "image user is '$user'" || fail "evaluation image runs as root"

t0=$SECONDS
"$PYTHON" test/container/evaluation_case.py prepare "$work" >"$work/logs/prepare.log" 2>&1 \
    || { tail -n 20 "$work/logs/prepare.log"; fail "could not make the submissions"; finish; exit 1; }
"$PYTHON" -m evaluation --reference "$work/eval_reference" --predictions "$work/eval_reference" --prediction-folder 64mT \
    --out "$work/expected" --no-progress >"$work/logs/expected.log" 2>&1 \
    || { tail -n 20 "$work/logs/expected.log"; fail "python -m evaluation failed outside"; finish; exit 1; }
say "submissions and expected numbers in $((SECONDS - t0)) s (subjects: $(tail -n 1 "$work/logs/prepare.log"))"
chmod -R a+rX "$work/eval_reference" "$work/eval_ulf" "$work/eval_gc" "$work/eval_duplicate"

evaluate() {  # evaluate NAME SUBMISSION [DOCKER_RUN_ARGS...]: run the image on it; output in $work/out_NAME, log in logs/NAME.log
    local name="$1" submission="$2" t0=$SECONDS rc=0
    shift 2
    mkdir -p "$work/out_$name"; chmod 0777 "$work/out_$name"
    timeout -k 30 900 docker run --rm --init --network none --memory 4g --pids-limit 128 --cap-drop ALL \
        --security-opt no-new-privileges --read-only --tmpfs /tmp:rw,nosuid,nodev,size=512m "$@" \
        -v "$submission:/input:ro" -v "$work/eval_reference:/opt/ml/input/data/ground_truth:ro" \
        -v "$work/out_$name:/output:rw" "$image" >"$work/logs/$name.log" 2>&1 || rc=$?
    say "$name: exit $rc in $((SECONDS - t0)) s: $(tail -n 1 "$work/logs/$name.log")"
    return $rc
}
for name in ulf gc; do
    if evaluate "$name" "$work/eval_$name" && [[ -f "$work/out_$name/metrics.json" ]] \
            && "$PYTHON" test/container/evaluation_case.py compare "$work/out_$name/metrics.json" "$work/expected/summary.json" \
            >"$work/logs/compare-$name.log" 2>&1; then
        ok "$name submission scored in the container: metrics.json equals python -m evaluation outside"
    else
        sed 's/^/    /' "$work/logs/$name.log" | tail -n 20; cat "$work/logs/compare-$name.log" 2>/dev/null || true
        fail "$name submission: no metrics.json or different numbers"
    fi
done
if evaluate gc_workers "$work/eval_gc" -e GRAND_CHALLENGE_MAX_WORKERS=2 \
        && cmp -s "$work/out_gc/metrics.json" "$work/out_gc_workers/metrics.json" \
        && ! grep -q "worker processes could not run" "$work/logs/gc_workers.log"; then
    ok "GRAND_CHALLENGE_MAX_WORKERS=2: two scoring processes, the same metrics.json as one"
else
    sed 's/^/    /' "$work/logs/gc_workers.log" | tail -n 20; fail "GRAND_CHALLENGE_MAX_WORKERS=2: no metrics.json, a different one, or no worker processes"
fi
if evaluate duplicate "$work/eval_duplicate"; then
    fail "a submission with a duplicated volume was accepted"
elif grep -q "^submission rejected: volumes: The images are not unique.*(identical: .* T1 = .* T2)" "$work/logs/duplicate.log" \
        && [[ ! -e "$work/out_duplicate/metrics.json" ]]; then
    ok "duplicated volume rejected by evalutils' UniqueImagesValidator, no metrics.json"
else
    sed 's/^/    /' "$work/logs/duplicate.log" | tail -n 20; fail "duplicated volume: not the expected rejection"
fi
finish
