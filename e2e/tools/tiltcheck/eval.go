package main

// The Tiltfile evaluator: go.starlark.net with Tilt's dialect and Tilt's builtins, each of which
// unpacks its arguments with the parameter list of Tilt's own implementation (so a misspelt
// keyword, a missing argument or a wrong type fails as it fails in Tilt, with starlark's message)
// and records what it was asked to do. Parameter lists are those of tilt-dev/tilt
// internal/tiltfile: docker.go (docker_build), local_resource.go, files.go (local, kustomize),
// k8s.go (k8s_yaml, k8s_resource v2), io/io.go (read_file, watch_file),
// config/config_def.go (config.define_*), as documented in internal/tiltfile/api/__init__.py
// (docs.tilt.dev/api.html).

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	"go.yaml.in/yaml/v3"
)

// Tilt's dialect. Tilt (internal/tiltfile/tiltfile.go) sets the legacy resolver flags
// AllowLambda, AllowNestedDef, AllowGlobalReassign and AllowRecursion, and starkit executes with
// starlark.ExecFile, which reads them through syntax.LegacyFileOptions: GlobalReassign also
// turns on `while` and top-level if/for/while, and `set` (resolve.AllowSet) is on by default.
var tiltDialect = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
	Recursion:       true,
}

// The builtins tiltcheck implements: a Tiltfile calling any other Tilt builtin fails to resolve
// ("undefined: ..."), and the message says where to add it.
var implemented = []string{"config.define_bool", "config.define_string", "config.define_string_list",
	"config.parse", "docker_build", "k8s_resource", "k8s_yaml", "kustomize", "local",
	"local_resource", "read_file", "watch_file", "TRIGGER_MODE_AUTO", "TRIGGER_MODE_MANUAL"}

// Model is what one evaluation recorded.
type Model struct {
	Mode           string // how it was evaluated, for messages
	Args           []string
	Flags          []ConfigFlag
	Locals         []LocalCall
	LocalResources []*LocalResource
	Images         []*Image
	Entities       []*Entity
	Kustomizations []*Kustomization
	K8sOptions     []*K8sOptions
	ReadFiles      []string
}

type ConfigFlag struct {
	Name, Type string
	Args       bool
}

type LocalCall struct {
	Cmd       string
	Ran       bool   // run for real
	Simulated string // or answered with this output
}

type LocalResource struct {
	Name         string
	Cmd          []string // argv; a string cmd is ["sh", "-c", cmd]
	Dir          string
	Env          map[string]string
	Deps         []string
	ResourceDeps []string
	Labels       []string
	Pos          syntax.Position
}

type Image struct {
	Ref            string
	Named          reference.Named
	Context        string
	DockerfilePath string // empty with dockerfile_contents
	Dockerfile     string
	Only, Ignore   []string
	Pos            syntax.Position
}

type Kustomization struct {
	Dir      string // relative to the Tiltfile's directory
	Rendered string
	Images   []string // the names deploy/kustomization.yaml `images:` rewrites to (newName or name)
}

type K8sOptions struct {
	Workload, NewName string
	Objects           []string
	ResourceDeps      []string
	Labels            []string
	ManuallyGrouped   bool
	Pos               syntax.Position
}

type evaluator struct {
	dir, file string // the Tiltfile's directory and the name shown in messages
	src       []byte
	args      []string
	uname     string // answer to `uname -s` instead of running it, if set
	kubectl   string
	m         *Model
	// config.* state
	configDefs   map[string]*configDef
	positional   string
	parseCalled  bool
	localByName  map[string]bool
	k8sOptByName map[string]*K8sOptions
	imageByName  map[string]bool
	entityKeys   map[string]bool
}

type configDef struct {
	typ   string
	usage string
}

// Evaluate runs the Tiltfile once with the given Tilt args (what follows `--` in `tilt up -- ...`).
func Evaluate(dir, file string, src []byte, args []string, uname, kubectl, mode string) (*Model, error) {
	e := &evaluator{dir: dir, file: file, src: src, args: args, uname: uname, kubectl: kubectl,
		m: &Model{Mode: mode, Args: args}, configDefs: map[string]*configDef{},
		localByName: map[string]bool{}, k8sOptByName: map[string]*K8sOptions{},
		imageByName: map[string]bool{}, entityKeys: map[string]bool{}}
	thread := &starlark.Thread{
		Name:  "tiltcheck",
		Print: func(_ *starlark.Thread, msg string) { fmt.Fprintf(os.Stderr, "  [Tiltfile print] %s\n", msg) },
		Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			return nil, fmt.Errorf("load(%q): tiltcheck does not follow load(); evaluate the loaded file's builtins here first", module)
		},
	}
	_, err := starlark.ExecFileOptions(tiltDialect, thread, file, src, e.predeclared())
	if err != nil {
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			return e.m, fmt.Errorf("%s", ee.Backtrace())
		}
		if strings.Contains(err.Error(), "undefined:") {
			return e.m, fmt.Errorf("%v\n(tiltcheck implements these Tilt builtins: %s; if Tilt has this one, add it to e2e/tools/tiltcheck/eval.go with Tilt's parameter list)",
				err, strings.Join(implemented, ", "))
		}
		return e.m, err
	}
	return e.m, nil
}

