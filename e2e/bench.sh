#!/usr/bin/env bash
# The operator benchmark on a fresh local control plane (results: docs/benchmarks.md); the
# operator runs as deploy/'s ServiceAccount, as in the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=e2e/throwaway.sh
source e2e/throwaway.sh
throwaway_controlplane bench
cargo bench --locked --features e2e --bench operator
