package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/markdown"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/webui"
)

// readme returns the repository's README.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	return string(b)
}

// TestHelpNamesTheBinary: the help of the binary, as run and as built,
// names it as the README does, and lists every command the README's
// table of the binary documents.
func TestHelpNamesTheBinary(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"help"}, func(string) (string, bool) { return "", false }, &out, &out))
	help := out.String()
	assert.True(t, strings.HasPrefix(help, "usage: agentstore [command]\n"), "%s", help)
	assert.NotContains(t, help, "usage: server")
	assert.True(t, strings.HasPrefix(legacyUsage, "usage: agentstore legacy "), "%s", legacyUsage)
	assert.NotContains(t, legacyUsage, "server legacy")

	section, ok := markdown.Section(readme(t), "Other commands")
	require.True(t, ok)
	n := 0
	for _, row := range markdown.TableRows(section) {
		for _, span := range markdown.CodeSpans(row[0]) {
			cmd, isBinary := strings.CutPrefix(span, "agentstore ")
			if !isBinary {
				continue
			}
			n++
			assert.Contains(t, help, "  "+commandWords(cmd), "the help lacks `agentstore %s`, which the README documents", cmd)
		}
	}
	assert.GreaterOrEqual(t, n, 3, "the README documents the binary's commands")

	if binary != "" {
		got, err := exec.Command(binary, "help").CombinedOutput()
		require.NoError(t, err, "%s", got)
		assert.Equal(t, help, string(got), "the built binary's help")
	}
}

// TestReadmeSaysWhatTestAndCINeed keeps the README's promises about
// `make test` and CI true: the packages scripts/services.sh installs, that
// it needs root and the npm registry, and the targets .ci/run runs.
func TestReadmeSaysWhatTestAndCINeed(t *testing.T) {
	doc := readme(t)
	intro, ok := markdown.Section(doc, "Two commands")
	require.True(t, ok)

	services, err := os.ReadFile("../../scripts/services.sh")
	require.NoError(t, err)
	major := regexp.MustCompile(`PG_MAJOR=\$\{PG_MAJOR:-(\d+)\}`).FindSubmatch(services)
	require.NotNil(t, major)
	var packages []string
	for _, m := range regexp.MustCompile(`need\+=\(([^)]+)\)`).FindAllSubmatch(services, -1) {
		packages = append(packages, strings.ReplaceAll(string(m[1]), `"postgresql-$PG_MAJOR"`, "postgresql-"+string(major[1])))
	}
	require.Contains(t, packages, "npm")
	for _, p := range packages {
		assert.Contains(t, intro, "`"+p+"`", "the README does not say that make test installs %s", p)
	}
	assert.Contains(t, string(services), "apt-get install", "services.sh apt-installs")
	assert.Contains(t, intro, "**root**")
	assert.Contains(t, intro, "**npm registry**")
	for _, what := range []string{"squawk", "PostgreSQL 17"} {
		assert.Contains(t, intro, what, "the README says what make test fetches from npm")
	}
	pg17, err := os.ReadFile("../../scripts/pg17.sh")
	require.NoError(t, err)
	assert.Contains(t, string(pg17), "npm install")

	ci, err := os.ReadFile("../../.ci/run")
	require.NoError(t, err)
	var targets []string
	for _, m := range regexp.MustCompile(`(?m)^make (\S+)`).FindAllStringSubmatch(string(ci), -1) {
		targets = append(targets, "`make "+m[1]+"`")
	}
	require.Equal(t, []string{"`make test`", "`make migrate-lint-all`"}, targets)
	assert.Contains(t, intro, "CI is `.ci/run`: "+strings.Join(targets, ", then ")+".")
	assert.NotRegexp(t, "`make migrate-lint` is what CI runs", doc)

	makefile, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	assert.Contains(t, string(makefile), "migrate-lint-all:\n\t$(SERVICES) -- $(GO) run ./tools/migratelint migrations/*.sql",
		"migrate-lint-all lints every file, as the README says")
	assert.Contains(t, string(makefile), "migrate-lint:\n\t$(SERVICES) -- $(GO) run ./tools/migratelint\n",
		"migrate-lint lints the new files, as the README says")
}