func (e *evaluator) predeclared() starlark.StringDict {
	b := func(name string, f func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, f)
	}
	return starlark.StringDict{
		"local":               b("local", e.local),
		"local_resource":      b("local_resource", e.localResource),
		"docker_build":        b("docker_build", e.dockerBuild),
		"k8s_yaml":            b("k8s_yaml", e.k8sYaml),
		"kustomize":           b("kustomize", e.kustomize),
		"k8s_resource":        b("k8s_resource", e.k8sResource),
		"read_file":           b("read_file", e.readFile),
		"watch_file":          b("watch_file", e.watchFile),
		"TRIGGER_MODE_AUTO":   triggerMode("TRIGGER_MODE_AUTO"),
		"TRIGGER_MODE_MANUAL": triggerMode("TRIGGER_MODE_MANUAL"),
		"config": &starlarkstruct.Module{Name: "config", Members: starlark.StringDict{
			"define_bool":        b("config.define_bool", e.defineConfig("bool")),
			"define_string":      b("config.define_string", e.defineConfig("string")),
			"define_string_list": b("config.define_string_list", e.defineConfig("string_list")),
			"parse":              b("config.parse", e.configParse),
		}},
	}
}

// ---------------------------------------------------------------- values ---

// blob is Tilt's Blob: text that str() returns as is.
type blob struct{ text, source string }

func (b *blob) String() string        { return b.text }
func (b *blob) Type() string          { return "blob" }
func (b *blob) Freeze()               {}
func (b *blob) Truth() starlark.Bool  { return len(b.text) > 0 }
func (b *blob) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: blob") }

type triggerMode string

func (t triggerMode) String() string        { return string(t) }
func (t triggerMode) Type() string          { return "TriggerMode" }
func (t triggerMode) Freeze()               {}
func (t triggerMode) Truth() starlark.Bool  { return true }
func (t triggerMode) Hash() (uint32, error) { return starlark.String(t).Hash() }

// anyValue accepts any value (for parameters whose value tiltcheck does not inspect).
type anyValue struct{ v starlark.Value }

func (a *anyValue) Unpack(v starlark.Value) error { a.v = v; return nil }

// stringOrList is Tilt's value.StringOrStringList.
type stringOrList struct {
	set    bool
	values []string
}

func (s *stringOrList) Unpack(v starlark.Value) error {
	s.set = true
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.String:
		s.values = []string{string(x)}
		return nil
	case *blob:
		s.values = []string{x.text}
		return nil
	case starlark.Iterable:
		it := x.Iterate()
		defer it.Done()
		var item starlark.Value
		for it.Next(&item) {
			str, ok := starlark.AsString(item)
			if !ok {
				return fmt.Errorf("value should be a string or list of strings, but is a list containing a %s", item.Type())
			}
			s.values = append(s.values, str)
		}
		return nil
	}
	return fmt.Errorf("value should be a string or list of strings, but is of type %s", v.Type())
}

// stringMap is Tilt's value.StringStringMap.
type stringMap map[string]string

func (m *stringMap) Unpack(v starlark.Value) error {
	d, ok := v.(*starlark.Dict)
	if !ok {
		return fmt.Errorf("value should be a dict of string to string, but is of type %s", v.Type())
	}
	*m = stringMap{}
	for _, kv := range d.Items() {
		k, ok1 := starlark.AsString(kv[0])
		val, ok2 := starlark.AsString(kv[1])
		if !ok1 || !ok2 {
			return fmt.Errorf("value should be a dict of string to string, but has %s: %s", kv[0].Type(), kv[1].Type())
		}
		(*m)[k] = val
	}
	return nil
}

// ------------------------------------------------------------- helpers ---

func (e *evaluator) pos(thread *starlark.Thread) syntax.Position { return thread.CallFrame(1).Pos }

