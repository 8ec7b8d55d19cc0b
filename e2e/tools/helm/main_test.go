package main

import (
	"fmt"
	"strings"
	"testing"
)

// What kustomize renders for a small deploy/: the names, labels and selectors of the real one.
const base = `
apiVersion: v1
kind: Namespace
metadata:
  name: fluxtune-system
  labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/part-of: fluxtune}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fluxprofiles.fluxtune.dev
  labels: {app.kubernetes.io/part-of: fluxtune}
  annotations: {kustomize.toolkit.fluxcd.io/prune: disabled}
spec: {group: fluxtune.dev}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: fluxtune
  labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/part-of: fluxtune}
rules:
  - apiGroups: ["fluxtune.dev"]
    resources: ["fluxprofiles"]
    verbs: ["list", "watch"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: fluxtune
  namespace: fluxtune-system
  labels: {app.kubernetes.io/part-of: fluxtune}
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app.kubernetes.io/name: fluxtune}
---
apiVersion: v1
kind: Service
metadata:
  name: fluxtune-metrics
  namespace: fluxtune-system
  labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/part-of: fluxtune}
spec:
  selector: {app.kubernetes.io/name: fluxtune}
  ports: [{name: http, port: 8080, targetPort: http, protocol: TCP}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxtune
  namespace: fluxtune-system
  labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/part-of: fluxtune}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: fluxtune}
  template:
    metadata:
      labels: {app.kubernetes.io/name: fluxtune}
    spec:
      containers:
        - name: fluxtune
          args: [run, --log-format, json]
          ports: [{name: http, containerPort: 8080, protocol: TCP}]
`

// What the chart renders for it with the release "fluxtune": only by-design differences.
var chart = strings.ReplaceAll(chartTemplate, "LABELS", `{helm.sh/chart: fluxtune-0.1.0, app.kubernetes.io/name: fluxtune,
    app.kubernetes.io/instance: fluxtune, app.kubernetes.io/version: "v0.1.0", app.kubernetes.io/managed-by: Helm,
    app.kubernetes.io/part-of: fluxtune}`)

const chartTemplate = `
# Source: fluxtune/templates/x.yaml
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fluxprofiles.fluxtune.dev
spec: {group: fluxtune.dev}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: fluxtune
  labels: LABELS
rules:
  - apiGroups: ["fluxtune.dev"]
    resources: ["fluxprofiles"]
    verbs: ["list", "watch"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: fluxtune
  namespace: fluxtune-system
  labels: LABELS
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune}
---
apiVersion: v1
kind: Service
metadata:
  name: fluxtune-metrics
  namespace: fluxtune-system
  labels: LABELS
spec:
  selector: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune}
  ports: [{name: http, port: 8080, targetPort: http, protocol: TCP}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxtune
  namespace: fluxtune-system
  labels: LABELS
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune}
  template:
    metadata:
      labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune}
    spec:
      containers:
        - name: fluxtune
          args: [run, --log-format, json]
          ports: [{name: http, containerPort: 8080, protocol: TCP}]
`