// commandWords returns the words of a command line up to its first flag
// or argument placeholder: "legacy import [--dry-run]" is "legacy import".
func commandWords(line string) string {
	var words []string
	for _, w := range strings.Fields(line) {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") || strings.HasPrefix(w, "<") || strings.ToUpper(w) == w {
			break
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// TestReadmeListsEveryCommand keeps the README's table of the binary's
// commands and the binary's usage in step.
func TestReadmeListsEveryCommand(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `agentstore ([^`]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		documented[commandWords(m[1])] = true
	}
	served := map[string]bool{}
	_, list, ok := strings.Cut(usage, "commands:\n")
	require.True(t, ok)
	for _, line := range strings.Split(list, "\n") {
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			cmd, _, _ := strings.Cut(strings.TrimSpace(line), "  ") // the description follows two spaces
			served[commandWords(cmd)] = true
		}
	}
	for _, cmd := range []string{"retention run", "export", "rollups rebuild", "rollups verify", "seed"} {
		require.Contains(t, served, cmd)
	}
	for cmd := range served {
		assert.True(t, documented[cmd], "README's command table lacks `agentstore %s`", cmd)
	}
	for cmd := range documented {
		assert.True(t, served[cmd], "README documents `agentstore %s`, which the usage does not list", cmd)
	}
}

// TestSeedDemoCommand runs `seed --demo` on an empty embedded database:
// it prints the tenant and a /ui link with a token of it, a second run
// with --if-empty writes nothing, and the server started on that data
// directory serves the demo runs to that token.
func TestSeedDemoCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"DATA_DIR=" + dir, "ADDR=127.0.0.1:8089"}
	out, err := command(t, env, "seed", "--demo", "--if-empty")
	require.NoError(t, err, out)
	m := regexp.MustCompile(`(?m)^tenant: ([0-9a-f-]{36})$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	link := regexp.MustCompile(`http://127\.0\.0\.1:8089/ui/#token=(eyJ[A-Za-z0-9_.-]+)`).FindStringSubmatch(out)
	require.NotNil(t, link, out)
	tenantBytes, err := os.ReadFile(dir + "/" + devTenantFile)
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(tenantBytes)), m[1], "the development tenant by default")

	again, err := command(t, env, "seed", "--demo", "--if-empty")
	require.NoError(t, err, again)
	assert.Contains(t, again, "not seeded")

	_, err = command(t, env, "seed")
	require.Error(t, err, "seed needs --demo")

	s := start(t, "DATA_DIR="+dir)
	code, body := s.call(t, "GET", "/v1/runs?limit=200", link[1], "")
	require.Equal(t, 200, code, body)
	assert.Contains(t, body, `"agentName":"research-assistant"`)
	assert.Contains(t, body, `"status":"failed"`)
	code, body = s.call(t, "GET", "/v1/runs?limit=1", s.devToken, "")
	require.Equal(t, 200, code, body)
	assert.NotContains(t, body, `"data":[]`, "serve's development token sees the demo tenant")
}

// TestReadmeMakeTargets keeps the README and the Makefile in step: every
// `make X` the README names exists, and every documented target (a "## X:"
// comment) is named in the README.
func TestReadmeMakeTargets(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	makefile, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("make ([a-z][a-z0-9-]*)").FindAllStringSubmatch(string(readme), -1) {
		named[m[1]] = true
		assert.True(t, targets[m[1]], "README names `make %s`, which the Makefile does not define", m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^## ([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(makefile), -1) {
		assert.True(t, named[m[1]], "README does not document `make %s`", m[1])
	}
}

// TestReadmeRunViewer keeps the README's run viewer section true: the
// policy it quotes is the one the handler sends, and the page size it
// names is the store's.
func TestReadmeRunViewer(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "## Run viewer\n")
	require.True(t, ok)
	section, _, _ = strings.Cut(section, "\n## ")
	text := strings.Join(strings.Fields(section), " ")
	assert.Contains(t, text, "`"+webui.ContentSecurityPolicy+"`")
	assert.Contains(t, text, "up to "+strconv.Itoa(store.MaxStepPage)+" a page")
	assert.Contains(t, text, "`"+"TestRunViewerInBrowser"+"`")
	assert.Contains(t, text, "`WS_ALLOWED_ORIGINS`")
}