func (e *evaluator) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(e.dir, p)
}

func (e *evaluator) rel(p string) string {
	if r, err := filepath.Rel(e.dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// mustExist is tiltcheck's own check, stricter than Tilt (which watches a missing path quietly,
// so a typo there means the resource never reruns).
func (e *evaluator) mustExist(what, p string) error {
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("%s %q does not exist (%s)", what, e.rel(p), e.dir)
	}
	return nil
}

// cmdValue turns Tilt's command forms (a string run with `sh -c`, or an argv list) into an argv.
func cmdValue(fn string, param string, v starlark.Value) ([]string, error) {
	switch x := v.(type) {
	case nil, starlark.NoneType:
		return nil, nil
	case starlark.String:
		if x == "" {
			return nil, nil
		}
		return []string{"sh", "-c", string(x)}, nil
	case *blob:
		return []string{"sh", "-c", x.text}, nil
	case *starlark.List, starlark.Tuple:
		var s stringOrList
		if err := s.Unpack(v); err != nil {
			return nil, fmt.Errorf("%s: for parameter %s: %v", fn, param, err)
		}
		return s.values, nil
	}
	return nil, fmt.Errorf("%s: for parameter %s: a command must be a string or a list of strings, not %s", fn, param, v.Type())
}

// Tilt's label rule (value.LabelSet): starts and ends alphanumeric, [-_.a-zA-Z0-9], at most 63.
var labelRE = regexp.MustCompile(`^[a-zA-Z0-9]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$`)

func checkLabels(fn string, labels []string) error {
	for _, l := range labels {
		if len(l) > 63 || !labelRE.MatchString(l) {
			return fmt.Errorf("%s: invalid label %q: a label must start and end with an alphanumeric character, contain only letters, digits, '-', '_' and '.', and be at most 63 characters", fn, l)
		}
	}
	return nil
}

// ---------------------------------------------------------------- local ---

// mkdir -p of plain relative paths inside the repository: harmless, and the Tiltfile depends on it.
var mkdirRE = regexp.MustCompile(`^mkdir -p( [A-Za-z0-9._/-]+)+$`)

func (e *evaluator) local(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var command, commandBat, dir, stdin anyValue
	var quiet, echoOff bool
	var env stringMap
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"command", &command, "quiet?", &quiet, "command_bat", &commandBat, "echo_off", &echoOff,
		"env", &env, "dir?", &dir, "stdin?", &stdin); err != nil {
		return nil, err
	}
	argv, err := cmdValue(fn.Name(), "command", command.v)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("%s: empty command", fn.Name())
	}
	cmd := strings.Join(argv, " ")
	if len(argv) == 3 && argv[0] == "sh" && argv[1] == "-c" {
		cmd = argv[2]
	}
	// Tilt runs local() at every load of the Tiltfile; tiltcheck runs only commands known to
	// be harmless and refuses the rest, so that a new one is looked at before CI runs it.
	harmless := cmd == "uname -s" || (mkdirRE.MatchString(cmd) && !strings.Contains(cmd, "..") && !strings.Contains(cmd, " /"))
	if !harmless {
		return nil, fmt.Errorf("%s(%q): tiltcheck runs only harmless commands at load time (`uname -s`, `mkdir -p` of relative paths); "+
			"if this one is harmless too, allow it in e2e/tools/tiltcheck/eval.go", fn.Name(), cmd)
	}
	if cmd == "uname -s" && e.uname != "" {
		e.m.Locals = append(e.m.Locals, LocalCall{Cmd: cmd, Simulated: e.uname})
		return &blob{text: e.uname + "\n", source: "local: " + cmd}, nil
	}
	c := exec.Command("sh", "-c", cmd)
	c.Dir = e.dir
	if d, ok := starlark.AsString(dir.v); ok && d != "" {
		c.Dir = e.abs(d)
	}
	c.Env = os.Environ()
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("command %q failed.\nerror: %v\nstdout: %q\nstderr: %q", cmd, err, out, stderr.String())
	}
	e.m.Locals = append(e.m.Locals, LocalCall{Cmd: cmd, Ran: true})
	return &blob{text: string(out), source: "local: " + cmd}, nil
}

// -------------------------------------------------------- local_resource ---

