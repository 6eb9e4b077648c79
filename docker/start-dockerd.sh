#!/usr/bin/env bash
# Start a Docker daemon where none runs and no service manager starts one (CI machines,
# containers, VMs without systemd). Tries the overlay2 storage driver first (fast; needs a
# backing filesystem such as ext4 or xfs), then vfs (works anywhere, but copies every layer
# in full: builds are several times slower). No iptables, no default bridge: builds use
# --network host, containers --network none.
#
#   docker/start-dockerd.sh          # prints the daemon's pid; returns once it answers
#
# Environment: DOCKERD_STORAGE_DRIVERS (default "overlay2 vfs"), DOCKERD_LOG (default
# /var/log/ulf-dockerd.log), DOCKERD_PIDFILE (default /run/ulf-dockerd.pid).
set -euo pipefail
log() { printf '[dockerd] %s\n' "$*" >&2; }
die() { printf '[dockerd] error: %s\n' "$*" >&2; exit 1; }

if docker info >/dev/null 2>&1; then
    log "a Docker daemon is already running (storage driver $(docker info --format '{{.Driver}}'))"
    exit 0
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (Debian: apt-get install docker.io)"
[[ "$(id -u)" == 0 ]] || die "starting dockerd needs root"
logfile="${DOCKERD_LOG:-/var/log/ulf-dockerd.log}"
pidfile="${DOCKERD_PIDFILE:-/run/ulf-dockerd.pid}"
for driver in ${DOCKERD_STORAGE_DRIVERS:-overlay2 vfs}; do
    log "starting dockerd --storage-driver=$driver (log $logfile)"
    nohup dockerd --storage-driver="$driver" --iptables=false --bridge=none --pidfile="$pidfile.dockerd" \
        >>"$logfile" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            echo "$pid" > "$pidfile"
            log "dockerd is up (pid $pid, storage driver $driver)"
            echo "$pid"
            exit 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    log "dockerd with $driver did not come up; last log lines:"
    tail -n 5 "$logfile" >&2 || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$pidfile.dockerd"
done
die "could not start dockerd (see $logfile)"
