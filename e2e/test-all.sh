#!/usr/bin/env bash
# Every test tier: formatting and lints, unit, golden and property tests.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