func (e *evaluator) localResource(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var cmd, cmdBat, serveCmd, serveCmdBat, dir, serveDir, triggerMode, links, readiness anyValue
	var deps, ignore, labels stringOrList
	var resourceDeps starlark.Sequence
	var env, serveEnv stringMap
	autoInit, allowParallel := true, false
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"name", &name,
		"cmd?", &cmd,
		"deps?", &deps,
		"trigger_mode?", &triggerMode,
		"resource_deps?", &resourceDeps,
		"ignore?", &ignore,
		"auto_init?", &autoInit,
		"serve_cmd?", &serveCmd,
		"cmd_bat?", &cmdBat,
		"serve_cmd_bat?", &serveCmdBat,
		"allow_parallel?", &allowParallel,
		"links?", &links,
		"labels?", &labels,
		"env?", &env,
		"serve_env?", &serveEnv,
		"readiness_probe?", &readiness,
		"dir?", &dir,
		"serve_dir?", &serveDir,
	); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%s: name must not be empty", fn.Name())
	}
	if err := checkTriggerMode(fn.Name(), triggerMode.v); err != nil {
		return nil, err
	}
	argv, err := cmdValue(fn.Name(), "cmd", cmd.v)
	if err != nil {
		return nil, err
	}
	serveArgv, err := cmdValue(fn.Name(), "serve_cmd", serveCmd.v)
	if err != nil {
		return nil, err
	}
	if dir.v != nil && len(argv) == 0 {
		return nil, fmt.Errorf("local_resource: 'dir' specified but 'cmd' is empty")
	}
	if len(argv) == 0 && len(serveArgv) == 0 {
		return nil, fmt.Errorf("local_resource must have a cmd and/or a serve_cmd, but both were empty")
	}
	if len(serveArgv) > 0 {
		return nil, fmt.Errorf("%s %q: serve_cmd is not implemented in tiltcheck (it would need a process supervisor); add it to e2e/tools/tiltcheck", fn.Name(), name)
	}
	rdeps, err := stringSeq(fn.Name(), "resource_deps", resourceDeps)
	if err != nil {
		return nil, err
	}
	if err := checkLabels(fn.Name(), labels.values); err != nil {
		return nil, err
	}
	if e.localByName[name] {
		return nil, fmt.Errorf("local_resource named %q already exists", name)
	}
	e.localByName[name] = true
	r := &LocalResource{Name: name, Cmd: argv, Dir: e.dir, Env: env, ResourceDeps: rdeps,
		Labels: labels.values, Pos: e.pos(thread)}
	if d, ok := starlark.AsString(dir.v); ok && d != "" {
		r.Dir = e.abs(d)
		if err := e.mustExist(fmt.Sprintf("local_resource %q: dir", name), r.Dir); err != nil {
			return nil, err
		}
	}
	for _, d := range deps.values {
		p := e.abs(d)
		if err := e.mustExist(fmt.Sprintf("local_resource %q: deps entry", name), p); err != nil {
			return nil, err
		}
		r.Deps = append(r.Deps, p)
	}
	e.m.LocalResources = append(e.m.LocalResources, r)
	return starlark.None, nil
}

func checkTriggerMode(fn string, v starlark.Value) error {
	if v == nil {
		return nil
	}
	if _, ok := v.(triggerMode); !ok {
		return fmt.Errorf("%s: for parameter trigger_mode: got %s, want TRIGGER_MODE_AUTO or TRIGGER_MODE_MANUAL", fn, v.Type())
	}
	return nil
}

// stringSeq is Tilt's value.SequenceToStringSlice.
func stringSeq(fn, param string, seq starlark.Sequence) ([]string, error) {
	if seq == nil {
		return nil, nil
	}
	var out []string
	it := seq.Iterate()
	defer it.Done()
	var v starlark.Value
	for it.Next(&v) {
		s, ok := v.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s: %s: for parameter %s: value should be a string, but is of type %s", fn, param, param, v.Type())
		}
		out = append(out, string(s))
	}
	return out, nil
}

// ---------------------------------------------------------- docker_build ---

