#!/usr/bin/env bash
# Export the inference image for upload (Grand Challenge: "Upload a container image"), and
# the model tarball (Grand Challenge: "Upload a model"; extracted to /opt/ml/model at run
# time, where process.py prefers it to the weights baked into the image).
#
#   ./export.sh                        # both, into ./export/
#   ./export.sh --out DIR --image NAME:TAG
#   ./export.sh --image-only | --model-only
#
# Writes
#   DIR/<image-name>_<YYYY-MM-DD>.tar.gz   docker save <image> | gzip
#   DIR/model_<YYYY-MM-DD>.tar.gz          the contents of weights/ (manifest.json at the top)
#   DIR/SHA256SUMS                         checksums of what was written
# Options:
#   --image NAME:TAG   image to save (default ulf-enc-bridged-diffusion:latest, or $IMAGE)
#   --weights DIR      weights folder for the model tarball (default ./weights)
#   --out DIR          output folder (default ./export)
#   --date YYYY-MM-DD  date in the file names (default today, UTC)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[export] %s\n' "$*" >&2; }
die() { printf '[export] error: %s\n' "$*" >&2; exit 1; }

image="${IMAGE:-ulf-enc-bridged-diffusion:latest}"
weights="$here/weights"
out="$here/export"
day="$(date -u +%Y-%m-%d)"
do_image=1 do_model=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --image) image="${2:?--image needs a name}"; shift 2 ;;
        --image=*) image="${1#*=}"; shift ;;
        --weights) weights="${2:?--weights needs a folder}"; shift 2 ;;
        --weights=*) weights="${1#*=}"; shift ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --date) day="${2:?}"; shift 2 ;;
        --date=*) day="${1#*=}"; shift ;;
        --image-only) do_model=0; shift ;;
        --model-only) do_image=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see ./export.sh --help)" ;;
    esac
done

gzip_cmd=(gzip -c)
command -v pigz >/dev/null 2>&1 && gzip_cmd=(pigz -c)
mkdir -p "$out"
written=()

human() { numfmt --to=iec --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }

if [[ "$do_image" == 1 ]]; then
    command -v docker >/dev/null 2>&1 || die "docker is not installed or not on PATH.
  Install Docker Engine (https://docs.docker.com/engine/install/; Debian/Ubuntu: apt-get install docker.io),
  build the image with ./build.sh, then run ./export.sh again (or use --model-only)."
    docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon. Is it running, and may this user use it?"
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image not found: build it first (./build.sh) or name one with --image"
    user="$(docker image inspect --format '{{.Config.User}}' "$image")"
    [[ -n "$user" && "$user" != root && "$user" != 0 && "$user" != 0:* ]] \
        || die "image $image runs as root (User '${user}'); Grand Challenge requires a non-root user"
    name="${image##*/}"; name="${name%%:*}"; name="${name%%@*}"
    file="$out/${name}_${day}.tar.gz"
    log "docker save $image | ${gzip_cmd[0]} > $file ..."
    t0=$SECONDS
    set -o pipefail
    docker save "$image" | "${gzip_cmd[@]}" > "$file.part"
    mv "$file.part" "$file"
    size=$(stat -c %s "$file")
    log "wrote $file ($(human "$size"), $((SECONDS - t0)) s)"
    if (( size > 10 * 1024 * 1024 * 1024 )); then
        log "warning: larger than Grand Challenge's 10 GB image limit"
    fi
    written+=("$file")
fi

if [[ "$do_model" == 1 ]]; then
    [[ -f "$weights/manifest.json" ]] || die "no manifest.json in $weights: nothing to put in the model tarball"
    if command -v python3 >/dev/null 2>&1; then
        # every file the manifest lists must be there (the image would refuse a partial tarball anyway)
        python3 - "$weights" <<'PY' || die "the weights in $weights are incomplete"
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
m = json.loads((d / "manifest.json").read_text())
missing = [e["file"] for e in m.get("networks", {}).values() if not (d / e["file"]).is_file()]
if missing:
    sys.exit(f"[export] error: listed in manifest.json but missing: {', '.join(missing)}")
PY
    fi
    file="$out/model_${day}.tar.gz"
    log "model tarball from $weights -> $file ..."
    # manifest.json and the .pt files at the top of the tarball: the platform extracts it to /opt/ml/model
    (cd "$weights" && find . -maxdepth 1 -type f ! -name '.*' -printf '%P\n' | LC_ALL=C sort \
        | tar --owner=0 --group=0 --numeric-owner --mode='a+rX,u+w' -cf - -T - ) | "${gzip_cmd[@]}" > "$file.part"
    mv "$file.part" "$file"
    log "wrote $file ($(human "$(stat -c %s "$file")"))"
    written+=("$file")
fi

# SHA256SUMS: lines of the files written now replace their old lines; other lines are kept
sums="$out/SHA256SUMS"
touch "$sums"
for f in "${written[@]}"; do
    name="${f##*/}"
    { grep -vF "  $name" "$sums" || true; (cd "$out" && sha256sum "$name"); } > "$sums.part"
    mv "$sums.part" "$sums"
done
log "checksums in $sums"
printf '%s\n' "${written[@]}"
