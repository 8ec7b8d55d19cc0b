package main

import (
	"os"
	"strings"
	"testing"
)

// The component's PrometheusRule comes out as its spec: groups first, every alert there.
func TestExtractsTheComponentsRules(t *testing.T) {
	in, err := os.ReadFile("../../../deploy/components/alerts/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := extract(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "groups:\n") {
		t.Errorf("a rules file starts with groups, got:\n%s", out)
	}
	for _, alert := range []string{"FluxProfileNotDelivered", "FluxProfileWebhookFallback",
		"FluxProfileWebhooksMissed", "FluxProfileLatencyOverBudget", "FluxtuneReconcileErrors"} {
		if !strings.Contains(string(out), "alert: "+alert+"\n") {
			t.Errorf("%s missing from:\n%s", alert, out)
		}
	}
	for _, word := range []string{"apiVersion", "PrometheusRule", "metadata", "namespace: fluxtune-system"} {
		if strings.Contains(string(out), word) {
			t.Errorf("%q leaked into the rules file:\n%s", word, out)
		}
	}
}

func TestRefusesWhatIsNotOnePrometheusRule(t *testing.T) {
	const rule = "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\n"
	for name, c := range map[string]struct{ in, want string }{
		"other kind":       {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {groups: []}\n", "want monitoring.coreos.com/v1 PrometheusRule"},
		"unknown field":    {rule + "spec: {groups: []}\nstatus: {}\n", "field status not found"},
		"two documents":    {rule + "spec: {groups: []}\n---\n" + rule, "more than one YAML document"},
		"extra spec field": {rule + "spec: {groups: [], partial_response_strategy: warn}\n", "spec.partial_response_strategy"},
		"no spec":          {rule, "spec is not a mapping"},
		"empty spec":       {rule + "spec: {}\n", "spec has no groups"},
	} {
		_, err := extract([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error containing %q, got %v", name, c.want, err)
		}
	}
}

func TestEveryAlertNeedsAFiringAndAQuietCase(t *testing.T) {
	rules := []byte("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - alert: B\n    expr: up == 1\n  - record: r\n    expr: up\n")
	tests := []byte(`tests:
- alert_rule_test:
  - {eval_time: 1m, alertname: A, exp_alerts: []}
  - {eval_time: 2m, alertname: A, exp_alerts: [{exp_labels: {x: y}}]}
  - {eval_time: 2m, alertname: B, exp_alerts: [{exp_labels: {x: y}}]}
`)
	missing, err := untested(rules, tests)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(missing, ";") != "B: no case where it stays quiet" {
		t.Errorf("got %q", missing)
	}
	missing, _ = untested(rules, []byte("tests: []\n"))
	if len(missing) != 4 {
		t.Errorf("no tests: want A and B missing both cases, got %q", missing)
	}
}

// The component's own unit tests cover every alert both ways.
func TestTheComponentsAlertsAreAllTested(t *testing.T) {
	in, err := os.ReadFile("../../../deploy/components/alerts/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("../../monitoring/alerts.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := extract(in)
	if err != nil {
		t.Fatal(err)
	}
	if missing, err := untested(rules, tests); err != nil || len(missing) > 0 {
		t.Errorf("%v %q", err, missing)
	}
}