func (e *evaluator) dockerBuild(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ref, target string
	var contextVal, dockerfileVal, dockerfileContents, cache, liveUpdate, entrypoint, network, platform anyValue
	var buildArgs stringMap
	var ignore, only, ssh, secret, extraTag, cacheFrom, extraHosts stringOrList
	var matchInEnvVars, pull bool
	var containerArgs starlark.Sequence
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"ref", &ref,
		"context", &contextVal,
		"build_args?", &buildArgs,
		"dockerfile?", &dockerfileVal,
		"dockerfile_contents?", &dockerfileContents,
		"cache?", &cache,
		"live_update?", &liveUpdate,
		"match_in_env_vars?", &matchInEnvVars,
		"ignore?", &ignore,
		"only?", &only,
		"entrypoint?", &entrypoint,
		"container_args?", &containerArgs,
		"target?", &target,
		"ssh?", &ssh,
		"secret?", &secret,
		"network?", &network,
		"extra_tag?", &extraTag,
		"cache_from?", &cacheFrom,
		"pull?", &pull,
		"platform?", &platform,
		"extra_hosts?", &extraHosts,
	); err != nil {
		return nil, err
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("Argument 1 (ref): can't parse %q: %v", ref, err)
	}
	ctx, ok := starlark.AsString(contextVal.v)
	if !ok || ctx == "" {
		return nil, fmt.Errorf("Argument 2 (context): empty but is required")
	}
	img := &Image{Ref: ref, Named: named, Context: e.abs(ctx), Pos: e.pos(thread)}
	if fi, err := os.Stat(img.Context); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("docker_build(%q): the build context %q is not a directory", ref, ctx)
	}
	if dockerfileContents.v != nil && dockerfileVal.v != nil {
		return nil, fmt.Errorf("Cannot specify both dockerfile and dockerfile_contents keyword arguments")
	}
	switch {
	case dockerfileContents.v != nil:
		s, ok := starlark.AsString(dockerfileContents.v)
		if b, isBlob := dockerfileContents.v.(*blob); isBlob {
			s, ok = b.text, true
		}
		if !ok {
			return nil, fmt.Errorf("Argument (dockerfile_contents): must be string or blob.")
		}
		img.Dockerfile = s
	default:
		img.DockerfilePath = filepath.Join(img.Context, "Dockerfile")
		if dockerfileVal.v != nil {
			s, ok := starlark.AsString(dockerfileVal.v)
			if !ok {
				return nil, fmt.Errorf("%s: for parameter dockerfile: got %s, want string", fn.Name(), dockerfileVal.v.Type())
			}
			img.DockerfilePath = e.abs(s)
		}
		bs, err := os.ReadFile(img.DockerfilePath)
		if err != nil {
			return nil, fmt.Errorf("error reading dockerfile: %v", err)
		}
		e.m.ReadFiles = append(e.m.ReadFiles, img.DockerfilePath)
		img.Dockerfile = string(bs)
	}
	for _, p := range only.values {
		if strings.Contains(p, "*") {
			return nil, fmt.Errorf("'only' does not support '*' file globs. Must be a real path: %s", p)
		}
		if strings.Contains(p, "\n") {
			return nil, fmt.Errorf("only cannot contain newlines; found only: %q", p)
		}
	}
	for _, p := range ignore.values {
		if strings.Contains(p, "\n") {
			return nil, fmt.Errorf("ignore cannot contain newlines; found ignore: %q", p)
		}
	}
	for _, t := range extraTag.values {
		if _, err := reference.ParseNormalizedNamed(t); err != nil {
			return nil, fmt.Errorf("Argument extra_tag=%q not a valid image reference: %v", t, err)
		}
	}
	if _, err := stringSeq(fn.Name(), "container_args", containerArgs); err != nil {
		return nil, err
	}
	img.Only, img.Ignore = only.values, ignore.values
	if err := checkDockerfileAgainstContext(img); err != nil {
		return nil, err
	}
	if e.imageByName[named.String()] {
		return nil, fmt.Errorf("Image for ref %q has already been defined", named.String())
	}
	e.imageByName[named.String()] = true
	e.m.Images = append(e.m.Images, img)
	return starlark.None, nil
}

// -------------------------------------------------------------- k8s_yaml ---

func (e *evaluator) k8sYaml(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var yamlVal anyValue
	var allowDuplicates bool
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "yaml", &yamlVal, "allow_duplicates?", &allowDuplicates); err != nil {
		return nil, err
	}
	var items []starlark.Value
	switch x := yamlVal.v.(type) {
	case *starlark.List, starlark.Tuple:
		it := x.(starlark.Iterable).Iterate()
		var v starlark.Value
		for it.Next(&v) {
			items = append(items, v)
		}
		it.Done()
	case starlark.NoneType:
	default:
		items = []starlark.Value{x}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("Empty or Invalid YAML Resource Detected")
	}
	var entities []*Entity
	for _, item := range items {
		var text, source string
		switch x := item.(type) {
		case *blob:
			text, source = x.text, x.source
		case starlark.String:
			p := e.abs(string(x))
			bs, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("%s: reading %q: %v", fn.Name(), string(x), err)
			}
			e.m.ReadFiles = append(e.m.ReadFiles, p)
			text, source = string(bs), e.rel(p)
		default:
			return nil, fmt.Errorf("%s: for parameter yaml: got %s, want a path, a list of paths or a blob", fn.Name(), item.Type())
		}
		es, err := parseEntities(text, source)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", fn.Name(), err)
		}
		entities = append(entities, es...)
	}
	if len(entities) == 0 {
		return nil, fmt.Errorf("Empty or Invalid YAML Resource Detected")
	}
	for _, ent := range entities {
		key := ent.FullName() + ":" + ent.Group
		if e.entityKeys[key] && !allowDuplicates {
			return nil, fmt.Errorf("%s: duplicate YAML object %s (pass allow_duplicates=True if that is intended)", fn.Name(), ent.FullName())
		}
		e.entityKeys[key] = true
	}
	e.m.Entities = append(e.m.Entities, entities...)
	return starlark.None, nil
}

