#!/usr/bin/env bash
# Installs what is missing, then boots a VM (QEMU TCG, u-root initramfs)
# sharing a demo directory over virtio-fs and runs a demo guest Go program
# that reads and writes it through this library. Arguments go to
# `govirtiofs run` (see its -help).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/deps.sh
exec go run ./cmd/govirtiofs run "$@"
