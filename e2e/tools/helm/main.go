// chartdiff compares the objects the Helm chart renders (deploy/helm/fluxtune, `helm template
// --include-crds`) with the kustomize base (`kubectl kustomize deploy`) object by object, field by
// field, and fails on any difference that is not one of the few listed below as by design.
//
//	chartdiff -release NAME KUSTOMIZE.yaml HELM.yaml
//
// Render the chart with release NAME in the base's namespace (fluxtune-system): the chart derives
// object names from the release, so with the release `fluxtune` they are deploy/'s names and no
// name is excused. Prints every by-design difference it met (with why) on stderr, every other
// difference on stdout; exit 1 when there is any, 2 on bad input.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func main() {
	release := flag.String("release", "fluxtune", "the Helm release name the chart was rendered with")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: chartdiff -release NAME KUSTOMIZE.yaml HELM.yaml")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	base, err := readFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartdiff:", err)
		os.Exit(2)
	}
	chart, err := readFile(flag.Arg(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartdiff:", err)
		os.Exit(2)
	}
	r := Compare(base, chart, *release)
	for _, line := range r.Allowed() {
		fmt.Fprintln(os.Stderr, "by design:", line)
	}
	for _, d := range r.Diffs {
		fmt.Println(d)
	}
	if len(r.Diffs) > 0 {
		fmt.Fprintf(os.Stderr, "chartdiff: %d difference(s) between deploy/ and the chart that are not by design\n", len(r.Diffs))
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "chartdiff: %d objects agree (%s)\n", r.Agreed, strings.Join(r.Kinds, ", "))
}