// ------------------------------------------------------------- kustomize ---

func (e *evaluator) kustomize(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	var kustomizeBin anyValue
	var flags stringOrList
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "paths", &path, "kustomize_bin?", &kustomizeBin, "flags?", &flags); err != nil {
		return nil, err
	}
	dir := e.abs(path)
	if err := e.mustExist(fn.Name()+": directory", dir); err != nil {
		return nil, err
	}
	if e.kubectl == "" {
		return nil, fmt.Errorf("%s(%q): no kubectl to render it with: pass -kubectl or set FLUXTUNE_KUBECTL (e2e/controlplane.sh builds the pinned one)", fn.Name(), path)
	}
	// What Tilt runs when no `kustomize` binary is on PATH: kubectl's built-in kustomize, with the
	// path relative to the Tiltfile's directory (files.go).
	argv := append([]string{"kustomize", e.rel(dir)}, flags.values...)
	key := e.kubectl + "\x00" + e.dir + "\x00" + strings.Join(argv, "\x00")
	out, ok := rendered[key]
	if !ok {
		c := exec.Command(e.kubectl, argv...)
		c.Dir = e.dir
		var stderr bytes.Buffer
		c.Stderr = &stderr
		var err error
		if out, err = c.Output(); err != nil {
			return nil, fmt.Errorf("%s(%q): kubectl %s failed: %v\n%s", fn.Name(), path, strings.Join(argv, " "), err, stderr.String())
		}
		rendered[key] = out
	}
	var err error
	k := &Kustomization{Dir: e.rel(dir), Rendered: string(out)}
	k.Images, err = kustomizationImages(dir)
	if err != nil {
		return nil, fmt.Errorf("%s(%q): %v", fn.Name(), path, err)
	}
	e.m.Kustomizations = append(e.m.Kustomizations, k)
	e.m.ReadFiles = append(e.m.ReadFiles, dir)
	return &blob{text: string(out), source: "kustomize: " + e.rel(dir)}, nil
}

// rendered remembers kubectl kustomize's output within one process (the modes of one check
// render the same directory).
var rendered = map[string][]byte{}

// kustomizationImages reads the image names a kustomization's `images:` rewrites to.
func kustomizationImages(dir string) ([]string, error) {
	var bs []byte
	var err error
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if bs, err = os.ReadFile(filepath.Join(dir, n)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil
	}
	var k struct {
		Images []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
		} `yaml:"images"`
	}
	if err := yaml.Unmarshal(bs, &k); err != nil {
		return nil, fmt.Errorf("reading kustomization: %v", err)
	}
	var out []string
	for _, i := range k.Images {
		if i.NewName != "" {
			out = append(out, i.NewName)
		} else {
			out = append(out, i.Name)
		}
	}
	return out, nil
}

// ---------------------------------------------------------- k8s_resource ---

