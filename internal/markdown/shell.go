package markdown

import "strings"

// ShellCommands splits a shell snippet (the text of an sh block) into its
// simple commands, each the list of its words with quotes and escapes
// removed. It knows what the documents use: single and double quotes,
// backslash escapes and line continuations, comments, and the separators
// ;, &&, || and | (a pipeline is two commands). Variables are not
// expanded: "$X" stays as written.
func ShellCommands(snippet string) [][]string {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(snippet); i++ {
		c := snippet[i]
		switch {
		case c == '\\' && i+1 < len(snippet):
			i++
			if snippet[i] != '\n' {
				w.WriteByte(snippet[i])
				inWord = true
			}
		case c == '\'':
			j := strings.IndexByte(snippet[i+1:], '\'')
			if j < 0 {
				j = len(snippet) - i - 1
			}
			w.WriteString(snippet[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			for i++; i < len(snippet) && snippet[i] != '"'; i++ {
				if snippet[i] == '\\' && i+1 < len(snippet) && strings.IndexByte(`"\$`+"`", snippet[i+1]) >= 0 {
					i++
				}
				w.WriteByte(snippet[i])
			}
			inWord = true
		case c == '#' && !inWord:
			for i+1 < len(snippet) && snippet[i+1] != '\n' {
				i++
			}
		case c == '\n' || c == ';' || c == '&' || c == '|':
			endCmd()
		case c == ' ' || c == '\t':
			endWord()
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}
