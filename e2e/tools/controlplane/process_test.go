package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDummy starts this test binary as a detached component NAME of dir: a process whose
// command line names a path inside dir, as every component's does.
func startDummy(t *testing.T, dir, name, mode string) int {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := startDetached(dir, name, []string{dummyEnv + "=" + mode}, self, "-test.run=^$", "--marker="+filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

func newDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSupervision(t *testing.T) {
	defer func(g time.Duration) { stopGrace = g }(stopGrace)
	stopGrace = 2 * time.Second
	dir := newDir(t)
	pid := startDummy(t, dir, "etcd", "sleep")
	// Detached: a session of its own, so neither our terminal's signals nor our exit reach it.
	if sid := statField(t, pid, 6); sid != strconv.Itoa(pid) {
		t.Errorf("the component's session is %s, want its own (%d)", sid, pid)
	}
	recs, err := readPids(dir)
	if err != nil || len(recs) != 1 || recs[0].name != "etcd" || recs[0].pid != pid {
		t.Fatalf("DIR/pids: %+v %v", recs, err)
	}
	// At once: the command line is ours as soon as startDetached returns.
	if !alive(pid) || !ours(dir, pid) {
		t.Fatalf("the started process is not alive and ours")
	}
	if got, _ := runningPid(dir, "etcd"); got != pid {
		t.Errorf("runningPid = %d, want %d", got, pid)
	}
	// Another DIR does not own it, nor a DIR whose path is a prefix of this one's.
	if ours(t.TempDir(), pid) || ours(dir[:len(dir)-1], pid) {
		t.Error("ours accepts a process of another DIR")
	}
	if ours(dir, os.Getpid()) {
		t.Error("ours accepts this test process, which names no path inside DIR")
	}
	if !stop(dir, pid) {
		t.Error("the dummy needed SIGKILL")
	}
	if ours(dir, pid) {
		t.Fatal("stop returned while the process runs")
	}
	// Stopping it again is nothing to do (the PID may be recycled by now: never signalled).
	if !stop(dir, pid) {
		t.Error("stop of a gone process")
	}
	if err := forgetPid(dir, "etcd", pid); err != nil {
		t.Fatal(err)
	}
	// Started again: a new PID, the log appended to.
	pid2 := startDummy(t, dir, "etcd", "sleep")
	if pid2 == pid || !ours(dir, pid2) {
		t.Errorf("started again: pid %d (was %d), ours %v", pid2, pid, ours(dir, pid2))
	}
	if recs, _ := readPids(dir); len(recs) != 1 || recs[0].pid != pid2 {
		t.Errorf("DIR/pids after the restart: %+v", recs)
	}
}

// A zombie is dead: right after a SIGKILL it must count as gone, reaped or not.
func TestAliveIgnoresZombies(t *testing.T) {
	dir := newDir(t)
	pid := startDummy(t, dir, "etcd", "sleep")
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatal("a SIGKILLed child (a zombie until reaped) counts as alive")
	}
	// Not reaped by us: it is our child, so it stays a zombie until this test ends.
	if state := statField(t, pid, 3); state != "Z" {
		t.Errorf("expected a zombie, the state is %s", state)
	}
}

// statField is field n (1-based, as in proc(5)) of /proc/PID/stat.
func statField(t *testing.T, pid, n int) string {
	t.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	after := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	return strings.Fields(after)[n-3]
}

// stopRecorded stops the selected processes in reverse start order and keeps the others' lines.
func TestStopRecorded(t *testing.T) {
	dir := newDir(t)
	var pids []int
	for _, name := range []string{"etcd", "kube-apiserver", "gitserver", "source-controller"} {
		pids = append(pids, startDummy(t, dir, name, "sleep"))
	}
	h := &harness{dir: dir, stderr: &bytes.Buffer{}}
	h.stopRecorded(isFluxProc)
	if ours(dir, pids[2]) || ours(dir, pids[3]) || !ours(dir, pids[0]) || !ours(dir, pids[1]) {
		t.Error("flux-down stopped the wrong processes")
	}
	recs, _ := readPids(dir)
	if len(recs) != 2 || recs[0].name != "etcd" || recs[1].name != "kube-apiserver" {
		t.Errorf("DIR/pids after stopping Flux: %+v", recs)
	}
	h.stopRecorded(func(string) bool { return true })
	if ours(dir, pids[0]) || ours(dir, pids[1]) {
		t.Error("down left processes running")
	}
}

func TestWaitReady(t *testing.T) {
	dir := newDir(t)
	ready := false
	pid := startDummy(t, dir, "etcd", "sleep")
	go func() { time.Sleep(300 * time.Millisecond); ready = true }()
	if _, err := waitReady(dir, "etcd", pid, 5*time.Second, func() bool { return ready }); err != nil {
		t.Errorf("waitReady: %v", err)
	}
	if _, err := waitReady(dir, "etcd", pid, 300*time.Millisecond, func() bool { return false }); err == nil || !strings.Contains(err.Error(), "not ready after") {
		t.Errorf("waitReady past its timeout: %v", err)
	}

	// A component that dies of a port clash: its record and log are moved aside for a retry.
	pid = startDummy(t, dir, "registry", "listen tcp 127.0.0.1:2: bind: address already in use")
	if _, err := waitReady(dir, "registry", pid, 5*time.Second, func() bool { return false }); err != errPortClash {
		t.Errorf("waitReady on a port clash: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", "registry.log.port-clash")); err != nil {
		t.Error("the clashed log was not moved aside")
	}
	if got, _ := readPids(dir); len(got) != 1 || got[0].name != "etcd" {
		t.Errorf("DIR/pids after the clash: %+v", got)
	}
	// Any other death is an error.
	pid = startDummy(t, dir, "gitserver", "fatal: no such repository")
	if _, err := waitReady(dir, "gitserver", pid, 5*time.Second, func() bool { return false }); err == nil || !strings.Contains(err.Error(), "exited during startup") {
		t.Errorf("waitReady on a crash: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "logs", "gitserver.log")); string(data) != "fatal: no such repository\n" {
		t.Errorf("the component's output is not in its log: %q", data)
	}
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 100000 {
		b.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	got, _ := tailFile(path, 3)
	if string(got) != "line 99997\nline 99998\nline 99999\n" {
		t.Errorf("tail of a large file: %q", got)
	}
	os.WriteFile(path, []byte("a\nb\nc"), 0o644)
	for n, want := range map[int]string{0: "", 1: "c", 2: "b\nc", 5: "a\nb\nc"} {
		if got, _ := tailFile(path, n); string(got) != want {
			t.Errorf("tail -n %d of a file without a final newline: %q, want %q", n, got, want)
		}
	}
}
