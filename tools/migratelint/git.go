package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// defaultBases are the refs tried, in order, when -base is not given.
var defaultBases = []string{"origin/main", "main"}

// gitNewFiles returns the names (in order) of the files among names, the
// *.sql files of dir, that are absent from the tree of the git ref base in
// dir (`git ls-tree BASE -- DIR`), plus a note describing the selection.
// base "" tries defaultBases. When no base resolves (or dir is not in a git
// repository) every file is returned.
func gitNewFiles(ctx context.Context, dir string, names []string, base string) ([]string, string, error) {
	candidates := defaultBases
	if base != "" {
		candidates = []string{base}
	}
	ref := ""
	for _, c := range candidates {
		if _, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", c+"^{commit}"); err == nil {
			ref = c
			break
		}
	}
	if ref == "" {
		return names, fmt.Sprintf("git base ref %s does not resolve in %s: linting all %d migration files",
			strings.Join(candidates, " nor "), dir, len(names)), nil
	}
	out, err := git(ctx, dir, "ls-tree", "--name-only", ref, "--", ".")
	if err != nil {
		return nil, "", err
	}
	known := make(map[string]bool)
	for _, n := range strings.Split(out, "\n") {
		known[n] = true
	}
	var news []string
	for _, n := range names {
		if !known[n] {
			news = append(news, n)
		}
	}
	return news, fmt.Sprintf("linting %d migration file(s) of %s absent from %s", len(news), dir, ref), nil
}

// git runs git in dir and returns its standard output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