func compare(t *testing.T, baseYAML, chartYAML, release string) *Result {
	t.Helper()
	b, err := Parse(strings.NewReader(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	h, err := Parse(strings.NewReader(chartYAML))
	if err != nil {
		t.Fatal(err)
	}
	return Compare(b, h, release)
}

func TestByDesignOnly(t *testing.T) {
	r := compare(t, base, chart, "fluxtune")
	if len(r.Diffs) > 0 {
		t.Fatalf("unexpected differences:\n%s", strings.Join(r.Diffs, "\n"))
	}
	if r.Agreed != 5 {
		t.Errorf("agreed on %d objects, want 5", r.Agreed)
	}
	// Every rule is met by this pair, so each is exercised.
	if got := len(r.Allowed()); got != len(rules) {
		t.Errorf("%d rules used, want all %d:\n%s", got, len(rules), strings.Join(r.Allowed(), "\n"))
	}
}

// Each mistake the chart could make, and the line that must name it.
func TestEachDifferenceIsFound(t *testing.T) {
	cases := []struct {
		name, old, new, release, want string
	}{
		{"a changed argument", "args: [run, --log-format, json]", "args: [run, --log-format, text]", "fluxtune",
			"Deployment fluxtune-system/fluxtune: spec.template.spec.containers[0].args[2]: deploy/ json, chart text"},
		{"an extra argument", "args: [run, --log-format, json]", "args: [run, --log-format, json, --namespace, x]", "fluxtune",
			"Deployment fluxtune-system/fluxtune: spec.template.spec.containers[0].args: deploy/ has 3 items, the chart 5"},
		{"a changed port", "containerPort: 8080", "containerPort: 9090", "fluxtune",
			"spec.template.spec.containers[0].ports[0].containerPort: deploy/ 8080, chart 9090"},
		{"an extra verb", `verbs: ["list", "watch"]`, `verbs: ["list", "watch", "get"]`, "fluxtune",
			"ClusterRole fluxtune: rules[0].verbs: deploy/ has 2 items, the chart 3"},
		{"a renamed object", "name: fluxtune-metrics", "name: metrics", "fluxtune",
			"Service fluxtune-system/fluxtune-metrics: in deploy/, not rendered by the chart"},
		{"a field deploy/ does not set", "replicas: 2", "replicas: 2\n  paused: true", "fluxtune",
			`Deployment fluxtune-system/fluxtune: spec.paused: in the chart (true), not in deploy/`},
		{"a selector with another label", "selector: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune}",
			"selector: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune, tier: x}", "fluxtune",
			`Service fluxtune-system/fluxtune-metrics: spec.selector.tier: in the chart (x), not in deploy/`},
		{"the release label with another release", "", "", "other",
			`Deployment fluxtune-system/fluxtune: metadata.labels["app.kubernetes.io/instance"]: in the chart (fluxtune), not in deploy/`},
		{"Helm's label on a field that is not metadata.labels", "labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune}\n    spec:",
			"labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune, app.kubernetes.io/managed-by: Helm}\n    spec:", "fluxtune",
			`spec.template.metadata.labels["app.kubernetes.io/managed-by"]: in the chart (Helm), not in deploy/`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			modified := chart
			if tc.old != "" {
				if !strings.Contains(chart, tc.old) {
					t.Fatalf("the chart has no %q", tc.old)
				}
				modified = strings.Replace(chart, tc.old, tc.new, 1)
			}
			r := compare(t, base, modified, tc.release)
			if !strings.Contains(strings.Join(r.Diffs, "\n"), tc.want) {
				t.Fatalf("want a difference containing\n  %s\ngot:\n  %s", tc.want, strings.Join(r.Diffs, "\n  "))
			}
		})
	}
}

func TestOnlyInOneSide(t *testing.T) {
	// The chart rendering a Namespace, or deploy/ gaining an object, is not by design.
	r := compare(t, base, chart+"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: fluxtune-system}\n", "fluxtune")
	if !strings.Contains(strings.Join(r.Diffs, "\n"), "Namespace fluxtune-system: ") {
		t.Errorf("a Namespace in both is compared: %v", r.Diffs)
	}
	r = compare(t, base+"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: fluxtune-system}\n", chart, "fluxtune")
	if want := "ConfigMap fluxtune-system/x: in deploy/, not rendered by the chart"; !strings.Contains(strings.Join(r.Diffs, "\n"), want) {
		t.Errorf("want %q, got %v", want, r.Diffs)
	}
	r = compare(t, base, chart+"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: fluxtune-system}\n", "fluxtune")
	if want := "ConfigMap fluxtune-system/x: rendered by the chart, not in deploy/"; !strings.Contains(strings.Join(r.Diffs, "\n"), want) {
		t.Errorf("want %q, got %v", want, r.Diffs)
	}
	// The CRD's prune annotation is excused, another annotation is not.
	r = compare(t, strings.Replace(base, "{kustomize.toolkit.fluxcd.io/prune: disabled}", "{kustomize.toolkit.fluxcd.io/prune: disabled, x: z}", 1), chart, "fluxtune")
	if want := `CustomResourceDefinition fluxprofiles.fluxtune.dev: metadata.annotations.x: in deploy/ (z), not in the chart`; !strings.Contains(strings.Join(r.Diffs, "\n"), want) {
		t.Errorf("want %q, got %v", want, r.Diffs)
	}
}

func TestParseRefusesNonObjects(t *testing.T) {
	if _, err := Parse(strings.NewReader("---\nfoo: bar\n")); err == nil {
		t.Error("a document without kind and name was accepted")
	}
	objs, err := Parse(strings.NewReader("---\n# only a comment\n---\n"))
	if err != nil || len(objs) != 0 {
		t.Errorf("comment-only documents: %v, %v", objs, err)
	}
}

func TestServiceMonitorComponent(t *testing.T) {
	// A component's objects do not get deploy/kustomization.yaml's part-of label; the chart's do.
	sm := "---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: fluxtune\n  namespace: fluxtune-system\n  labels: %s\nspec:\n  selector:\n    matchLabels: %s\n"
	b := base + fmt.Sprintf(sm, "{app.kubernetes.io/name: fluxtune}", "{app.kubernetes.io/name: fluxtune}")
	h := chart + fmt.Sprintf(sm, "{helm.sh/chart: fluxtune-0.1.0, app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune, app.kubernetes.io/version: v0.1.0, app.kubernetes.io/managed-by: Helm, app.kubernetes.io/part-of: fluxtune}",
		"{app.kubernetes.io/name: fluxtune, app.kubernetes.io/instance: fluxtune}")
	if r := compare(t, b, h, "fluxtune"); len(r.Diffs) > 0 || r.Agreed != 6 {
		t.Fatalf("agreed on %d, differences:\n%s", r.Agreed, strings.Join(r.Diffs, "\n"))
	}
	// part-of anywhere else than on the ServiceMonitor is not excused.
	r := compare(t, strings.Replace(base, "labels: {app.kubernetes.io/name: fluxtune, app.kubernetes.io/part-of: fluxtune}\nrules:", "labels: {app.kubernetes.io/name: fluxtune}\nrules:", 1), chart, "fluxtune")
	if want := `ClusterRole fluxtune: metadata.labels["app.kubernetes.io/part-of"]: in the chart (fluxtune), not in deploy/`; !strings.Contains(strings.Join(r.Diffs, "\n"), want) {
		t.Errorf("want %q, got %v", want, r.Diffs)
	}
}
