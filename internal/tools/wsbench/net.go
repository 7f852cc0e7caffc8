package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// loopbackHosts are the only hosts wsbench connects to.
var loopbackHosts = map[string]bool{"127.0.0.1": true, "localhost": true, "::1": true}

// baseURL parses raw and refuses anything but http(s) or ws(s) to this
// machine.
func baseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("%q: the scheme must be http, https, ws or wss", raw)
	}
	if !loopbackHosts[u.Hostname()] {
		return nil, fmt.Errorf("%q: wsbench only targets 127.0.0.1, localhost or [::1], not %q", raw, u.Hostname())
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: no user information, please", raw)
	}
	return u, nil
}

// wsURL is the WebSocket endpoint of the instance at base, with the token
// as access_token.
func wsURL(base, token string) (string, error) {
	u, err := baseURL(base)
	if err != nil {
		return "", fmt.Errorf("-ws %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(u.Path, "/v1/ws") {
		u.Path += "/v1/ws"
	}
	u.RawQuery = url.Values{"access_token": {token}}.Encode()
	return u.String(), nil
}

// apiURL is path on the HTTP instance at base; an empty path keeps base's.
func apiURL(base, path string) (string, error) {
	u, err := baseURL(base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	if path != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + path
		u.RawQuery = ""
	}
	return u.String(), nil
}

// loopbackOnly refuses, before connecting, every address that is not a
// loopback IP, whatever a name resolved to.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("wsbench: refusing to connect to %s: not a loopback address", address)
	}
	return nil
}

// newDialer is a WebSocket dialer that only reaches loopback addresses,
// with small buffers: thousands of connections live in this process.
func newDialer(timeout time.Duration) *websocket.Dialer {
	nd := &net.Dialer{Timeout: timeout, Control: loopbackOnly}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		Proxy:            nil, // never through a proxy
		HandshakeTimeout: timeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  512,
	}
}

// newHTTPClient is an HTTP client that only reaches loopback addresses,
// keeps up to conns connections alive and follows no redirect.
func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: loopbackOnly}
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

// raiseNoFile raises this process's RLIMIT_NOFILE soft limit to at least
// need (the hard limit too, when it is lower and the process may) and
// returns the soft limit in force.
func raiseNoFile(need uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur >= need {
		return rl.Cur, nil
	}
	want := rl
	want.Cur = need
	if want.Max < need {
		want.Max = need // only a privileged process may
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return rl.Cur, fmt.Errorf("%d file descriptors needed, RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %w (raise it with `ulimit -n`)",
			need, rl.Cur, rl.Max, err)
	}
	return need, nil
}

// readRSS returns the VmRSS of process pid, in KiB.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds the VmRSS line of a /proc/PID/status file.
func parseVmRSS(r io.Reader) (int64, error) {
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

// scrape fetches a Prometheus text exposition and returns the values of
// the unlabelled series among names.
func scrape(ctx context.Context, client *http.Client, u string, names ...string) (map[string]float64, error) {
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
	return parseMetrics(resp.Body, names...)
}

// parseMetrics reads the unlabelled samples of names from a Prometheus
// text exposition.
func parseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
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