func (e *evaluator) k8sResource(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	for _, kw := range kwargs {
		if n := string(kw[0].(starlark.String)); n == "name" || n == "yaml" || n == "image" {
			return nil, fmt.Errorf("It looks like k8s_resource is being called with deprecated arguments: it was called with kwarg %q, which no longer exists.", n)
		}
	}
	var workload, newName, podReadiness, discovery string
	var portForwards, extraPodSelectors, triggerMode, links anyValue
	var resourceDeps, objects starlark.Sequence
	var labels stringOrList
	autoInit := true
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"workload?", &workload,
		"new_name?", &newName,
		"port_forwards?", &portForwards,
		"extra_pod_selectors?", &extraPodSelectors,
		"trigger_mode?", &triggerMode,
		"resource_deps?", &resourceDeps,
		"objects?", &objects,
		"auto_init?", &autoInit,
		"pod_readiness?", &podReadiness,
		"links?", &links,
		"labels?", &labels,
		"discovery_strategy?", &discovery,
	); err != nil {
		return nil, err
	}
	name := workload
	manual := false
	if workload == "" {
		name, manual = newName, true
	}
	if err := checkTriggerMode(fn.Name(), triggerMode.v); err != nil {
		return nil, err
	}
	if err := checkPortForwards(fn.Name(), name, portForwards.v); err != nil {
		return nil, err
	}
	if podReadiness != "" && podReadiness != "ignore" && podReadiness != "wait" {
		return nil, fmt.Errorf("Invalid value. Allowed: {ignore, wait}. Got: %s", podReadiness)
	}
	if discovery != "" && discovery != "default" && discovery != "selectors-only" {
		return nil, fmt.Errorf("Invalid value. Allowed: {default, selectors-only}. Got: %s", discovery)
	}
	if err := checkLabels(fn.Name(), labels.values); err != nil {
		return nil, err
	}
	if prev, ok := e.k8sOptByName[name]; ok {
		return nil, fmt.Errorf("%s already called for %s, at %s", fn.Name(), name, prev.Pos)
	}
	rdeps, err := stringSeq(fn.Name(), "resource_deps", resourceDeps)
	if err != nil {
		return nil, err
	}
	objs, err := stringSeq(fn.Name(), "objects", objects)
	if err != nil {
		return nil, err
	}
	if manual && len(objs) == 0 {
		return nil, fmt.Errorf("k8s_resource doesn't specify a workload or any objects. All non-workload resources must specify 1 or more objects")
	}
	if manual && newName == "" {
		return nil, fmt.Errorf("k8s_resource has only non-workload objects but doesn't provide a new_name")
	}
	o := &K8sOptions{Workload: workload, NewName: newName, Objects: objs, ResourceDeps: rdeps,
		Labels: labels.values, ManuallyGrouped: manual, Pos: e.pos(thread)}
	e.k8sOptByName[name] = o
	e.m.K8sOptions = append(e.m.K8sOptions, o)
	return starlark.None, nil
}

// checkPortForwards is Tilt's convertPortForwards: an int, a "local[:container]" or
// "host:local:container" string, or a list of those.
func checkPortForwards(fn, name string, v starlark.Value) error {
	if v == nil {
		return nil
	}
	one := func(x starlark.Value) error {
		switch p := x.(type) {
		case starlark.Int:
			n, ok := p.Int64()
			if !ok || n < 0 || n > 65535 {
				return fmt.Errorf("portForward value %v is not in the range for a port [0-65535]", p)
			}
			return nil
		case starlark.String:
			parts := strings.Split(string(p), ":")
			if len(parts) > 3 {
				return fmt.Errorf("portForward value %q: at most host:local:container", string(p))
			}
			if len(parts) == 3 {
				parts = parts[1:]
			}
			for _, part := range parts {
				if n, err := strconv.Atoi(part); err != nil || n < 0 || n > 65535 {
					return fmt.Errorf("portForward value %q is not in the range for a port [0-65535]", part)
				}
			}
			return nil
		}
		return fmt.Errorf("port_forwards must be an int, a string, a port_forward, or a sequence of those; is a %s", x.Type())
	}
	wrap := func(err error) error {
		if err != nil {
			return fmt.Errorf("%s %q: %v", fn, name, err)
		}
		return nil
	}
	if seq, ok := v.(starlark.Sequence); ok && v.Type() != "string" {
		it := seq.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			if err := one(x); err != nil {
				return wrap(err)
			}
		}
		return nil
	}
	return wrap(one(v))
}

// ------------------------------------------------------- read/watch_file ---

func (e *evaluator) readFile(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	var def anyValue
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "paths", &path, "default?", &def); err != nil {
		return nil, err
	}
	p := e.abs(path)
	e.m.ReadFiles = append(e.m.ReadFiles, p)
	bs, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) && def.v != nil && def.v != starlark.None {
		s, ok := def.v.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("default must be NoneType or string. got %s", def.v.Type())
		}
		return &blob{text: string(s), source: "file: " + p}, nil
	} else if err != nil {
		return nil, err
	}
	return &blob{text: string(bs), source: "file: " + p}, nil
}

func (e *evaluator) watchFile(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "paths", &path); err != nil {
		return nil, err
	}
	p := e.abs(path)
	if err := e.mustExist(fn.Name()+": path", p); err != nil {
		return nil, err
	}
	e.m.ReadFiles = append(e.m.ReadFiles, p)
	return starlark.None, nil
}

