package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/markdown"
	"github.com/agentstore/agentstore/internal/realtime"
)

// protocolDocPath is the realtime protocol that TestRealtimeProtocolDoc
// keeps true.
const protocolDocPath = "../../docs/development/realtime-protocol.md"

// TestRealtimeProtocolDoc replays every example exchange (the ws blocks) of
// docs/development/realtime-protocol.md against the built server, and
// checks its close codes and limits against the code.
func TestRealtimeProtocolDoc(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(protocolDocPath)
	require.NoError(t, err)
	doc := string(b)

	t.Run("close codes", func(t *testing.T) {
		section, ok := markdown.Section(doc, "Close codes")
		require.True(t, ok)
		var codes []int
		for _, row := range markdown.TableRows(section) {
			n, err := strconv.Atoi(strings.TrimSpace(row[0]))
			if err == nil {
				codes = append(codes, n)
			}
		}
		assert.ElementsMatch(t, []int{realtime.CloseGoingAway, realtime.CloseSlowConsumer, realtime.CloseMessageTooBig,
			realtime.CloseResync, realtime.CloseTokenExpired}, codes)
	})

	t.Run("limits", func(t *testing.T) {
		section, ok := markdown.Section(doc, "Limits")
		require.True(t, ok)
		text := strings.Join(strings.Fields(section), " ")
		for _, want := range []string{
			fmt.Sprintf("%d per %d ms | `WS_BROADCAST_MAX`, `WS_BROADCAST_WINDOW_MS`", config.DefaultWSBroadcastMax, config.DefaultWSBroadcastWinMs),
			fmt.Sprintf("%d bytes (then close %d) | `WS_MAX_MESSAGE_BYTES`", config.DefaultWSMaxMessageBytes, realtime.CloseMessageTooBig),
			fmt.Sprintf("%d | `WS_HISTORY_SIZE`", config.DefaultWSHistorySize),
			fmt.Sprintf("%s | `WS_HISTORY_TTL`", config.DefaultWSHistoryTTL),
			fmt.Sprintf("%d (then close %d)", realtime.DefaultSendQueue, realtime.CloseSlowConsumer),
			fmt.Sprintf("subscriptions per connection | %d", realtime.DefaultMaxSubscriptions),
			fmt.Sprintf("server ping interval | %ds", int(realtime.DefaultPingInterval.Seconds())),
			fmt.Sprintf("drops a connection | %ds", int(realtime.DefaultPongWait.Seconds())),
		} {
			assert.Contains(t, text, want)
		}
	})

	t.Run("examples", func(t *testing.T) {
		s := start(t, "SUPABASE_JWT_SECRET="+e2eSecret)
		r := &replay{t: t, s: s, token: mintFor(t, uuid.NewString()), vars: map[string]any{}}
		n := 0
		for _, blk := range markdown.Blocks(doc) {
			if blk.Lang != "ws" {
				continue
			}
			n++
			r.block(blk)
		}
		require.GreaterOrEqual(t, n, 5, "the doc's examples")
	})
}

// replay runs the example blocks of the protocol doc; vars holds the
// values bound by "$name" across blocks.
type replay struct {
	t     *testing.T
	s     *server
	token string
	vars  map[string]any
}

var (
	varRef  = regexp.MustCompile(`^\$([A-Za-z]+)(?:\+(\d+))?$`)
	varName = regexp.MustCompile(`\$([A-Za-z]+)(?:\+(\d+))?`)
	httpRe  = regexp.MustCompile(`^(GET|POST|PATCH) (\S+)(?: (\{.*\}))?(?: -> \$([A-Za-z]+))?$`)
)

