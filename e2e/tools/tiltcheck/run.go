package main

// The dev loop minus Tilt's engine: the resources of one evaluation, in the order Tilt would bring
// them up (each after its resource_deps), against the cluster of $KUBECONFIG:
//   - a local_resource's cmd runs for real (sh -c in the Tiltfile's directory, its env added);
//   - a Kubernetes resource's images are "built": the build context is checked on disk (every
//     COPY source present after the filters) and digested into a tag; that tag is injected into
//     the containers that run the image, as Tilt injects the image it built; then the resource's
//     objects are applied server-side with kubectl (field manager "tilt"), Namespaces and CRDs
//     first.
// Not done: building or pushing an image, running its pods (the e2e control plane has no kubelet,
// so nothing waits for pod readiness), port-forwards, file watching and re-runs.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func Run(m *Model, a *Assembly, dir, kubectl string) error {
	if os.Getenv("KUBECONFIG") == "" {
		return fmt.Errorf("run: KUBECONFIG is not set; the loop runs against the cluster it names")
	}
	if kubectl == "" {
		return fmt.Errorf("run: no kubectl (pass -kubectl or set FLUXTUNE_KUBECTL)")
	}
	for _, r := range a.Resources {
		t0 := time.Now()
		switch {
		case r.Local != nil:
			if err := runLocal(r.Local); err != nil {
				return err
			}
		default:
			if err := deployK8s(r, kubectl, dir); err != nil {
				return err
			}
		}
		fmt.Printf("tiltcheck: [%s] %s: ok (%.1f s)\n", m.Mode, r.Name, time.Since(t0).Seconds())
	}
	return nil
}

func runLocal(l *LocalResource) error {
	fmt.Printf("tiltcheck: local_resource %q: %s\n", l.Name, shown(l.Cmd))
	c := exec.Command(l.Cmd[0], l.Cmd[1:]...)
	c.Dir = l.Dir
	c.Env = os.Environ()
	for k, v := range l.Env {
		c.Env = append(c.Env, k+"="+v)
	}
	c.Stdout = prefixed("  [" + l.Name + "] ")
	c.Stderr = c.Stdout
	err := c.Run()
	c.Stdout.(*prefixWriter).flush()
	if err != nil {
		return fmt.Errorf("local_resource %q (%s): its cmd failed: %v", l.Name, l.Pos, err)
	}
	return nil
}

func shown(argv []string) string {
	if len(argv) == 3 && argv[0] == "sh" && argv[1] == "-c" {
		first, _, more := strings.Cut(argv[2], "\n")
		if more {
			return first + " ..."
		}
		return first
	}
	return strings.Join(argv, " ")
}

func deployK8s(r *Resource, kubectl, dir string) error {
	for _, img := range r.Images {
		digest, n, err := checkContextOnDisk(img)
		if err != nil {
			return err
		}
		tag := img.Named.Name() + ":tilt-" + digest
		injected := 0
		for _, e := range r.Entities {
			for _, c := range e.containerImages() {
				if imageMatches(img.Named, str(c["image"])) {
					c["image"] = tag
					injected++
				}
			}
		}
		fmt.Printf("tiltcheck: resource %q: image %s from %d context files of %s, injected into %d container(s)\n",
			r.Name, tag, n, img.Context, injected)
	}
	var docs bytes.Buffer
	for _, e := range installOrder(r.Entities) {
		bs, err := yaml.Marshal(e.Obj)
		if err != nil {
			return err
		}
		docs.WriteString("---\n")
		docs.Write(bs)
	}
	c := exec.Command(kubectl, "apply", "--server-side", "--force-conflicts", "--field-manager=tilt", "-f", "-")
	c.Dir = dir
	c.Stdin = &docs
	c.Stdout = prefixed("  [" + r.Name + "] ")
	c.Stderr = c.Stdout
	err := c.Run()
	c.Stdout.(*prefixWriter).flush()
	if err != nil {
		return fmt.Errorf("resource %q: kubectl apply --server-side of its %d objects failed: %v", r.Name, len(r.Entities), err)
	}
	return nil
}

// kindOrder is Helm's install order: Namespaces and CRDs before what lives in them or uses them.
var kindOrder = []string{"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
	"RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
	"ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
	"IngressClass", "Ingress", "APIService"}

// installOrder sorts objects by kindOrder (other kinds last, in their order), as they must be
// applied in one kubectl call.
func installOrder(es []*Entity) []*Entity {
	rank := func(e *Entity) int {
		for i, k := range kindOrder {
			if k == e.Kind {
				return i
			}
		}
		return len(kindOrder)
	}
	out := append([]*Entity{}, es...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// prefixed writes each line with a prefix, for the output of the commands the loop runs.
type prefixWriter struct {
	prefix string
	buf    []byte
}

func prefixed(p string) *prefixWriter { return &prefixWriter{prefix: p} }

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Printf("%s%s\n", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *prefixWriter) flush() {
	if len(w.buf) > 0 {
		fmt.Printf("%s%s\n", w.prefix, w.buf)
		w.buf = nil
	}
}
