package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A process record is one line "NAME PID" of DIR/pids, in start order.
type pidRecord struct {
	name string
	pid  int
	line string // as read, so records kept by stopRecorded are written back unchanged
}

// startDetached starts argv with its output appended to DIR/logs/NAME.log and records its PID in
// DIR/pids. Detached (own session, no terminal, stdin from /dev/null, no descriptor of ours)
// so it outlives this process: the tests run after `up` returns, and a caller capturing our
// output (the fault tests) must not wait for the components to close it.
func startDetached(dir, name string, extraEnv []string, argv ...string) (int, error) {
	// Appended: a component started again (`start DIR etcd`) keeps its earlier log.
	log, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	// Files, not writers: the child writes to the log itself, with no copying goroutine of ours.
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if extraEnv != nil {
		cmd.Env = append(os.Environ(), extraEnv...)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	// Never waited for: once we exit, init adopts it (and reaps it when it ends).
	cmd.Process.Release()
	// Start returns once execve is past its point of no return, which is before the kernel
	// shows the new command line: until then `ours` would not recognise the process (and a
	// failing `up` would leave it running). Waits for it, briefly.
	want := strings.Join(argv, "\x00") + "\x00"
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || string(got) == want {
			break
		}
	}
	if err := appendFile(filepath.Join(dir, "pids"), fmt.Sprintf("%s %d\n", name, pid)); err != nil {
		return pid, err
	}
	return pid, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// alive is true if PID runs (a zombie does not count: on some sandboxes PID 1 reaps orphans
// seconds late, and a killed component must count as gone at once).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "PID (COMM) STATE ...": COMM may hold spaces and parentheses, the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i:]), ") Z ")
}

// ours is true if PID runs and is one of DIR's (every process started has a path inside DIR
// on its command line), so a recycled PID is never signalled.
func ours(dir string, pid int) bool {
	if !alive(pid) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), dir+"/")
}

// readPids reads DIR/pids; a missing file is no records.
func readPids(dir string) ([]pidRecord, error) {
	f, err := os.Open(filepath.Join(dir, "pids"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []pidRecord
	s := bufio.NewScanner(f)
	for s.Scan() {
		r := pidRecord{line: s.Text()}
		if fields := strings.Fields(r.line); len(fields) >= 1 {
			r.name = fields[0]
			if len(fields) >= 2 {
				r.pid, _ = strconv.Atoi(fields[1])
			}
		}
		recs = append(recs, r)
	}
	return recs, s.Err()
}

// writePids replaces DIR/pids with recs.
func writePids(dir string, recs []pidRecord) error {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.line + "\n")
	}
	return os.WriteFile(filepath.Join(dir, "pids"), []byte(b.String()), 0o644)
}

// forgetPid removes the record "NAME PID" from DIR/pids.
func forgetPid(dir, name string, pid int) error {
	recs, err := readPids(dir)
	if err != nil {
		return err
	}
	kept := recs[:0]
	for _, r := range recs {
		if r.line != fmt.Sprintf("%s %d", name, pid) {
			kept = append(kept, r)
		}
	}
	return writePids(dir, kept)
}

// runningPid is the recorded PID of NAME if it runs and is DIR's, else 0.
func runningPid(dir, name string) (int, error) {
	recs, err := readPids(dir)
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if r.name == name && ours(dir, r.pid) {
			return r.pid, nil
		}
	}
	return 0, nil
}

// stopGrace is how long stop waits after SIGTERM before SIGKILL.
var stopGrace = 10 * time.Second