// ---------------------------------------------------------------- config ---

func (e *evaluator) defineConfig(typ string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name, usage string
		var isArgs bool
		if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "name", &name, "args?", &isArgs, "usage?", &usage); err != nil {
			return nil, err
		}
		if name == "" {
			return nil, errors.New("'name' is required")
		}
		if e.parseCalled {
			return nil, fmt.Errorf("%s cannot be called after config.parse is called", fn.Name())
		}
		if _, ok := e.configDefs[name]; ok {
			return nil, fmt.Errorf("%s defined multiple times", name)
		}
		if isArgs {
			if e.positional != "" {
				return nil, fmt.Errorf("both %s and %s are defined as positional args", name, e.positional)
			}
			e.positional = name
		}
		e.configDefs[name] = &configDef{typ: typ, usage: usage}
		e.m.Flags = append(e.m.Flags, ConfigFlag{Name: name, Type: typ, Args: isArgs})
		return starlark.None, nil
	}
}

// configValue is Tilt's boolSetting/stringSetting/stringList for Go's flag package.
type configValue struct {
	typ  string
	set  bool
	b    bool
	s    string
	list []string
}

func (v *configValue) String() string   { return "" }
func (v *configValue) IsBoolFlag() bool { return v.typ == "bool" }
func (v *configValue) Set(s string) error {
	switch v.typ {
	case "bool":
		if v.set {
			return fmt.Errorf("bool settings can only be specified once. multiple values found (last value: %s)", s)
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.b = b
	case "string":
		if v.set {
			return fmt.Errorf("string settings can only be specified once. multiple values found (last value: %s)", s)
		}
		v.s = s
	default:
		v.list = append(v.list, s)
	}
	v.set = true
	return nil
}

func (v *configValue) starlark() starlark.Value {
	switch v.typ {
	case "bool":
		return starlark.Bool(v.b)
	case "string":
		return starlark.String(v.s)
	}
	var l []starlark.Value
	for _, s := range v.list {
		l = append(l, starlark.String(s))
	}
	return starlark.NewList(l)
}

func (e *evaluator) configParse(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs); err != nil {
		return nil, err
	}
	e.parseCalled = true
	values := map[string]*configValue{}
	// tilt_config.json next to the Tiltfile, then the args, which win.
	if bs, err := os.ReadFile(filepath.Join(e.dir, "tilt_config.json")); err == nil {
		var m map[string]any
		if err := yaml.Unmarshal(bs, &m); err != nil {
			return nil, fmt.Errorf("error parsing json from tilt_config.json: %v", err)
		}
		for k, raw := range m {
			def, ok := e.configDefs[k]
			if !ok {
				return nil, fmt.Errorf("tilt_config.json specified unknown setting name '%s'", k)
			}
			v := &configValue{typ: def.typ}
			switch x := raw.(type) {
			case bool:
				v.b, v.set = x, def.typ == "bool"
			case string:
				v.s, v.set = x, def.typ == "string"
			case []any:
				for _, i := range x {
					v.list = append(v.list, fmt.Sprint(i))
				}
				v.set = def.typ == "string_list"
			}
			if !v.set {
				return nil, fmt.Errorf("tilt_config.json specified invalid value for setting %s", k)
			}
			values[k] = v
		}
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fromArgs := map[string]*configValue{}
	names := make([]string, 0, len(e.configDefs))
	for n := range e.configDefs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := &configValue{typ: e.configDefs[n].typ}
		fromArgs[n] = v
		if n != e.positional {
			fs.Var(v, n, e.configDefs[n].usage)
		}
	}
	if err := fs.Parse(e.args); err != nil {
		return nil, fmt.Errorf("config.parse: Tilt args %q: %v\n%s", e.args, err, out.String())
	}
	if len(fs.Args()) > 0 {
		if e.positional == "" {
			return nil, errors.New("positional args were specified, but none were expected (no setting defined with args=True)")
		}
		for _, a := range fs.Args() {
			if err := fromArgs[e.positional].Set(a); err != nil {
				return nil, fmt.Errorf("error setting positional arg %s: %v", e.positional, err)
			}
		}
	}
	for k, v := range fromArgs {
		if v.set {
			values[k] = v
		}
	}
	d := starlark.NewDict(len(values))
	for k, v := range values {
		_ = d.SetKey(starlark.String(k), v.starlark())
	}
	return d, nil
}
