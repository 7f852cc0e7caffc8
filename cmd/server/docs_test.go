package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/ratelimit"
)

// definedMetrics returns the names of the Prometheus series the code
// defines, read from its sources.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`Name:\s*"(agentstore_[a-z0-9_]+)"`)
	err := filepath.WalkDir("../../internal", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range re.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return err
	})
	require.NoError(t, err)
	require.NotEmpty(t, names)
	return names
}

// referencedMetrics returns the agentstore_* series a text names, with
// histogram suffixes folded into their family.
func referencedMetrics(text string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`agentstore_[a-z0-9_]+`).FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(m, "_seconds"+suffix) {
				m = strings.TrimSuffix(m, suffix)
			}
		}
		out = append(out, m)
	}
	return out
}

func TestMonitoringNamesRealMetrics(t *testing.T) {
	defined := definedMetrics(t)
	alerts, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(alerts, &rules))
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			refs := referencedMetrics(r.Expr)
			require.NotEmpty(t, refs, "alert %s names no metric", r.Alert)
			for _, m := range refs {
				assert.True(t, defined[m], "alert %s uses %s, which the code does not define", r.Alert, m)
			}
		}
	}
	assert.GreaterOrEqual(t, n, 4)

	dash, err := os.ReadFile("../../deploy/grafana/agentstore-dashboard.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(dash, &d))
	require.NotEmpty(t, d.Panels)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range referencedMetrics(tg.Expr) {
				assert.True(t, defined[m], "panel %q uses %s, which the code does not define", p.Title, m)
			}
		}
	}
}

func TestRateLimitPolicyDocIsTrue(t *testing.T) {
	b, err := os.ReadFile("../../docs/development/rate-limit-policy.md")
	require.NoError(t, err)
	doc := string(b)

	httpKey := ratelimit.Key{Tenant: "<tenant or ->", Method: "<METHOD>", Route: "<route template>", IP: "<client ip>"}.String()
	assert.Contains(t, doc, httpKey, "the HTTP key format")
	assert.Contains(t, doc, ratelimit.EventKey("<tenant>", "<user>", "<ip>", "<event>"), "the WebSocket key format")

	read := map[string]bool{}
	_, _ = config.Load(func(k string) (string, bool) { read[k] = true; return "", false })
	defaults, err := config.Load(func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	want := map[string]string{
		"RATE_LIMIT_MAX":         strconv.Itoa(defaults.RateLimit.Max),
		"RATE_LIMIT_WINDOW_MS":   strconv.Itoa(int(defaults.RateLimit.Window / time.Millisecond)),
		"RATE_LIMIT_FAIL_MODE":   defaults.RateLimit.FailMode,
		"WS_BROADCAST_MAX":       strconv.Itoa(defaults.WS.BroadcastMax),
		"WS_BROADCAST_WINDOW_MS": strconv.Itoa(int(defaults.WS.BroadcastWindow / time.Millisecond)),
	}
	rows := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| ([^|]+) \\|").FindAllStringSubmatch(doc, -1)
	require.NotEmpty(t, rows)
	for _, r := range rows {
		name, def := r[1], strings.TrimSpace(r[2])
		assert.True(t, read[name], "the doc names %s, which the service does not read", name)
		if w, ok := want[name]; ok {
			assert.Equal(t, "`"+w+"`", def, "default of %s", name)
			delete(want, name)
		}
	}
	assert.Empty(t, want, "the doc lacks these variables")

	headers := ratelimit.Headers(ratelimit.Result{Limit: 120, Remaining: 0, Reset: time.Now().Add(time.Minute), Window: time.Minute, RetryAfter: time.Second})
	for h := range headers {
		assert.Contains(t, doc, "`"+h+"`", "header %s", h)
	}
	for _, s := range []string{"429", "503", derrors.CodeRateLimited, derrors.CodeUnavailable, `"retryAfterMs"`} {
		assert.Contains(t, doc, s)
	}
	defined := definedMetrics(t)
	for _, m := range referencedMetrics(doc) {
		assert.True(t, defined[m], "the doc names %s, which the code does not define", m)
	}
}
