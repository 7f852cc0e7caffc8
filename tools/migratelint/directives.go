package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"ariga.io/atlas/sql/migrate"
)

// directive is an opt-out comment of a migration file:
//
//	-- lint:ignore CODE[,CODE...] reason: TEXT
//	-- atlas:nolint CODE[ CODE...] reason: TEXT
//
// A CODE is an Atlas code (DS103), an analyzer name (destructive, squawk)
// or a squawk rule (require-lock-timeout).
type directive struct {
	Line   int      // 1-based line of the comment
	Form   string   // "lint:ignore" or "atlas:nolint"
	Rules  []string // codes (upper case) or analyzer names (lower case)
	Reason string   // non-empty

	fileScope bool // applies to every statement of the file
	stmtPos   int  // position of the statement it applies to, if !fileScope
	used      bool // it suppressed a finding
}

// directives are the valid opt-outs of one file.
type directives []*directive

// match returns the first directive suppressing a diagnostic with the given
// code and analyzer at statement position pos, marking it used, or nil.
func (ds directives) match(pos int, code, analyzer string) *directive {
	for _, d := range ds {
		if (d.fileScope || d.stmtPos == pos) && (slices.Contains(d.Rules, code) || slices.Contains(d.Rules, analyzer)) {
			d.used = true
			return d
		}
	}
	return nil
}

// directiveError is a malformed or misplaced opt-out.
type directiveError struct {
	Line int
	Text string
}

var (
	// reDirective matches a comment line holding an opt-out directive.
	reDirective = regexp.MustCompile(`^\s*(?:--|/\*)\s*(lint:ignore|atlas:nolint)\b(.*?)\s*(?:\*/)?\s*$`)
	// reReason matches the start of the reason.
	reReason = regexp.MustCompile(`(?i)\breason\s*:`)
	// reCode matches a lint code such as DS103.
	reCode = regexp.MustCompile(`^[A-Za-z]{2}\d{3}$`)
)

// parseDirectives finds the opt-out directives of a file with content b
// and statements stmts (in order). A directive in the file header (leading
// "--" lines followed by an empty line, as Atlas defines file directives)
// applies to the whole file; any other applies to the statement containing
// it or else to the next one. analyzers are the names accepted as rules
// besides codes. Invalid directives are returned as errors and never
// suppress anything.
func parseDirectives(b []byte, stmts []*migrate.Stmt, analyzers []string) (directives, []directiveError) {
	lines := strings.Split(string(b), "\n")
	header := 0
	for header < len(lines) && strings.HasPrefix(lines[header], "--") {
		header++
	}
	if header == len(lines) || strings.TrimSpace(lines[header]) != "" {
		header = 0 // not followed by an empty line: comments of the first statement
	}
	var (
		ds     directives
		errs   []directiveError
		offset int
	)
	for i, line := range lines {
		lineStart := offset
		offset += len(line) + 1
		m := reDirective.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d, problems := parseDirective(m[1], m[2], analyzers)
		d.Line = i + 1
		switch {
		case i < header:
			d.fileScope = true
		default:
			j := slices.IndexFunc(stmts, func(s *migrate.Stmt) bool { return s.Pos+len(s.Text) > lineStart })
			if j == -1 {
				problems = append(problems, "it is followed by no statement")
			} else {
				d.stmtPos = stmts[j].Pos
			}
		}
		if len(problems) > 0 {
			errs = append(errs, directiveError{Line: d.Line, Text: fmt.Sprintf("invalid opt-out %q: %s (expected `-- %s CODE reason: <why it is safe>`)",
				strings.TrimSpace(line), strings.Join(problems, "; "), d.Form)})
			continue
		}
		ds = append(ds, d)
	}
	return ds, errs
}

// parseDirective parses the arguments args of a directive of the given
// form and returns it with the problems found.
func parseDirective(form, args string, analyzers []string) (*directive, []string) {
	d := &directive{Form: form}
	var problems []string
	rules := args
	if loc := reReason.FindStringIndex(args); loc != nil {
		rules, d.Reason = args[:loc[0]], strings.TrimSpace(args[loc[1]:])
	}
	for _, r := range strings.FieldsFunc(rules, func(c rune) bool { return c == ',' || unicode.IsSpace(c) }) {
		switch {
		case reCode.MatchString(r):
			d.Rules = append(d.Rules, strings.ToUpper(r))
		case slices.Contains(analyzers, strings.ToLower(r)):
			d.Rules = append(d.Rules, strings.ToLower(r))
		default:
			var names []string // analyzers, without squawk's rules
			for _, a := range analyzers {
				if !strings.Contains(a, "-") {
					names = append(names, a)
				}
			}
			problems = append(problems, fmt.Sprintf("%q is neither a code (e.g. DS103), an analyzer (%s) nor a squawk rule (e.g. require-lock-timeout)",
				r, strings.Join(names, ", ")))
		}
	}
	if len(d.Rules) == 0 {
		problems = append(problems, "it names no code to ignore")
	}
	if d.Reason == "" {
		problems = append(problems, "it gives no reason")
	}
	return d, problems
}
