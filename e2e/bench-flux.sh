#!/usr/bin/env bash
# The Flux-in-the-loop benchmark (results: docs/benchmarks.md): a fresh local control plane, deploy/
# applied and its ServiceAccount's token for the operator, the five Flux controllers, the Git host
# and the registry; then `cargo bench --features e2e --bench flux`. Everything stops on exit.
# Not part of CI: it takes about an hour, most of it image-to-deploy with Flux's defaults (a
# 5-minute scan, 10 samples); FLUXTUNE_BENCH_FLUX_DEFAULTS=0 leaves that row out (about 15 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=e2e/throwaway.sh
source e2e/throwaway.sh
throwaway_controlplane bench-flux
throwaway_flux
cargo bench --locked --features e2e --bench flux
