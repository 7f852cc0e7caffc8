package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/markdown"
)

// guide is the parsed migration guide.
type guide struct {
	text     string
	commands []guideCommand   // every simple command of the sh blocks, in order
	envNames map[string]int   // environment variables the sh blocks and the prose name, with a line
	sql      []markdown.Block // the sql blocks
}

// guideCommand is one simple command of an sh block.
type guideCommand struct {
	line  int
	words []string          // the command and its arguments, unquoted
	env   map[string]string // the exports of the session so far plus its own assignments
}

// parseGuide reads the guide: its sh blocks as one shell session (each
// `export` holds for the commands after it), its sql blocks, and the
// environment variables its blocks and prose name.
func parseGuide(t *testing.T) *guide {
	t.Helper()
	b, err := os.ReadFile(guidePath)
	require.NoError(t, err)
	g := &guide{text: string(b), envNames: map[string]int{}}
	session := map[string]string{}
	assignRE := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	refRE := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	for _, f := range markdown.Blocks(g.text) {
		switch f.Lang {
		case "sql":
			g.sql = append(g.sql, f)
			continue
		case "sh":
		default:
			t.Errorf("guide line %d: a %q block; commands go in sh blocks, SQL in sql blocks", f.Line, f.Lang)
			continue
		}
		for _, m := range refRE.FindAllStringSubmatch(f.Text, -1) {
			g.envNames[m[1]] = f.Line
		}
		for _, words := range markdown.ShellCommands(f.Text) {
			env := map[string]string{}
			for k, v := range session {
				env[k] = v
			}
			for len(words) > 0 {
				m := assignRE.FindStringSubmatch(words[0])
				if m == nil {
					break
				}
				env[m[1]], g.envNames[m[1]] = m[2], f.Line
				words = words[1:]
			}
			if len(words) == 0 {
				continue
			}
			if words[0] == "export" {
				for _, w := range words[1:] {
					m := assignRE.FindStringSubmatch(w)
					require.NotNil(t, m, "guide line %d: export %s", f.Line, w)
					session[m[1]], g.envNames[m[1]] = m[2], f.Line
				}
				continue
			}
			g.commands = append(g.commands, guideCommand{line: f.Line, words: words, env: env})
		}
	}
	// Variables named in the prose, such as `DB_TENANT_RLS=on`.
	for _, m := range regexp.MustCompile("`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`").FindAllStringSubmatchIndex(g.text, -1) {
		g.envNames[g.text[m[2]:m[3]]] = 1 + strings.Count(g.text[:m[0]], "\n")
	}
	require.NotEmpty(t, g.commands)
	return g
}

// isBinary reports whether a command word is the agentstore binary.
func isBinary(word string) bool {
	return word == "agentstore" || word == "bin/agentstore" || word == "./bin/agentstore"
}

// guideURLParts returns the role (without Supavisor's ".<project-ref>")
// and the port of a guide's postgres URL, which may hold placeholders.
func guideURLParts(u string) (user, port string) {
	m := regexp.MustCompile(`^postgres(?:ql)?://([^:@/]+)(?::[^@]*)?@[^/]*:(\d+)/`).FindStringSubmatch(u)
	if m == nil {
		return "", ""
	}
	user, _, _ = strings.Cut(m[1], ".")
	return user, m[2]
}

// sqlOf returns the guide's sql blocks of one kind: "role" (creates
// agentstore_app), "freeze" and "unfreeze" (legacy write privileges),
// "rollback copy" (copies rows back into public), "drop" (removes the
// schema and the role), "analyze", "check" (read-only queries) or
// "example" (migration files and hand-run DDL, which the test does not
// run).
func (g *guide) sqlOf(t *testing.T, kind string) []markdown.Block {
	t.Helper()
	var out []markdown.Block
	for _, b := range g.sql {
		if sqlKind(b.Text) == kind {
			out = append(out, b)
		}
	}
	return out
}