// block replays one ws block on a connection of its own.
func (r *replay) block(blk markdown.Block) {
	t := r.t
	var ws *websocket.Conn
	conn := func() *websocket.Conn {
		if ws == nil {
			ws = dialWS(t, r.s, r.token)
		}
		return ws
	}
	for i, line := range strings.Split(strings.TrimRight(blk.Text, "\n"), "\n") {
		at := fmt.Sprintf("%s line %d", protocolDocPath, blk.Line+i)
		op, rest, _ := strings.Cut(line, " ")
		switch op {
		case ">":
			require.NoError(t, conn().WriteMessage(websocket.TextMessage, []byte(r.substitute(t, rest))), at)
		case "<":
			var want map[string]any
			require.NoError(t, json.Unmarshal([]byte(rest), &want), at)
			c := conn()
			require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
			_, data, err := c.ReadMessage()
			require.NoError(t, err, "%s: waiting for %s", at, rest)
			var got map[string]any
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			require.NoError(t, dec.Decode(&got), at)
			keys := func(m map[string]any) []string {
				var k []string
				for n := range m {
					k = append(k, n)
				}
				sort.Strings(k)
				return k
			}
			require.Equal(t, keys(want), keys(got), "%s: the frame's fields; got %s", at, data)
			r.match(at, "", want, got, string(data))
		case "!":
			bind := ""
			if call, name, ok := strings.Cut(rest, " -> $"); ok {
				rest, bind = call, "-> $"+name
			}
			m := httpRe.FindStringSubmatch(strings.TrimSpace(r.substitute(t, rest) + " " + bind))
			require.NotNil(t, m, "%s: a REST line is `! METHOD /path [json] [-> $name]`", at)
			req, err := http.NewRequest(m[1], r.s.base+m[2], strings.NewReader(m[3]))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+r.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err, at)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Less(t, resp.StatusCode, 300, "%s: %s", at, body)
			if m[4] != "" {
				var created struct{ ID string }
				require.NoError(t, json.Unmarshal(body, &created), at)
				r.vars[m[4]] = created.ID
			}
		default:
			t.Fatalf("%s: a line of a ws block starts with >, < or !: %q", at, line)
		}
	}
	if ws != nil {
		ws.Close()
	}
}

// substitute replaces "$name" and "$name+N" in a client frame or REST line
// by their values: a quoted reference by the JSON value, one inside a
// string by its text.
func (r *replay) substitute(t *testing.T, s string) string {
	quoted := regexp.MustCompile(`"\$([A-Za-z]+)(?:\+(\d+))?"`)
	s = quoted.ReplaceAllStringFunc(s, func(m string) string {
		v := r.value(t, strings.Trim(m, `"`))
		b, _ := json.Marshal(v)
		return string(b)
	})
	return varName.ReplaceAllStringFunc(s, func(m string) string { return fmt.Sprint(r.value(t, m)) })
}

// value is the value of a bound reference, plus its offset when it has one.
func (r *replay) value(t *testing.T, ref string) any {
	m := varRef.FindStringSubmatch(ref)
	require.NotNil(t, m, "not a reference: %s", ref)
	v, ok := r.vars[m[1]]
	require.True(t, ok, "$%s is used before the server sent it", m[1])
	if m[2] == "" {
		return v
	}
	add, _ := strconv.ParseUint(m[2], 10, 64)
	n, isNum := v.(uint64)
	require.True(t, isNum, "$%s is not a number", m[1])
	return n + add
}

// match compares an expected value of the doc with the server's: "*"
// matches anything, "$name" binds or compares, objects below the frame
// list only some fields.
func (r *replay) match(at, path string, want, got any, frame string) {
	t := r.t
	switch w := want.(type) {
	case string:
		if w == "*" {
			return
		}
		if m := varRef.FindStringSubmatch(w); m != nil {
			if _, bound := r.vars[m[1]]; !bound && m[2] == "" {
				switch g := got.(type) {
				case json.Number:
					n, err := strconv.ParseUint(g.String(), 10, 64)
					require.NoError(t, err, "%s: %s", at, path)
					r.vars[m[1]] = n
				default:
					r.vars[m[1]] = g
				}
				return
			}
			exp := r.value(t, w)
			if n, ok := exp.(uint64); ok {
				require.Equal(t, json.Number(strconv.FormatUint(n, 10)), got, "%s: %s in %s", at, path, frame)
			} else {
				require.Equal(t, exp, got, "%s: %s in %s", at, path, frame)
			}
			return
		}
		require.Equal(t, r.substituteText(w), got, "%s: %s in %s", at, path, frame)
	case float64:
		require.Equal(t, json.Number(strconv.FormatFloat(w, 'f', -1, 64)), got, "%s: %s in %s", at, path, frame)
	case map[string]any:
		g, ok := got.(map[string]any)
		require.True(t, ok, "%s: %s is not an object in %s", at, path, frame)
		for k, v := range w {
			gv, ok := g[k]
			require.True(t, ok, "%s: %s.%s is missing in %s", at, path, k, frame)
			r.match(at, path+"."+k, v, gv, frame)
		}
	default:
		require.Equal(t, want, got, "%s: %s in %s", at, path, frame)
	}
}

// substituteText replaces bound references inside an expected string, such
// as "run:$run".
func (r *replay) substituteText(s string) string {
	return varName.ReplaceAllStringFunc(s, func(m string) string {
		if _, ok := r.vars[varRef.FindStringSubmatch(m)[1]]; !ok {
			return m
		}
		return fmt.Sprint(r.value(r.t, m))
	})
}
