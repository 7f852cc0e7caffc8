// Package loopback is what the load tools (loadgen, wsbench, soak) share:
// clients that can only reach this machine, as this workplace requires of
// load and fault tests, and readers of a server's memory and metrics.
package loopback

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// IsHost reports whether host names this machine: 127.0.0.1, localhost or ::1.
func IsHost(host string) bool {
	return host == "127.0.0.1" || host == "localhost" || host == "::1"
}

// Control is a net.Dialer Control that refuses, before connecting, every
// address that is not a loopback IP, whatever a name resolved to.
func Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
	}
	return nil
}

// HTTPClient is an HTTP client that only reaches loopback addresses, keeps
// up to conns connections alive, uses no proxy and follows no redirect.
func HTTPClient(conns int, timeout time.Duration) *http.Client {
	nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: Control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         nd.DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// WSDialer is a WebSocket dialer that only reaches loopback addresses,
// with small buffers: thousands of connections may live in one process.
func WSDialer(timeout time.Duration) *websocket.Dialer {
	nd := &net.Dialer{Timeout: timeout, Control: Control}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		Proxy:            nil, // never through a proxy
		HandshakeTimeout: timeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  512,
	}
}

// ReadRSS returns the VmRSS of process pid, in KiB.
func ReadRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return ParseVmRSS(f)
}

// ParseVmRSS finds the VmRSS line of a /proc/PID/status file, in KiB.
func ParseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line (a kernel thread, or a zombie?)")
}

// Scrape fetches a Prometheus text exposition and returns the values of
// the unlabelled series among names.
func Scrape(ctx context.Context, client *http.Client, u string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return ParseMetrics(resp.Body, names...)
}

// ParseMetrics reads the unlabelled samples of names from a Prometheus
// text exposition.
func ParseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", f[0], err)
		}
		out[f[0]] = v
	}
	return out, sc.Err()
}
