package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/dbtest"
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

// runbookURL is where every alert's runbook_url points, up to the anchor.
const runbookURL = "https://github.com/agentstore/agentstore/blob/main/docs/development/runbook.md#"

// exportedMetrics starts the server on a migrated PostgreSQL database and
// Redis, makes the requests that create the labelled series (a request, a
// 429 with RATE_LIMIT_MAX=1, a readiness check), and returns the metric
// families its /metrics exports, by name, with their type.
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	s := start(t, "DATABASE_URL="+dbtest.Postgres(t), "REDIS_URL="+dbtest.RedisURL(t),
		"SUPABASE_JWT_SECRET="+e2eSecret, "RATE_LIMIT_MAX=1")
	code, body := s.get(t, "/readyz")
	require.Equal(t, http.StatusOK, code, body)
	for range 2 {
		s.get(t, "/openapi.json")
	}
	code, body = s.get(t, "/openapi.json")
	require.Equal(t, http.StatusTooManyRequests, code, "RATE_LIMIT_MAX=1 limits the third request")
	code, body = s.get(t, "/metrics")
	require.Equal(t, http.StatusOK, code)
	families := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(body, -1) {
		families[m[1]] = m[2]
	}
	require.NotEmpty(t, families)
	return families
}

// exported reports whether a series name belongs to one of the families:
// the family itself, or a histogram's (a summary's) _bucket, _sum, _count.
func exported(families map[string]string, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if typ := families[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
				return true
			}
		}
	}
	return false
}

var (
	// rePromString matches a PromQL string literal.
	rePromString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	// reMetricName matches the names of the series agentstore exports:
	// its own, the connection pool's (go_sql_*), Go's and the process's.
	reMetricName = regexp.MustCompile(`\b(?:agentstore|go|process)_[a-z0-9_]+`)
)

// promMetrics returns the series names a PromQL expression selects.
func promMetrics(expr string) []string {
	return reMetricName.FindAllString(rePromString.ReplaceAllString(expr, `""`), -1)
}

// headingAnchors returns the GitHub anchors of a markdown document's
// headings.
func headingAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(doc, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(m[1])) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

// TestMonitoringNamesRealMetrics keeps the alert rules, the dashboard, the
// runbook and the code in step: every series they name is exported by a
// running server, every alert has a runbook_url whose anchor is a section
// of docs/development/runbook.md, and every section of the runbook is an
// alert.
func TestMonitoringNamesRealMetrics(t *testing.T) {
	t.Parallel()
	families := exportedMetrics(t)
	alerts, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(alerts, &rules))
	runbook, err := os.ReadFile("../../docs/development/runbook.md")
	require.NoError(t, err)
	sections := headingAnchors(string(runbook))
	var (
		n       int
		used    = map[string]bool{}
		alerted = map[string]bool{}
	)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			refs := promMetrics(r.Expr)
			require.NotEmpty(t, refs, "alert %s names no metric", r.Alert)
			for _, m := range refs {
				assert.True(t, exported(families, m), "alert %s uses %s, which the server does not export", r.Alert, m)
				used[m] = true
			}
			u := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(u, runbookURL)
			if assert.True(t, ok, "alert %s: runbook_url %q is not a section of %s", r.Alert, u, strings.TrimSuffix(runbookURL, "#")) {
				assert.True(t, sections[anchor], "alert %s: runbook.md has no section #%s", r.Alert, anchor)
				assert.Equal(t, strings.ToLower(r.Alert), anchor, "alert %s: its runbook section is named after it", r.Alert)
				alerted[anchor] = true
			}
		}
	}
	assert.GreaterOrEqual(t, n, 4)
	for _, m := range []string{"agentstore_ws_local_only", "agentstore_http_requests_total", "agentstore_http_request_duration_seconds_bucket",
		"agentstore_ready", "go_sql_in_use_connections", "go_sql_wait_duration_seconds_total", "agentstore_ratelimit_fallback_active"} {
		assert.True(t, used[m], "no alert watches %s", m)
	}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(runbook), -1) {
		assert.True(t, alerted[strings.ToLower(m[1])], "runbook section %q is no alert's", m[1])
	}
	for _, m := range promMetrics(string(runbook)) {
		assert.True(t, exported(families, m), "the runbook names %s, which the server does not export", m)
	}
	// Links between sections and into the other docs.
	docs := map[string]map[string]bool{"": sections}
	for _, m := range regexp.MustCompile(`\]\(([a-z0-9-]*\.md)?#([^)]+)\)`).FindAllStringSubmatch(string(runbook), -1) {
		if docs[m[1]] == nil {
			b, err := os.ReadFile(filepath.Join("../../docs/development", m[1]))
			require.NoError(t, err, "the runbook links to %s", m[1])
			docs[m[1]] = headingAnchors(string(b))
		}
		assert.True(t, docs[m[1]][m[2]], "the runbook links to %s#%s, which has no such section", m[1], m[2])
	}

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
	titles := map[string]bool{}
	var ws, db bool
	for _, p := range d.Panels {
		titles[p.Title] = true
		for _, tg := range p.Targets {
			for _, m := range promMetrics(tg.Expr) {
				assert.True(t, exported(families, m), "panel %q uses %s, which the server does not export", p.Title, m)
				ws = ws || strings.HasPrefix(m, "agentstore_ws_")
				db = db || strings.HasPrefix(m, "go_sql_")
			}
		}
	}
	assert.True(t, ws, "the dashboard shows the WebSocket hub")
	assert.True(t, db, "the dashboard shows the database pool")
	for _, m := range regexp.MustCompile(`"([^"\n]+)"(?: and "([^"\n]+)")? panels?\b`).FindAllStringSubmatch(string(runbook), -1) {
		for _, title := range m[1:] {
			if title != "" {
				assert.True(t, titles[title], "the runbook names the dashboard panel %q, which the dashboard lacks", title)
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
