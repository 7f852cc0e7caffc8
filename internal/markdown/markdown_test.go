package markdown

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const doc = "# Guide\n" + // line 1
	"\n" +
	"Run `make build` first.\n" +
	"\n" +
	"```sh\n" + // line 5
	"make build\n" +
	"```\n" +
	"\n" +
	"1. Then:\n" +
	"   ```sql\n" + // line 10
	"   SELECT 1;\n" +
	"     -- deeper\n" +
	"   ```\n" +
	"\n" +
	"## Statuses\n" + // line 15
	"\n" +
	"| legacy | new |\n" +
	"|---|---|\n" +
	"| `done`, `completed` | `succeeded` |\n" +
	"|  `failed` | `failed`  |\n" + // line 20
	"\n" +
	"### Statuses, more\n" +
	"\n" +
	"text\n" +
	"```\n" + // line 25: a block without a language, never closed
	"orphan\n"

func TestBlocks(t *testing.T) {
	blocks := Blocks(doc)
	require.Len(t, blocks, 2, "the unclosed block is left out")
	assert.Equal(t, Block{Lang: "sh", Line: 6, Text: "make build\n"}, blocks[0])
	// The list item's indentation is removed, and no more than it.
	assert.Equal(t, Block{Lang: "sql", Line: 11, Text: "SELECT 1;\n  -- deeper\n"}, blocks[1])

	assert.Empty(t, Blocks("no fences here\n"))
	assert.Equal(t, []Block{{Lang: "", Line: 2, Text: "\n"}}, Blocks("```\n```\n"), "an empty block without a language")
}

func TestSection(t *testing.T) {
	s, ok := Section(doc, "Statuses")
	require.True(t, ok)
	assert.Equal(t, "\n| legacy | new |\n|---|---|\n| `done`, `completed` | `succeeded` |\n|  `failed` | `failed`  |\n\n", s,
		"the section ends at the next heading, of any level")

	s, ok = Section(doc, "Statuses, more")
	require.True(t, ok)
	assert.Equal(t, "\ntext\n```\norphan\n", s, "the last section runs to the end")

	_, ok = Section(doc, "Status")
	assert.False(t, ok, "the heading must hold exactly the title")
	_, ok = Section(doc, "Run `make build` first.")
	assert.False(t, ok, "prose is not a heading")
	_, ok = Section("#Guide\n", "Guide")
	assert.False(t, ok, "a heading has a space after its #")
}

func TestTableRows(t *testing.T) {
	s, _ := Section(doc, "Statuses")
	assert.Equal(t, [][]string{{"`done`, `completed`", "`succeeded`"}, {"`failed`", "`failed`"}}, TableRows(s))
	assert.Empty(t, TableRows("| header only |\n|---|\n"))
	assert.Empty(t, TableRows("no table\n"))
	assert.Equal(t, [][]string{{"a", "", "c"}}, TableRows("| h | h | h |\n| a || c |\n"), "an empty cell stays")
}

func TestCodeSpans(t *testing.T) {
	assert.Equal(t, []string{"done", "completed"}, CodeSpans("`done`, `completed`"))
	assert.Equal(t, []string{"make build"}, CodeSpans("Run `make build` first."))
	assert.Empty(t, CodeSpans("no code here, nor in an unclosed `span"))
}

func TestShellCommands(t *testing.T) {
	for _, tc := range []struct {
		name, snippet string
		want          [][]string
	}{
		{"words", "agentstore migrate  status\n", [][]string{{"agentstore", "migrate", "status"}}},
		{"lines", "make build\nmake test\n\n", [][]string{{"make", "build"}, {"make", "test"}}},
		{"separators", "a 1; b && c || d | e & f", [][]string{{"a", "1"}, {"b"}, {"c"}, {"d"}, {"e"}, {"f"}}},
		{"single quotes", `psql -c 'SELECT "x" \n;' done`, [][]string{{"psql", "-c", `SELECT "x" \n;`, "done"}}},
		{"single quote never closed", `echo 'a b`, [][]string{{"echo", "a b"}}},
		{"double quotes and their escapes", `X="a \"b\" \$c \n" cmd`, [][]string{{`X=a "b" $c \n`, "cmd"}}},
		{"quotes join a word", `--url="postgres://u@h:5432/db"x`, [][]string{{"--url=postgres://u@h:5432/dbx"}}},
		{"line continuation", "agentstore legacy import \\\n  --dry-run\n", [][]string{{"agentstore", "legacy", "import", "--dry-run"}}},
		{"escaped space", `cat my\ file`, [][]string{{"cat", "my file"}}},
		{"comments", "# set up\nmake build # and then\nx#y\n", [][]string{{"make", "build"}, {"x#y"}}},
		{"export and assignments", "export A=1 B='2 3'\nC=4 cmd $A ${B}\n",
			[][]string{{"export", "A=1", "B=2 3"}, {"C=4", "cmd", "$A", "${B}"}}},
		{"empty", "  \n# only a comment\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ShellCommands(tc.snippet))
		})
	}
}
