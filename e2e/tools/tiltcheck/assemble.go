package main

// Tilt's resource assembly (tilt-dev/tilt internal/tiltfile/tiltfile_state.go assembleK8sV2,
// internal/k8s/entity.go, filter.go, object_selector.go, names.go), on the recorded model:
// workloads become resources, Services whose selector matches a workload's pod labels join it,
// k8s_resource renames and adds objects by Tilt's object selectors, what is left is
// "uncategorized"; then every docker_build image must be used by some container, and resource_deps
// must name resources and form no cycle.

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"
)

// Entity is one Kubernetes object of the YAML handed to k8s_yaml.
type Entity struct {
	APIVersion, Kind, Name, Namespace, Group string
	Obj                                      map[string]any
	Source                                   string
}

// Tilt's e.Namespace(): an object without one (cluster-scoped, or namespaced and left to the
// client) counts as "default".
func (e *Entity) TiltNamespace() string {
	if e.Namespace == "" {
		return "default"
	}
	return e.Namespace
}

// FullName is Tilt's fullNameFromK8sEntity: name:kind:namespace.
func (e *Entity) FullName() string {
	return escapeJoin([]string{e.Name, e.Kind, e.TiltNamespace()})
}

func parseEntities(text, source string) ([]*Entity, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var out []*Entity
	for i := 1; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d is not valid YAML: %v", source, i, err)
		}
		if doc == nil {
			continue
		}
		docs := []map[string]any{doc}
		if items, ok := doc["items"].([]any); ok && strings.HasSuffix(str(doc["kind"]), "List") {
			docs = nil
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					docs = append(docs, m)
				}
			}
		}
		for _, d := range docs {
			meta, _ := d["metadata"].(map[string]any)
			e := &Entity{APIVersion: str(d["apiVersion"]), Kind: str(d["kind"]), Name: str(meta["name"]),
				Namespace: str(meta["namespace"]), Obj: d, Source: source}
			if e.Kind == "" || e.APIVersion == "" || e.Name == "" {
				return nil, fmt.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", source, i)
			}
			if g, _, ok := strings.Cut(e.APIVersion, "/"); ok {
				e.Group = g
			}
			out = append(out, e)
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func path(obj map[string]any, keys ...string) map[string]any {
	cur := obj
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

// podTemplates returns the pod templates (metadata + spec) of an object, as Tilt's
// ExtractPodTemplateSpec finds them in the typed workload kinds.
func (e *Entity) podTemplates() []map[string]any {
	switch e.Kind {
	case "Pod":
		return []map[string]any{e.Obj}
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job":
		if t := path(e.Obj, "spec", "template"); t != nil {
			return []map[string]any{t}
		}
	case "CronJob":
		if t := path(e.Obj, "spec", "jobTemplate", "spec", "template"); t != nil {
			return []map[string]any{t}
		}
	}
	return nil
}

// containerImages returns pointers to every container image field, for matching and injection.
func (e *Entity) containerImages() []map[string]any {
	var out []map[string]any
	for _, t := range e.podTemplates() {
		spec, _ := t["spec"].(map[string]any)
		for _, key := range []string{"initContainers", "containers", "ephemeralContainers"} {
			cs, _ := spec[key].([]any)
			for _, c := range cs {
				if m, ok := c.(map[string]any); ok && str(m["image"]) != "" {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

func (e *Entity) templateLabels() []map[string]string {
	var out []map[string]string
	for _, t := range e.podTemplates() {
		labels := map[string]string{}
		raw, _ := path(t, "metadata")["labels"].(map[string]any)
		for k, v := range raw {
			labels[k] = fmt.Sprint(v)
		}
		out = append(out, labels)
	}
	return out
}

// selectorMatchesLabels is Tilt's SelectorMatchesLabels: only Services, and a Service's selector
// is a subset of the labels (an empty selector matches every pod).
func (e *Entity) selectorMatchesLabels(labels map[string]string) bool {
	if e.Kind != "Service" || e.APIVersion != "v1" {
		return false
	}
	sel, _ := path(e.Obj, "spec")["selector"].(map[string]any)
	for k, v := range sel {
		if labels[k] != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// potentialNames is Tilt's k8s.potentialNames: name, name:kind, name:kind:namespace,
// name:kind:namespace:group, lowercased (group "core" for the core group).
func (e *Entity) potentialNames(min int) []string {
	group := e.Group
	if group == "" {
		group = "core"
	}
	parts := []string{e.Name, e.Kind, e.TiltNamespace(), group}
	var out []string
	for i := min - 1; i < len(parts); i++ {
		out = append(out, strings.ToLower(strings.Join(parts[:i+1], ":")))
	}
	return out
}

// ------------------------------------------------------------- selectors ---

// Tilt's sliceutils escaping: ':' separates, '\' escapes.
func escapeJoin(parts []string) string {
	var out []string
	for _, p := range parts {
		p = strings.ReplaceAll(p, `\`, `\\`)
		out = append(out, strings.ReplaceAll(p, ":", `\:`))
	}
	return strings.Join(out, ":")
}

func unescapeSplit(s string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("selector %q ends with an escape character", s)
			}
			i++
			cur.WriteByte(s[i])
		case ':':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(parts, cur.String()), nil
}

// objectSelector is Tilt's SelectorFromString: name[:kind[:namespace]], each part a full,
// case-insensitive match; an empty part matches anything.
type objectSelector struct{ name, kind, namespace *regexp.Regexp }

func selectorFromString(s string) (*objectSelector, error) {
	if s == "" {
		return nil, fmt.Errorf("selector can't be empty")
	}
	parts, err := unescapeSplit(s)
	if err != nil {
		return nil, err
	}
	if len(parts) > 3 {
		return nil, fmt.Errorf("Too many parts in selector. Selectors must contain between 1 and 3 parts (colon separated), found %d parts in %s", len(parts), s)
	}
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	re := func(p string) *regexp.Regexp {
		if p == "" {
			return regexp.MustCompile("")
		}
		return regexp.MustCompile("^(?i)" + regexp.QuoteMeta(p) + "$")
	}
	return &objectSelector{name: re(parts[0]), kind: re(parts[1]), namespace: re(parts[2])}, nil
}

func (o *objectSelector) matches(e *Entity) bool {
	return o.name.MatchString(e.Name) && o.kind.MatchString(e.Kind) && o.namespace.MatchString(e.TiltNamespace())
}

// -------------------------------------------------------------- assembly ---

// Resource is one Tilt resource, in the order Tilt would first run them.
type Resource struct {
	Name         string
	Local        *LocalResource // a local_resource, or
	Entities     []*Entity      // a Kubernetes resource (or "uncategorized")
	Images       []*Image       // images built for it
	ResourceDeps []string
	Auto         []string // objects Tilt attached by itself (Services by selector), for the report
}

// Assembly is the result of checking one evaluation.
type Assembly struct {
	Resources []*Resource
	Problems  []string
	Notes     []string
}

func Assemble(m *Model) *Assembly {
	a := &Assembly{}
	problem := func(format string, args ...any) { a.Problems = append(a.Problems, fmt.Sprintf(format, args...)) }

	// Workloads: objects with a container image (Tilt's isWorkload without k8s_kind).
	var workloads, rest []*Entity
	for _, e := range m.Entities {
		if len(e.containerImages()) > 0 {
			workloads = append(workloads, e)
		} else {
			rest = append(rest, e)
		}
	}
	// Resource names: Tilt's UniqueNames(workloads, 1), the shortest name only this workload wants.
	counts := map[string]int{}
	for _, w := range workloads {
		for _, n := range w.potentialNames(1) {
			counts[n]++
		}
	}
	var k8s []*Resource
	byName := map[string]*Resource{}
	for _, w := range workloads {
		name := ""
		for _, n := range w.potentialNames(1) {
			if counts[n] == 1 {
				name = n
				break
			}
		}
		if name == "" {
			problem("duplicate YAML: %s is declared twice", w.FullName())
			continue
		}
		r := &Resource{Name: name, Entities: []*Entity{w}}
		// Services in the workload's namespace whose selector matches its pod labels join it.
		var remaining []*Entity
		for _, e := range rest {
			joined := false
			for _, labels := range w.templateLabels() {
				if e.TiltNamespace() == w.TiltNamespace() && e.selectorMatchesLabels(labels) {
					joined = true
				}
			}
			if joined {
				r.Entities = append(r.Entities, e)
				r.Auto = append(r.Auto, e.FullName())
			} else {
				remaining = append(remaining, e)
			}
		}
		rest = remaining
		k8s = append(k8s, r)
		byName[name] = r
	}
	// assembleK8sUnresourced: objects with a pod template but no image become resources by name.
	var unresourced []*Entity
	for _, e := range rest {
		if len(e.podTemplates()) > 0 {
			r, ok := byName[e.Name]
			if !ok {
				r = &Resource{Name: e.Name}
				k8s = append(k8s, r)
				byName[e.Name] = r
			}
			r.Entities = append(r.Entities, e)
			continue
		}
		unresourced = append(unresourced, e)
	}

	// k8s_resource options (Tilt iterates a map; tiltcheck goes in Tiltfile order).
	fragments := map[string][]*Entity{}
	var fullNames []string
	for _, e := range m.Entities {
		for _, n := range e.potentialNames(1) {
			fragments[n] = append(fragments[n], e)
		}
		fullNames = append(fullNames, fmt.Sprintf("%q", e.FullName()))
	}
	for _, o := range m.K8sOptions {
		if o.ManuallyGrouped {
			if _, ok := byName[o.NewName]; ok {
				problem("k8s_resource at %s: a resource named %q already exists", o.Pos, o.NewName)
				continue
			}
			r := &Resource{Name: o.NewName}
			k8s = append(k8s, r)
			byName[o.NewName] = r
		}
		key := o.Workload
		if o.ManuallyGrouped {
			key = o.NewName
		}
		r, ok := byName[key]
		if !ok {
			var known []string
			for _, k := range k8s {
				known = append(known, k.Name)
			}
			problem("k8s_resource at %s specified unknown resource %q. known resources: %s", o.Pos, key, strings.Join(known, ", "))
			continue
		}
		r.ResourceDeps = o.ResourceDeps
		if o.NewName != "" && o.NewName != r.Name {
			if _, taken := byName[o.NewName]; taken {
				problem("k8s_resource at %s specified to rename %q to %q, but there already exists a resource with that name", o.Pos, r.Name, o.NewName)
			} else {
				delete(byName, r.Name)
				r.Name = o.NewName
				byName[r.Name] = r
			}
		}
		var selectors []*objectSelector
		bad := false
		for _, s := range o.Objects {
			sel, err := selectorFromString(s)
			if err != nil {
				problem("k8s_resource at %s: Error making selector from string %q: %v", o.Pos, s, err)
				bad = true
			}
			selectors = append(selectors, sel)
		}
		if bad {
			continue
		}
		for i, s := range o.Objects {
			es := fragments[strings.ToLower(s)]
			if len(es) == 0 {
				problem("k8s_resource at %s: No object identified by the fragment %q could be found. Possible objects are: %s", o.Pos, s, strings.Join(fullNames, ", "))
				continue
			}
			if len(es) > 1 {
				var names []string
				for _, e := range es {
					names = append(names, fmt.Sprintf("%q", e.FullName()))
				}
				problem("k8s_resource at %s: %q is not a unique fragment. Objects that match %q are %s", o.Pos, s, s, strings.Join(names, ", "))
				continue
			}
			idx := -1
			for j, e := range unresourced {
				if selectors[i].matches(e) {
					idx = j
				}
			}
			if idx < 0 {
				owner := ""
				for _, k := range k8s {
					for _, e := range k.Entities {
						if e == es[0] {
							owner = k.Name
						}
					}
				}
				var left []string
				for _, e := range unresourced {
					left = append(left, fmt.Sprintf("%q", e.FullName()))
				}
				problem("k8s_resource at %s: No object identified by the fragment %q could be found in remaining YAML (Tilt already put %s in resource %q). Valid remaining fragments are: %s",
					o.Pos, s, es[0].FullName(), owner, strings.Join(left, ", "))
				continue
			}
			r.Entities = append(r.Entities, unresourced[idx])
			unresourced = append(unresourced[:idx], unresourced[idx+1:]...)
		}
	}
	for _, r := range k8s {
		if len(r.Entities) == 0 {
			problem("resource %q: could not associate any k8s YAML with this resource", r.Name)
		}
	}

	// Images: each docker_build ref must be run by a container (Tilt only warns "Image not used
	// in any deploy config" and deploys the YAML's own image: the dev loop would silently run the
	// released image instead of the one just built).
	for _, img := range m.Images {
		var users []*Resource
		var seen []string
		for _, r := range k8s {
			used := false
			for _, e := range r.Entities {
				for _, c := range e.containerImages() {
					seen = append(seen, str(c["image"]))
					if imageMatches(img.Named, str(c["image"])) {
						used = true
					}
				}
			}
			if used {
				users = append(users, r)
				r.Images = append(r.Images, img)
			}
		}
		if len(users) == 0 {
			msg := fmt.Sprintf("docker_build(%q) at %s: no container in the k8s_yaml objects runs this image, so Tilt would build it and deploy the YAML's own image instead (containers run: %s)",
				img.Ref, img.Pos, strings.Join(uniq(seen), ", "))
			for _, k := range m.Kustomizations {
				if len(k.Images) > 0 {
					msg += fmt.Sprintf("; %s/kustomization.yaml `images:` rewrites %s", k.Dir, strings.Join(k.Images, ", "))
				}
			}
			problem("%s", msg)
		}
		for _, k := range m.Kustomizations {
			if len(k.Images) == 0 {
				continue
			}
			ok := false
			for _, ki := range k.Images {
				if n, err := reference.ParseNormalizedNamed(ki); err == nil && n.Name() == img.Named.Name() {
					ok = true
				}
			}
			if !ok && len(users) > 0 {
				problem("docker_build(%q) at %s: %s/kustomization.yaml `images:` rewrites %s, not this image", img.Ref, img.Pos, k.Dir, strings.Join(k.Images, ", "))
			}
		}
	}

	// The resources, local ones first as Tilt runs them, then the Kubernetes ones, then what is left.
	var all []*Resource
	names := map[string]bool{}
	for _, l := range m.LocalResources {
		all = append(all, &Resource{Name: l.Name, Local: l, ResourceDeps: l.ResourceDeps})
		names[l.Name] = true
	}
	for _, r := range k8s {
		if names[r.Name] {
			problem("resource name %q is used by a local_resource and a Kubernetes resource", r.Name)
		}
		names[r.Name] = true
		all = append(all, r)
	}
	if len(unresourced) > 0 {
		var left []string
		for _, e := range unresourced {
			left = append(left, e.FullName())
		}
		a.Notes = append(a.Notes, fmt.Sprintf("objects in no resource, deployed by Tilt as \"uncategorized\": %s", strings.Join(left, ", ")))
		all = append(all, &Resource{Name: "uncategorized", Entities: unresourced})
		names["uncategorized"] = true
	}
	for _, r := range all {
		for _, d := range r.ResourceDeps {
			if d == r.Name {
				problem("resource %s specified a dependency on itself", r.Name)
			} else if !names[d] {
				problem("resource %s specified a dependency on unknown resource %s", r.Name, d)
			}
		}
	}
	order, cycle := topoOrder(all)
	if cycle != "" {
		problem("cycle detected in resource dependency graph: %s", cycle)
	} else {
		a.Resources = order
	}
	return a
}

// imageMatches is Tilt's RefSelector: an untagged ref matches any tag of the same repository,
// a tagged one exactly that tag.
func imageMatches(ref reference.Named, image string) bool {
	n, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false
	}
	if _, tagged := ref.(reference.Tagged); tagged {
		return n.String() == ref.String()
	}
	return n.Name() == ref.Name()
}

// topoOrder orders resources so that each comes after its resource_deps, keeping Tilt's order
// otherwise; it reports a cycle as "a -> b -> a".
func topoOrder(rs []*Resource) ([]*Resource, string) {
	byName := map[string]*Resource{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	var out []*Resource
	state := map[string]int{} // 1 visiting, 2 done
	var stack []string
	var visit func(r *Resource) string
	visit = func(r *Resource) string {
		switch state[r.Name] {
		case 2:
			return ""
		case 1:
			i := 0
			for stack[i] != r.Name {
				i++
			}
			return strings.Join(append(append([]string{}, stack[i:]...), r.Name), " -> ")
		}
		state[r.Name] = 1
		stack = append(stack, r.Name)
		for _, d := range r.ResourceDeps {
			if dep, ok := byName[d]; ok {
				if c := visit(dep); c != "" {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[r.Name] = 2
		out = append(out, r)
		return ""
	}
	for _, r := range rs {
		if c := visit(r); c != "" {
			return nil, c
		}
	}
	return out, ""
}

func uniq(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}
