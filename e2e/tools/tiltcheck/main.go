// Command tiltcheck checks fluxtune's Tiltfile without Tilt (which cannot be built here) and
// without Docker: it evaluates the Tiltfile in go.starlark.net, the interpreter Tilt embeds, with
// Tilt's dialect and Tilt's builtins as recorders that check what Tilt checks (argument names and
// types, the Kubernetes resources Tilt would assemble, object selectors, resource_deps, that the
// image built is the one the YAML runs), plus what Tilt leaves to runtime (every path exists, the
// Dockerfile's COPY sources are in the build context), and can run the loop minus Tilt's engine
// against a cluster. See docs/tilt-check.md.
//
//	tiltcheck [flags] check          every mode: no Tilt args, each config.define_bool flag set to
//	                                 true and to false, and `uname -s` answered "Darwin" (macOS)
//	tiltcheck [flags] eval [-- ARGS] one mode (ARGS: what follows `--` in `tilt up -- ARGS`)
//	tiltcheck [flags] run [-- ARGS]  one mode, then its resources in Tilt's order against $KUBECONFIG
//
// Flags: -file (the Tiltfile, default ./Tiltfile), -dir (the directory it is evaluated in, default
// the file's: a test evaluates a modified copy in place of the repository's Tiltfile), -kubectl
// (kubectl for kustomize() and run, default $FLUXTUNE_KUBECTL), -uname (answer `uname -s` with
// this instead of running it).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	fs := flag.NewFlagSet("tiltcheck", flag.ExitOnError)
	file := fs.String("file", "Tiltfile", "the Tiltfile")
	dir := fs.String("dir", "", "the directory the Tiltfile is evaluated in (default: the file's)")
	kubectl := fs.String("kubectl", os.Getenv("FLUXTUNE_KUBECTL"), "kubectl, for kustomize() and run")
	uname := fs.String("uname", "", "answer `uname -s` with this instead of running it")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tiltcheck [-file F] [-dir D] [-kubectl K] [-uname U] check | eval [-- ARGS] | run [-- ARGS]")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() < 1 {
		fs.Usage()
		os.Exit(2)
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	src, err := os.ReadFile(*file)
	if err != nil {
		fail("%v", err)
	}
	d := *dir
	if d == "" {
		d = filepath.Dir(*file)
	}
	if d, err = filepath.Abs(d); err != nil {
		fail("%v", err)
	}
	switch cmd {
	case "check":
		if len(rest) > 0 {
			fail("check takes no Tilt args: it evaluates every mode")
		}
		results := CheckAll(d, *file, src, *kubectl)
		failed := 0
		for _, r := range results {
			r.Print()
			if !r.OK() {
				failed++
			}
		}
		if failed > 0 {
			fail("%d of %d modes failed", failed, len(results))
		}
		fmt.Printf("tiltcheck: %d modes evaluated, all ok\n", len(results))
	case "eval", "run":
		r := CheckMode(d, *file, src, rest, *uname, *kubectl, modeName(rest, *uname))
		r.Print()
		if !r.OK() {
			fail("%s failed", r.Mode)
		}
		if cmd == "run" {
			if err := Run(r.Model, r.Assembly, d, *kubectl); err != nil {
				fail("%s: %v", r.Mode, err)
			}
			fmt.Printf("tiltcheck: %s: the loop ran: %d resources\n", r.Mode, len(r.Assembly.Resources))
		}
	default:
		fs.Usage()
		os.Exit(2)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tiltcheck: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// Result is one mode's evaluation and assembly.
type Result struct {
	Mode     string
	Model    *Model
	Assembly *Assembly
	Err      error // the evaluation stopped (a builtin's error, as Tilt reports it)
}

func (r *Result) OK() bool { return r.Err == nil && len(r.Assembly.Problems) == 0 }

// Problems is every failure of the mode, one per line.
func (r *Result) Problems() []string {
	if r.Err != nil {
		return []string{r.Err.Error()}
	}
	return r.Assembly.Problems
}

func modeName(args []string, uname string) string {
	s := "tilt up"
	if len(args) > 0 {
		s += " -- " + strings.Join(args, " ")
	}
	if uname != "" {
		s += fmt.Sprintf(" (uname -s answered %q)", uname)
	}
	return s
}

func CheckMode(dir, file string, src []byte, args []string, uname, kubectl, mode string) *Result {
	m, err := Evaluate(dir, file, src, args, uname, kubectl, mode)
	r := &Result{Mode: mode, Model: m, Err: err, Assembly: &Assembly{}}
	if err == nil {
		r.Assembly = Assemble(m)
	}
	return r
}

// CheckAll evaluates every mode: without args, then each combination of the bool flags the
// Tiltfile defines set to true and to false, then, if it asks `uname -s`, as on macOS.
func CheckAll(dir, file string, src []byte, kubectl string) []*Result {
	first := CheckMode(dir, file, src, nil, "", kubectl, modeName(nil, ""))
	results := []*Result{first}
	var bools []string
	for _, f := range first.Model.Flags {
		if f.Type == "bool" && !f.Args {
			bools = append(bools, f.Name)
		}
	}
	if len(bools) > 4 {
		bools = bools[:4] // 80 combinations at most
	}
	combos := [][]string{nil}
	for _, b := range bools {
		var next [][]string
		for _, c := range combos {
			next = append(next, c,
				append(append([]string{}, c...), "--"+b),
				append(append([]string{}, c...), "--"+b+"=false"))
		}
		combos = next
	}
	for _, args := range combos[1:] {
		results = append(results, CheckMode(dir, file, src, args, "", kubectl, modeName(args, "")))
	}
	for _, l := range first.Model.Locals {
		if l.Cmd == "uname -s" {
			results = append(results, CheckMode(dir, file, src, nil, "Darwin", kubectl, modeName(nil, "Darwin")))
			break
		}
	}
	return results
}

func (r *Result) Print() {
	if !r.OK() {
		fmt.Printf("tiltcheck: FAIL %s:\n", r.Mode)
		for _, p := range r.Problems() {
			fmt.Printf("  - %s\n", strings.ReplaceAll(p, "\n", "\n    "))
		}
		return
	}
	fmt.Printf("tiltcheck: ok %s\n", r.Mode)
	var loads []string
	for _, l := range r.Model.Locals {
		how := "ran"
		if l.Simulated != "" {
			how = fmt.Sprintf("answered %q", l.Simulated)
		}
		loads = append(loads, fmt.Sprintf("%s (%s)", l.Cmd, how))
	}
	if len(loads) > 0 {
		fmt.Printf("  load-time local(): %s\n", strings.Join(loads, ", "))
	}
	for _, res := range r.Assembly.Resources {
		after := ""
		if len(res.ResourceDeps) > 0 {
			after = "; after " + strings.Join(res.ResourceDeps, ", ")
		}
		if res.Local != nil {
			fmt.Printf("  local_resource %-18s %s (%d deps)%s\n", res.Name, shown(res.Local.Cmd), len(res.Local.Deps), after)
			continue
		}
		var objs []string
		for _, e := range res.Entities {
			objs = append(objs, e.FullName())
		}
		fmt.Printf("  k8s resource   %-18s %s%s\n", res.Name, strings.Join(objs, ", "), after)
		if len(res.Auto) > 0 {
			fmt.Printf("  %-33s (Tilt adds by selector: %s)\n", "", strings.Join(res.Auto, ", "))
		}
		for _, img := range res.Images {
			df := "Dockerfile " + rel(r.Model, img.DockerfilePath)
			if img.DockerfilePath == "" {
				df = "inline Dockerfile"
			}
			only := ""
			if len(img.Only) > 0 {
				only = ", only " + strings.Join(img.Only, " ")
			}
			fmt.Printf("  %-33s image %s built from %s (%s%s)\n", "", img.Ref, rel(r.Model, img.Context), df, only)
		}
	}
	for _, n := range r.Assembly.Notes {
		fmt.Printf("  note: %s\n", n)
	}
}

func rel(m *Model, p string) string {
	wd, _ := os.Getwd()
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
