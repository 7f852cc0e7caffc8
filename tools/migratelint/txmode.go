package main

// The txmode analyzer checks how a file will be executed. A file runs in
// one transaction, unless its header says `-- atlas:txmode none`: then
// `agentstore migrate apply` (internal/dbmigrate) and the Atlas CLI run it
// statement by statement, each in its own implicit transaction, which is
// how an index is built CONCURRENTLY on a table in use.
//
//	TX001  an atlas:txmode directive that is invalid (a mode other than
//	       none or file, or several), or that Atlas does not read because it
//	       is not in the file header (comment lines followed by an empty
//	       line): the file would run in a transaction after all
//	TX002  SET LOCAL in a file without a transaction: it lasts for its own
//	       statement only, so the lock_timeout it sets protects nothing;
//	       use SET lock_timeout
//	TX003  CREATE INDEX CONCURRENTLY IF NOT EXISTS in a file without a
//	       transaction: a failed concurrent build leaves an INVALID index of
//	       that name, which IF NOT EXISTS would then accept as built
//	TX004  a statement PostgreSQL refuses inside a transaction block (DROP
//	       INDEX / REINDEX / DETACH PARTITION ... CONCURRENTLY, VACUUM) in a
//	       transactional file; squawk's
//	       ban-concurrent-index-creation-in-transaction reports CREATE INDEX
//	       CONCURRENTLY
//
// Squawk lints a file without a transaction without
// --assume-in-transaction, so CONCURRENTLY is accepted there and
// require-lock-timeout asks for a plain SET lock_timeout.

import (
	"fmt"
	"regexp"
	"strings"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/sqlcheck"

	"github.com/agentstore/agentstore/internal/dbmigrate"
)

// txmodeAnalyzer is the analyzer name of the TX00x findings.
const txmodeAnalyzer = "txmode"

var (
	// reTxModeLine matches a comment line holding an atlas:txmode directive.
	reTxModeLine = regexp.MustCompile(`(?m)^[ \t]*(?:--|#).*\batlas:txmode\b`)
	// reSetLocal matches SET LOCAL.
	reSetLocal = regexp.MustCompile(`(?is)^\s*SET\s+LOCAL\b`)
	// reConcurrentIfNotExists matches CREATE INDEX CONCURRENTLY IF NOT EXISTS.
	reConcurrentIfNotExists = regexp.MustCompile(`(?is)^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\b`)
	// reNoTransactionBlock matches the statements PostgreSQL refuses in a
	// transaction block, but for CREATE INDEX CONCURRENTLY (squawk's).
	reNoTransactionBlock = regexp.MustCompile(`(?is)^\s*(?:DROP\s+INDEX\s+CONCURRENTLY\b|REINDEX\b.*\bCONCURRENTLY\b|` +
		`ALTER\s+TABLE\b.*\bDETACH\s+PARTITION\b.*\bCONCURRENTLY\b|VACUUM\b)`)
)

// fileTxMode returns the transaction mode migrate apply runs f in, and the
// TX001 findings on its directives. stmts are its statements.
func fileTxMode(f migrate.File, stmts []*migrate.Stmt) (string, []sqlcheck.Diagnostic) {
	var diags []sqlcheck.Diagnostic
	first := 0
	if len(stmts) > 0 {
		first = stmts[0].Pos
	}
	mode, err := dbmigrate.FileTxMode(f)
	if err != nil {
		diags = append(diags, sqlcheck.Diagnostic{Pos: first, Code: "TX001", Text: err.Error()})
		mode = dbmigrate.TxModeFile
	}
	read := 0
	if lf, ok := f.(*migrate.LocalFile); ok {
		read = len(lf.Directive("txmode"))
	}
	lines := reTxModeLine.FindAllIndex(f.Bytes(), -1)
	if len(lines) > read {
		// The header comes first: the directives Atlas reads are the first ones.
		// The header comes first: the directives Atlas reads are the first
		// ones. The finding goes to the statement the line is in or before,
		// which opt-outs match.
		off := lines[read][0]
		pos := off
		if i := statementAt(stmts, off); i >= 0 {
			pos = stmts[i].Pos
		}
		diags = append(diags, sqlcheck.Diagnostic{Pos: pos, Code: "TX001", Text: fmt.Sprintf(
			"Atlas does not read the atlas:txmode directive of line %d: file directives go in the file header, comment lines "+
				"followed by an empty line; as written, migrate apply runs the file in %s", lineOf(f.Bytes(), off),
			map[string]string{dbmigrate.TxModeFile: "one transaction", dbmigrate.TxModeNone: "no transaction"}[mode])})
	}
	return mode, diags
}

// txmodeFindings returns the transaction mode migrate apply runs sf in,
// with the TX00x findings of its directives and statements.
func txmodeFindings(sf *sqlcheck.File) (mode string, diags []sqlcheck.Diagnostic) {
	stmts := make([]*migrate.Stmt, len(sf.Changes))
	for i, c := range sf.Changes {
		stmts[i] = c.Stmt
	}
	mode, diags = fileTxMode(sf.File, stmts)
	for _, s := range stmts {
		text := stripComments(s.Text)
		switch {
		case mode == dbmigrate.TxModeNone && reSetLocal.MatchString(text):
			diags = append(diags, sqlcheck.Diagnostic{Pos: s.Pos, Code: "TX002", Text: "SET LOCAL in a file that runs without a transaction " +
				"(atlas:txmode none) lasts for this statement only: the setting protects nothing. Use SET lock_timeout = '...';"})
		case mode == dbmigrate.TxModeNone && reConcurrentIfNotExists.MatchString(text):
			diags = append(diags, sqlcheck.Diagnostic{Pos: s.Pos, Code: "TX003", Text: "CREATE INDEX CONCURRENTLY IF NOT EXISTS would accept " +
				"the INVALID index a failed concurrent build leaves behind as built. Drop IF NOT EXISTS: migrate apply drops such a " +
				"leftover when it resumes the file"})
		case mode == dbmigrate.TxModeFile && reNoTransactionBlock.MatchString(text):
			diags = append(diags, sqlcheck.Diagnostic{Pos: s.Pos, Code: "TX004", Text: "PostgreSQL refuses this statement inside a " +
				"transaction block, and this file runs in one. Put it in a file of its own that starts with `-- atlas:txmode none` " +
				"and an empty line"})
		}
	}
	return mode, diags
}

// stripComments removes the "--" comments of a statement.
func stripComments(stmt string) string {
	var b strings.Builder
	for _, line := range strings.Split(stmt, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