func sqlKind(text string) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			lines = append(lines, l)
		}
	}
	s := strings.ToUpper(strings.Join(lines, " "))
	switch {
	case strings.Contains(s, "CREATE ROLE AGENTSTORE_APP "):
		return "role"
	case strings.Contains(s, "DROP SCHEMA"):
		return "drop"
	case strings.Contains(s, "INSERT INTO PUBLIC."):
		return "rollback copy"
	case strings.HasPrefix(s, "REVOKE ") && strings.Contains(s, " ON PUBLIC."):
		return "freeze"
	case strings.HasPrefix(s, "GRANT ") && strings.Contains(s, " ON PUBLIC."):
		return "unfreeze"
	case strings.HasPrefix(s, "ANALYZE "):
		return "analyze"
	}
	for _, stmt := range strings.Split(s, ";") {
		if stmt = strings.TrimSpace(stmt); stmt == "" {
			continue
		}
		if !strings.HasPrefix(stmt, "SELECT ") && !strings.HasPrefix(stmt, "EXPLAIN ") && !strings.HasPrefix(stmt, "WITH ") {
			return "example"
		}
	}
	return "check"
}

// section returns the text under the heading title, up to the next
// heading.
func (g *guide) section(t *testing.T, title string) string {
	t.Helper()
	s, ok := markdown.Section(g.text, title)
	require.True(t, ok, "the guide has no section %q", title)
	return s
}

// statusMap reads a "| legacy statuses | new status |" table.
func (g *guide) statusMap(t *testing.T, title string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, row := range markdown.TableRows(g.section(t, title)) {
		require.Len(t, row, 2, "status table %q", title)
		to := markdown.CodeSpans(row[1])
		require.NotEmpty(t, to, "status table %q: %v", title, row)
		for _, from := range markdown.CodeSpans(row[0]) {
			out[from] = to[0]
		}
	}
	return out
}

// mappingTable reads the field-by-field table of one table: the legacy and
// the new columns it names.
func (g *guide) mappingTable(t *testing.T, table string) (legacyCols, newCols []string) {
	t.Helper()
	for _, row := range markdown.TableRows(g.section(t, "`"+table+"`")) {
		require.Len(t, row, 5, "mapping table of %s", table)
		if spans := markdown.CodeSpans(row[0]); len(spans) > 0 {
			legacyCols = append(legacyCols, spans[0])
		}
		if spans := markdown.CodeSpans(row[2]); len(spans) > 0 {
			newCols = append(newCols, spans[0])
		}
	}
	return legacyCols, newCols
}

// guideRun is one distinct invocation of the binary in the guide.
type guideRun struct {
	line int
	args []string
	env  map[string]string
}

// guideRuns are the guide's binary invocations, deduplicated.
type guideRuns []guideRun

// invocations returns the guide's distinct binary invocations, failing on
// a command this test does not know how to check.
func (g *guide) invocations(t *testing.T) guideRuns {
	t.Helper()
	var out guideRuns
	seen := map[string]bool{}
	for _, c := range g.commands {
		if !isBinary(c.words[0]) {
			continue
		}
		r := guideRun{line: c.line, args: c.words[1:], env: c.env}
		require.NotEmpty(t, r.args, "guide line %d: agentstore without a command", c.line)
		require.NotEqual(t, "?", r.kind(), "guide line %d: `agentstore %s` is a command this test does not know how to check; teach it",
			c.line, strings.Join(r.args, " "))
		key := strings.Join(r.args, " ") + "\x00" + fmt.Sprint(r.env)
		if !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}

func (r guideRun) kind() string {
	a := strings.Join(r.args, " ")
	switch {
	case a == "help", a == "migrate status", a == "migrate apply", a == "legacy verify", a == "serve":
		return a
	case strings.HasPrefix(a, "legacy import"):
		return "legacy import"
	case strings.HasPrefix(a, "rollups verify"), strings.HasPrefix(a, "rollups rebuild"):
		return strings.Join(r.args[:2], " ")
	case r.args[0] == "token":
		return "token"
	case strings.HasPrefix(a, "retention run"):
		return "retention run"
	}
	return "?"
}

// of returns the invocations of one kind (see guideRun.kind), distinct by
// arguments: the staging and the production run of a command are one run
// on the scratch database.
func (rs guideRuns) of(kind string) guideRuns {
	var out guideRuns
	seen := map[string]bool{}
	for _, r := range rs {
		if key := strings.Join(r.args, " "); r.kind() == kind && !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}

// legacyImports splits the `legacy import` runs into dry runs, plain
// imports and incremental passes.
func (rs guideRuns) legacyImports() (dry, plain, incremental guideRuns) {
	for _, r := range rs.of("legacy import") {
		switch {
		case slices.Contains(r.args, "--dry-run"):
			dry = append(dry, r)
		case slices.Contains(r.args, "--incremental"):
			incremental = append(incremental, r)
		default:
			plain = append(plain, r)
		}
	}
	return dry, plain, incremental
}
