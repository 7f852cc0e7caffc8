// Package markdown reads the parts of the repository's Markdown documents
// that the documentation tests hold against the code: fenced code blocks,
// sections, tables, code spans, and the simple commands of shell snippets.
// It knows the Markdown and the shell the documents use, not all of either.
package markdown

import (
	"regexp"
	"strings"
)

// Block is one fenced code block of a document.
type Block struct {
	// Lang is the info string after the opening fence, such as "sh" or
	// "sql"; empty when there is none.
	Lang string
	// Line is the number (from 1) of the document line that holds the
	// block's first line of text, the one after the opening fence.
	Line int
	// Text is the block's text, each line without the indentation of the
	// opening fence (at most that many spaces), ending in a newline.
	Text string
}

// Blocks returns the fenced (```) code blocks of doc in order, also those
// indented in list items. A block whose closing fence is missing is left
// out.
func Blocks(doc string) []Block {
	var out []Block
	var cur *Block
	var body []string
	indent := 0
	for i, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "```") {
			if cur != nil {
				n := 0
				for n < indent && n < len(line) && line[n] == ' ' {
					n++
				}
				body = append(body, line[n:])
			}
			continue
		}
		if cur == nil {
			cur = &Block{Lang: strings.TrimPrefix(trimmed, "```"), Line: i + 2}
			indent = len(line) - len(strings.TrimLeft(line, " "))
			body = nil
			continue
		}
		cur.Text = strings.Join(body, "\n") + "\n"
		out = append(out, *cur)
		cur = nil
	}
	return out
}

// Section returns the text under the heading title, of any level ("# "
// to "###### "), up to the next line that starts with "#", and whether doc
// has that heading. The heading line must hold exactly title.
func Section(doc, title string) (string, bool) {
	m := regexp.MustCompile(`(?m)^#+ ` + regexp.QuoteMeta(title) + `\n`).FindStringIndex(doc)
	if m == nil {
		return "", false
	}
	rest := doc[m[1]:]
	if end := nextHeading.FindStringIndex(rest); end != nil {
		rest = rest[:end[0]]
	}
	return rest, true
}

var nextHeading = regexp.MustCompile(`(?m)^#`)

// TableRows returns the cells of the table rows of text (the lines that
// start with "|"), each cell trimmed, without the header row and the
// separator row ("|---").
func TableRows(text string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) > 0 {
		rows = rows[1:]
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// CodeSpans returns the contents of the single-backtick code spans of
// text, in order.
func CodeSpans(text string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}
