package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	require.Contains(t, served, "retention run")
	require.Contains(t, served, "export")
	for cmd := range served {
		assert.True(t, documented[cmd], "README's command table lacks `agentstore %s`", cmd)
	}
	for cmd := range documented {
		assert.True(t, served[cmd], "README documents `agentstore %s`, which the usage does not list", cmd)
	}
}
