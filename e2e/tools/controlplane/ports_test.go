package main

import (
	"fmt"
	"net"
	"testing"
)

func TestFreePortsAreFreeAndDistinct(t *testing.T) {
	p := newPortPicker()
	seen := map[int]bool{}
	for range 50 {
		port, err := p.free()
		if err != nil {
			t.Fatal(err)
		}
		if port < 20000 || port >= 32000 {
			t.Errorf("port %d outside 20000-31999 (below the ephemeral range)", port)
		}
		if seen[port] {
			t.Errorf("port %d handed out twice", port)
		}
		seen[port] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Errorf("port %d is not free: %v", port, err)
			continue
		}
		l.Close()
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if !portInUse(port) {
		t.Errorf("port %d is listened on, but portInUse says it is free", port)
	}
	// The picker never returns it, even when chance proposes it first.
	tries := []int{port, port, port + 1}
	p := portPicker{picked: map[int]bool{}, inUse: portInUse, random: func() int { r := tries[0]; tries = tries[1:]; return r }}
	if got, _ := p.free(); got == port {
		t.Errorf("free() returned the port in use")
	}
}

func TestProcNetHasPort(t *testing.T) {
	table := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:4E22 06 00000000:00000000 03:00000A3B 00000000     0        0 0 3 0000000000000000
`)
	for port, want := range map[int]bool{20001: true, 40000: true, 20002: false, 0x4E2: false} {
		if got := procNetHasPort(table, port); got != want {
			t.Errorf("procNetHasPort(%d) = %v, want %v", port, got, want)
		}
	}
}

func TestPickerGivesUp(t *testing.T) {
	p := portPicker{picked: map[int]bool{}, inUse: func(int) bool { return true }, random: func() int { return 20000 }}
	if _, err := p.free(); err == nil {
		t.Error("free() found a port where every one is in use")
	}
}