func readFile(path string) ([]Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	objs, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// Object is one Kubernetes object as generic JSON.
type Object map[string]any

func (o Object) str(path ...string) string {
	var v any = map[string]any(o)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

// Key names an object: kind, namespace and name.
func (o Object) Key() string {
	ns := o.str("metadata", "namespace")
	if ns != "" {
		ns += "/"
	}
	return o.str("kind") + " " + ns + o.str("metadata", "name")
}

// Parse reads a stream of YAML documents; empty ones (comments only) are skipped.
func Parse(r io.Reader) ([]Object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var objs []Object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var o Object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if o == nil {
			continue
		}
		if o.str("kind") == "" || o.str("metadata", "name") == "" {
			return nil, fmt.Errorf("document %d: not a Kubernetes object (no kind or metadata.name)", i)
		}
		objs = append(objs, o)
	}
}

// Result of a comparison.
type Result struct {
	Diffs   []string
	Agreed  int
	Kinds   []string
	allowed map[string]int // rule: how many times it excused a difference
}

// Allowed lists each by-design difference met, with its reason and count.
func (r *Result) Allowed() []string {
	var out []string
	for _, rule := range rules {
		if n := r.allowed[rule.name]; n > 0 {
			out = append(out, fmt.Sprintf("%s (%d): %s", rule.name, n, rule.why))
		}
	}
	return out
}

// A difference met on one side only: deploy/'s value (base) or the chart's.
type side int

const (
	onlyInBase side = iota
	onlyInChart
)

// at is where a difference is: the object's kind, the field path and the key of a map entry.
type at struct {
	kind string
	path []string // map keys and list indexes from the object's root to the map holding key
	key  string
	val  any
}

func (a at) pathIs(p ...string) bool { return reflect.DeepEqual(a.path, p) }

// selector reports whether the map holding the entry selects the operator's pods.
func (a at) selector() bool {
	n := len(a.path)
	return (n > 0 && a.path[n-1] == "matchLabels") ||
		(a.kind == "Service" && a.pathIs("spec", "selector")) ||
		a.pathIs("spec", "template", "metadata", "labels")
}

type rule struct {
	name, why string
	side      side
	match     func(a at, release string) bool
}

// The differences between deploy/ and the chart that are by design. Anything else fails.
var rules = []rule{
	{
		name: "no Namespace object",
		why:  "Helm installs into an existing namespace or one `helm install --create-namespace` makes (label it pod-security.kubernetes.io/enforce=restricted, docs/helm.md)",
		side: onlyInBase,
		match: func(a at, _ string) bool {
			return a.kind == "Namespace" && a.path == nil && a.key == ""
		},
	},
	{
		name: "Helm's standard labels",
		why:  "helm.sh/chart, app.kubernetes.io/managed-by: Helm and app.kubernetes.io/version on every object the chart renders",
		side: onlyInChart,
		match: func(a at, _ string) bool {
			if !a.pathIs("metadata", "labels") {
				return false
			}
			v, _ := a.val.(string)
			switch a.key {
			case "helm.sh/chart":
				return strings.HasPrefix(v, "fluxtune-")
			case "app.kubernetes.io/managed-by":
				return v == "Helm"
			case "app.kubernetes.io/version":
				return v != ""
			}
			return false
		},
	},
	{
		name: "the release's label",
		why:  "app.kubernetes.io/instance: <release> on every object and in every selector of the operator's pods, so that two releases never select each other's pods",
		side: onlyInChart,
		match: func(a at, release string) bool {
			return a.key == "app.kubernetes.io/instance" && a.val == release &&
				(a.pathIs("metadata", "labels") || a.selector())
		},
	},
	{
		name: "every object labelled alike",
		why:  "deploy/poddisruptionbudget.yaml has no app.kubernetes.io/name, and deploy/kustomization.yaml's app.kubernetes.io/part-of does not reach the components (the ServiceMonitor); the chart gives every object the same labels",
		side: onlyInChart,
		match: func(a at, _ string) bool {
			return a.pathIs("metadata", "labels") && a.val == "fluxtune" &&
				((a.kind == "PodDisruptionBudget" && a.key == "app.kubernetes.io/name") ||
					(a.kind == "ServiceMonitor" && a.key == "app.kubernetes.io/part-of"))
		},
	},
	{
		name: "the CRD is crds/fluxprofile.yaml as generated",
		why:  "the chart's crds/ holds the generated file byte for byte, without deploy/'s label and its kustomize.toolkit.fluxcd.io/prune: disabled (Helm never deletes crds/)",
		side: onlyInBase,
		match: func(a at, _ string) bool {
			return a.kind == "CustomResourceDefinition" &&
				((a.pathIs("metadata", "labels") && a.key == "app.kubernetes.io/part-of" && a.val == "fluxtune") ||
					(a.pathIs("metadata", "annotations") && a.key == "kustomize.toolkit.fluxcd.io/prune" && a.val == "disabled"))
		},
	},
}

// Compare matches the objects by kind, namespace and name and compares each pair field by field.
func Compare(base, chart []Object, release string) *Result {
	r := &Result{allowed: map[string]int{}}
	c := comparer{r: r, release: release}
	index := func(objs []Object, what string) map[string]Object {
		m := map[string]Object{}
		for _, o := range objs {
			if _, dup := m[o.Key()]; dup {
				r.Diffs = append(r.Diffs, fmt.Sprintf("%s: rendered twice by %s", o.Key(), what))
			}
			m[o.Key()] = o
		}
		return m
	}
	b, h := index(base, "deploy/"), index(chart, "the chart")
	var keys []string
	for k := range b {
		keys = append(keys, k)
	}
	for k := range h {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	kinds := map[string]bool{}
	for _, k := range keys {
		bo, inBase := b[k]
		ho, inChart := h[k]
		switch {
		case !inChart:
			if !c.allow(onlyInBase, at{kind: bo.str("kind")}) {
				r.Diffs = append(r.Diffs, k+": in deploy/, not rendered by the chart")
			}
		case !inBase:
			if !c.allow(onlyInChart, at{kind: ho.str("kind")}) {
				r.Diffs = append(r.Diffs, k+": rendered by the chart, not in deploy/")
			}
		default:
			before := len(r.Diffs)
			c.key = k
			c.kind = bo.str("kind")
			c.compare(nil, map[string]any(bo), map[string]any(ho))
			if len(r.Diffs) == before {
				r.Agreed++
				kinds[c.kind] = true
			}
		}
	}
	for k := range kinds {
		r.Kinds = append(r.Kinds, k)
	}
	sort.Strings(r.Kinds)
	return r
}

type comparer struct {
	r         *Result
	release   string
	key, kind string
}

func (c *comparer) allow(s side, a at) bool {
	for _, rule := range rules {
		if rule.side == s && rule.match(a, c.release) {
			c.r.allowed[rule.name]++
			return true
		}
	}
	return false
}

func (c *comparer) differ(path []string, format string, args ...any) {
	c.r.Diffs = append(c.r.Diffs, fmt.Sprintf("%s: %s: %s", c.key, render(path), fmt.Sprintf(format, args...)))
}

// compare walks deploy/'s value b and the chart's h at path.
func (c *comparer) compare(path []string, b, h any) {
	bm, bIsMap := b.(map[string]any)
	hm, hIsMap := h.(map[string]any)
	if bIsMap && hIsMap {
		c.compareMaps(path, bm, hm)
		return
	}
	bl, bIsList := b.([]any)
	hl, hIsList := h.([]any)
	if bIsList && hIsList {
		if len(bl) != len(hl) {
			c.differ(path, "deploy/ has %d items, the chart %d: deploy/ %s, chart %s", len(bl), len(hl), show(b), show(h))
			return
		}
		for i := range bl {
			c.compare(append(clip(path), fmt.Sprintf("[%d]", i)), bl[i], hl[i])
		}
		return
	}
	if !reflect.DeepEqual(b, h) {
		c.differ(path, "deploy/ %s, chart %s", show(b), show(h))
	}
}

func (c *comparer) compareMaps(path []string, b, h map[string]any) {
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range h {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		bv, inBase := b[k]
		hv, inChart := h[k]
		sub := append(clip(path), k)
		switch {
		case inBase && inChart:
			c.compare(sub, bv, hv)
		case inBase:
			// A map on one side only is compared entry by entry with an empty one, so that each
			// entry meets the rules on its own.
			if m, ok := bv.(map[string]any); ok {
				c.compareMaps(sub, m, map[string]any{})
			} else if !c.allow(onlyInBase, at{kind: c.kind, path: path, key: k, val: bv}) {
				c.differ(sub, "in deploy/ (%s), not in the chart", show(bv))
			}
		default:
			if m, ok := hv.(map[string]any); ok {
				c.compareMaps(sub, map[string]any{}, m)
			} else if !c.allow(onlyInChart, at{kind: c.kind, path: path, key: k, val: hv}) {
				c.differ(sub, "in the chart (%s), not in deploy/", show(hv))
			}
		}
	}
}

func clip(p []string) []string { return p[:len(p):len(p)] }

// render prints a path the way kubectl's JSONPath reads it: spec.template.spec.containers[0].args.
func render(path []string) string {
	var b strings.Builder
	for _, p := range path {
		switch {
		case strings.HasPrefix(p, "["):
			b.WriteString(p)
		case strings.ContainsAny(p, "./"):
			fmt.Fprintf(&b, "[%q]", p)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	if b.Len() == 0 {
		return "(object)"
	}
	return b.String()
}

func show(v any) string {
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSpace(string(out))
	if strings.Contains(s, "\n") {
		// One line: the JSON form.
		j, err := yaml.YAMLToJSON(out)
		if err == nil {
			return string(j)
		}
	}
	return s
}
