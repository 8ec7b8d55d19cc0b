#!/usr/bin/env bash
# The alerts component (deploy/components/alerts) checked by Prometheus's own tool:
#
#   bash e2e/monitoring-check.sh
#
# 1. builds (or reuses) promtool and rulespec (e2e/tools/promtool, from the Go module proxy) and
#    runs rulespec's own tests;
# 2. rulespec writes the PrometheusRule's spec as a plain rules file, and fails unless every alert
#    has a unit test where it fires and one where it stays quiet (e2e/monitoring/alerts.test.yaml);
# 3. `promtool check rules` on that file, `promtool test rules` with the unit tests.
#
# That every metric the dashboard and the alerts query is on a running operator's /metrics is the
# e2e test operator/tests/e2e/monitoring.rs. Exit 1 on any failure, a failed build included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[monitoring-check] %s\n' "$*" >&2; }

tools=$(bash e2e/controlplane.sh build-promtool) || {
  log "FAILED: could not build promtool and rulespec (e2e/tools/promtool) from the Go module proxy"
  exit 1
}
for tool in promtool rulespec; do
  [[ -x $tools/$tool ]] || { log "FAILED: no $tool in $tools"; exit 1; }
done
(cd e2e/tools/promtool && GOTOOLCHAIN=local GOWORK=off GOFLAGS='' CGO_ENABLED=0 go test ./...)

work=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-monitoring.XXXXXX")
trap 'rm -rf "$work"' EXIT
# promtool reads rule_files relative to the unit tests' file: both go side by side.
"$tools/rulespec" deploy/components/alerts/prometheusrule.yaml e2e/monitoring/alerts.test.yaml \
  >"$work/fluxtune.rules.yaml"
cp e2e/monitoring/alerts.test.yaml "$work/"
log "rules of deploy/components/alerts/prometheusrule.yaml: $(grep -c '^ *- alert:' "$work/fluxtune.rules.yaml") alerts"
"$tools/promtool" check rules "$work/fluxtune.rules.yaml"
"$tools/promtool" test rules "$work/alerts.test.yaml"
log "promtool: the rules are valid and every alert's unit tests pass"
