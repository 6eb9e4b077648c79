#!/bin/sh
# Entry point of the training image: torchrun around `python -m training`, every argument
# passed on to the training module.
#   NPROC_PER_NODE  worker processes on this node (default: visible GPUs, at least 1)
#   TORCHRUN_ARGS   replaces the single-node defaults (--standalone --nnodes=1
#                   --local-addr=127.0.0.1: the rendezvous stays on the loopback, so it also
#                   works under --network none, where the container's hostname resolves to
#                   no reachable address), for multi-node runs:
#                   "--nnodes=2 --node-rank=0 --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT"
set -eu
nproc="${NPROC_PER_NODE:-}"
if [ -z "$nproc" ]; then
    nproc="$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))' 2>/dev/null || echo 1)"
fi
# shellcheck disable=SC2086
exec torchrun ${TORCHRUN_ARGS:---standalone --nnodes=1 --local-addr=127.0.0.1} --nproc-per-node="$nproc" -m training "$@"
