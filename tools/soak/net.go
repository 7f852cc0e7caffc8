package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/agentstore/agentstore/tools/loopback"
)

// baseURL parses raw and refuses anything but http(s) to this machine.
func baseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: the scheme must be http or https", raw)
	}
	if !loopback.IsHost(u.Hostname()) {
		return nil, fmt.Errorf("%q: soak only targets 127.0.0.1, localhost or [::1], not %q", raw, u.Hostname())
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: no user information, please", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// checkDBURL refuses a database that is not on this machine over TCP.
func checkDBURL(raw string) error {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return err
	}
	if !loopback.IsHost(cfg.Host) {
		return fmt.Errorf("host %q: soak only connects to 127.0.0.1, localhost or [::1]", cfg.Host)
	}
	for _, fb := range cfg.Fallbacks {
		if !loopback.IsHost(fb.Host) {
			return fmt.Errorf("fallback host %q: soak only connects to 127.0.0.1, localhost or [::1]", fb.Host)
		}
	}
	return nil
}