// stop sends SIGTERM, gives PID up to stopGrace, then SIGKILLs it. Only DIR's processes.
// It returns false if the process had to be killed.
func stop(dir string, pid int) bool {
	if !ours(dir, pid) {
		return true
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(stopGrace); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !ours(dir, pid) {
			return true
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return false
}

// stopRecorded stops recorded processes in reverse start order (an apiserver whose etcd is
// gone hangs in shutdown): those `which` selects, keeping the others recorded.
func (h *harness) stopRecorded(which func(name string) bool) {
	recs, err := readPids(h.dir)
	h.must(err, "reading "+filepath.Join(h.dir, "pids"))
	var keep []pidRecord
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if which(r.name) {
			if !stop(h.dir, r.pid) {
				h.logf("%s (pid %d) ignored TERM for %d s, killing it", r.name, r.pid, int(stopGrace.Seconds()))
			}
		} else {
			keep = append([]pidRecord{r}, keep...)
		}
	}
	h.must(writePids(h.dir, keep), "writing "+filepath.Join(h.dir, "pids"))
}

// start starts a component detached (see startDetached) and remembers its PID for waitReady.
func (h *harness) start(name string, extraEnv []string, argv ...string) {
	pid, err := startDetached(h.dir, name, extraEnv, argv...)
	h.must(err, "starting "+name)
	h.pids[name] = pid
}

// errPortClash: the process died of a port it could not bind; the caller retries on others.
var errPortClash = errors.New("lost a port race")

// waitReady polls check every 0.2 s until it succeeds. If the process dies of a port clash,
// its record and log are moved aside and errPortClash returned; any other death or the timeout
// is an error (the log's tail goes to stderr with it).
func waitReady(dir, name string, pid int, timeout time.Duration, check func() bool) (time.Duration, error) {
	logPath := filepath.Join(dir, "logs", name+".log")
	t0 := time.Now()
	for !check() {
		if !alive(pid) {
			if data, _ := os.ReadFile(logPath); strings.Contains(string(data), "address already in use") {
				if err := forgetPid(dir, name, pid); err != nil {
					return 0, err
				}
				if err := os.Rename(logPath, logPath+".port-clash"); err != nil {
					return 0, err
				}
				return 0, errPortClash
			}
			return 0, fmt.Errorf("%s exited during startup (log: %s)", name, logPath)
		}
		if time.Since(t0) > timeout {
			return 0, fmt.Errorf("%s not ready after %ds (log: %s)", name, int(timeout.Seconds()), logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(t0), nil
}

// waitReady as a step of a command: logs readiness, reports a clash, dies otherwise.
func (h *harness) waitReady(name string, timeout time.Duration, check func() bool) error {
	pid := h.pids[name]
	took, err := waitReady(h.dir, name, pid, timeout, check)
	switch {
	case err == errPortClash:
		h.logf("%s lost a port race, retrying on other ports", name)
		return err
	case err != nil:
		if h.interrupted.Load() {
			h.die(err.Error()) // the hooks stopped it
		}
		if tail, terr := tailFile(filepath.Join(h.dir, "logs", name+".log"), 30); terr == nil {
			h.stderr.Write(tail)
		}
		h.die(err.Error())
	}
	h.logf("%s ready (pid %d) after %.1f s", name, pid, took.Seconds())
	return nil
}

// tailFile is the last n lines of path, as `tail -n` prints them.
func tailFile(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	// Read backwards in blocks until n line ends precede the last line (logs can be large).
	size := st.Size()
	const block = 64 << 10
	var buf []byte
	for off := size; ; {
		start := max(off-block, 0)
		chunk := make([]byte, off-start)
		if _, err := f.ReadAt(chunk, start); err != nil {
			return nil, err
		}
		buf = append(chunk, buf...)
		off = start
		body := buf
		if len(body) > 0 && body[len(body)-1] == '\n' {
			body = body[:len(body)-1]
		}
		if idx := nthLastNewline(body, n); idx >= 0 {
			return buf[idx+1:], nil
		}
		if off == 0 {
			return buf, nil
		}
	}
}

// nthLastNewline is the index of the n-th '\n' from the end of b, or -1.
func nthLastNewline(b []byte, n int) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return i
			}
		}
	}
	return -1
}
