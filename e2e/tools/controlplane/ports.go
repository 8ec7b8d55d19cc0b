package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
)

// portPicker hands out distinct free loopback ports for one invocation.
type portPicker struct {
	picked map[int]bool
	inUse  func(port int) bool
	random func() int
}

func newPortPicker() portPicker {
	return portPicker{
		picked: map[int]bool{},
		inUse:  portInUse,
		// Below the kernel's ephemeral range (32768 and up), so that outgoing connections do
		// not take it, and random, so two concurrent runs rarely pick the same one (a bind
		// failure is retried anyway: see waitReady).
		random: func() int { return 20000 + rand.IntN(12000) },
	}
}

// free returns a port nothing on this machine uses and this invocation has not handed out.
func (p *portPicker) free() (int, error) {
	// Bounded, unlike the bash loop: 12000 candidates all taken means something else is wrong.
	for range 100000 {
		port := p.random()
		if p.picked[port] || p.inUse(port) {
			continue
		}
		p.picked[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port in 20000-31999")
}

// portInUse is true if anything on this machine uses TCP port `port` locally, in any state
// (a TIME_WAIT socket too, which a bind test alone would miss), or if it cannot be bound.
func portInUse(port int) bool {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if data, err := os.ReadFile(f); err == nil && procNetHasPort(data, port) {
			return true
		}
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// procNetHasPort: the local address of some socket in a /proc/net/tcp table has that port.
func procNetHasPort(table []byte, port int) bool {
	re := regexp.MustCompile(fmt.Sprintf(`(?m)^ *[0-9]+: [0-9A-F]+:%04X `, port))
	return re.Match(table)
}
