package loopback

import (
	"os"
	"strings"
	"testing"
)

func TestOnlyLoopback(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "localhost", "::1"} {
		if !IsHost(h) {
			t.Errorf("IsHost(%q) = false", h)
		}
	}
	for _, h := range []string{"example.com", "10.0.0.1", "localhost.example.com", ""} {
		if IsHost(h) {
			t.Errorf("IsHost(%q) = true", h)
		}
	}
	if err := Control("tcp", "192.0.2.1:80", nil); err == nil {
		t.Error("Control accepted 192.0.2.1")
	}
	for _, a := range []string{"127.0.0.1:80", "[::1]:80"} {
		if err := Control("tcp", a, nil); err != nil {
			t.Errorf("Control refused %s: %v", a, err)
		}
	}
}

func TestParsers(t *testing.T) {
	rss, err := ParseVmRSS(strings.NewReader("Name:\tx\nVmPeak:\t 10 kB\nVmRSS:\t   12345 kB\n"))
	if err != nil || rss != 12345 {
		t.Fatalf("%d, %v", rss, err)
	}
	if _, err := ParseVmRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("no VmRSS accepted")
	}
	if v, err := ReadRSS(os.Getpid()); err != nil || v <= 0 {
		t.Fatalf("own RSS %d, %v", v, err)
	}
	m, err := ParseMetrics(strings.NewReader("# HELP go_goroutines x\ngo_goroutines 42\nprocess_open_fds 7\nhttp_x{a=\"b\"} 3\n"),
		"go_goroutines", "process_open_fds", "missing")
	if err != nil || m["go_goroutines"] != 42 || m["process_open_fds"] != 7 || len(m) != 2 {
		t.Fatalf("%v, %v", m, err)
	}
}
