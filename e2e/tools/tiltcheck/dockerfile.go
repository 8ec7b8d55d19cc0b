package main

// The build context of a docker_build, as Tilt sends it to the builder: the context directory
// less .git, the .dockerignore (or <Dockerfile>.dockerignore), the ignore= patterns, and
// everything outside only= (Tilt turns only= into the dockerignore patterns "**" and "!<path>",
// docker.go onlysToDockerignorePatterns). Every COPY/ADD source of the Dockerfile must be in it:
// statically (not filtered out) at evaluation, and on disk once the resources the image waits for
// have run (the host binary is built by fluxtune-compile).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

type copySource struct {
	instr, src string
	line       int
}

// dockerfileCopySources returns the context sources of every COPY and ADD (not --from=, not URLs,
// not heredocs).
func dockerfileCopySources(df string) ([]copySource, error) {
	var out []copySource
	lines := strings.Split(df, "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue
			}
			line = strings.TrimSuffix(line, `\`) + " " + next
		}
		word, rest, _ := strings.Cut(line, " ")
		instr := strings.ToUpper(word)
		if instr != "COPY" && instr != "ADD" {
			continue
		}
		rest = strings.TrimSpace(rest)
		var args []string
		fromStage := false
		for {
			if !strings.HasPrefix(rest, "--") {
				break
			}
			flag, r, _ := strings.Cut(rest, " ")
			if strings.HasPrefix(flag, "--from=") {
				fromStage = true
			}
			rest = strings.TrimSpace(r)
		}
		if fromStage || strings.HasPrefix(rest, "<<") {
			continue
		}
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &args); err != nil {
				return nil, fmt.Errorf("Dockerfile line %d: %s: invalid JSON array: %v", start, instr, err)
			}
		} else {
			args = strings.Fields(rest)
		}
		if len(args) < 2 {
			return nil, fmt.Errorf("Dockerfile line %d: %s requires at least a source and a destination", start, instr)
		}
		for _, src := range args[:len(args)-1] {
			if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
				continue
			}
			out = append(out, copySource{instr: instr, src: src, line: start})
		}
	}
	return out, nil
}

type contextFilter struct {
	dockerignore     *patternmatcher.PatternMatcher
	dockerignoreFile string
	ignore           *patternmatcher.PatternMatcher
	only             []string
}

func newContextFilter(img *Image) (*contextFilter, error) {
	f := &contextFilter{}
	di := filepath.Join(img.Context, ".dockerignore")
	if img.DockerfilePath != "" {
		if _, err := os.Stat(img.DockerfilePath + ".dockerignore"); err == nil {
			di = img.DockerfilePath + ".dockerignore"
		}
	}
	if r, err := os.Open(di); err == nil {
		patterns, err := ignorefile.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %v", di, err)
		}
		if f.dockerignore, err = patternmatcher.New(patterns); err != nil {
			return nil, fmt.Errorf("%s: %v", di, err)
		}
		f.dockerignoreFile = di
	}
	var err error
	if f.ignore, err = patternmatcher.New(append([]string{".git"}, img.Ignore...)); err != nil {
		return nil, fmt.Errorf("ignore=%q: %v", img.Ignore, err)
	}
	for _, o := range img.Only {
		f.only = append(f.only, filepath.ToSlash(filepath.Clean(o)))
	}
	return f, nil
}

// excludedBy says why rel (slash path relative to the context) is not in the context, or "".
func (f *contextFilter) excludedBy(rel string) string {
	rel = filepath.ToSlash(filepath.Clean(rel))
	if rel == "." {
		return ""
	}
	if len(f.only) > 0 {
		in := false
		for _, o := range f.only {
			if rel == o || strings.HasPrefix(rel, o+"/") || strings.HasPrefix(o, rel+"/") || o == "." {
				in = true
			}
		}
		if !in {
			return fmt.Sprintf("only=%q", f.only)
		}
	}
	if m, _ := f.ignore.MatchesOrParentMatches(rel); m {
		return "ignore= (or .git, which Tilt always leaves out)"
	}
	if f.dockerignore != nil {
		if m, _ := f.dockerignore.MatchesOrParentMatches(rel); m {
			return f.dockerignoreFile
		}
	}
	return ""
}

func hasGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// checkDockerfileAgainstContext is the static check: no COPY/ADD source may be filtered out of
// the context.
func checkDockerfileAgainstContext(img *Image) error {
	srcs, err := dockerfileCopySources(img.Dockerfile)
	if err != nil {
		return fmt.Errorf("docker_build(%q): %v", img.Ref, err)
	}
	f, err := newContextFilter(img)
	if err != nil {
		return fmt.Errorf("docker_build(%q): %v", img.Ref, err)
	}
	for _, s := range srcs {
		if hasGlob(s.src) {
			continue
		}
		if why := f.excludedBy(s.src); why != "" {
			return fmt.Errorf("docker_build(%q): the Dockerfile's %s %s (line %d) is left out of the build context by %s, so the build would fail",
				img.Ref, s.instr, s.src, s.line, why)
		}
	}
	return nil
}

// checkContextOnDisk is the check once the image's resource_deps have run: every source exists.
// It returns a digest of the files that would be sent to the builder, for the image tag.
func checkContextOnDisk(img *Image) (string, int, error) {
	srcs, err := dockerfileCopySources(img.Dockerfile)
	if err != nil {
		return "", 0, err
	}
	f, err := newContextFilter(img)
	if err != nil {
		return "", 0, err
	}
	for _, s := range srcs {
		p := filepath.Join(img.Context, filepath.FromSlash(s.src))
		if hasGlob(s.src) {
			if ms, _ := filepath.Glob(p); len(ms) == 0 {
				return "", 0, fmt.Errorf("docker_build(%q): the Dockerfile's %s %s (line %d) matches nothing in the build context %s", img.Ref, s.instr, s.src, s.line, img.Context)
			}
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", 0, fmt.Errorf("docker_build(%q): the Dockerfile's %s %s (line %d): %s does not exist in the build context %s", img.Ref, s.instr, s.src, s.line, s.src, img.Context)
		}
	}
	h := sha256.New()
	io.WriteString(h, img.Dockerfile)
	var files []string
	err = filepath.WalkDir(img.Context, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(img.Context, p)
		if rel == "." {
			return nil
		}
		if f.excludedBy(rel) != "" {
			if d.IsDir() && (f.dockerignore == nil || !f.dockerignore.Exclusions()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	sort.Strings(files)
	for _, rel := range files {
		bs, err := os.ReadFile(filepath.Join(img.Context, rel))
		if err != nil {
			return "", 0, err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(bs))
		h.Write(bs)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], len(files), nil
}
