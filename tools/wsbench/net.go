package main

import (
	"fmt"
	"net/url"
	"strings"
	"syscall"

	"github.com/agentstore/agentstore/tools/loopback"
)

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
	if !loopback.IsHost(u.Hostname()) {
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
