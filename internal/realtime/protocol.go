package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/internal/derrors"
)

// Frame types of the protocol: a client subscribes, unsubscribes,
// publishes, refreshes its token (auth) and pings; the server answers with
// subscribed, unsubscribed and pong, sends events, and reports a refused
// frame with an error frame.
const (
	typeSubscribe    = "subscribe"
	typeUnsubscribe  = "unsubscribe"
	typePublish      = "publish"
	typeAuth         = "auth"
	typePing         = "ping"
	typeSubscribed   = "subscribed"
	typeUnsubscribed = "unsubscribed"
	typePong         = "pong"
	typeEvent        = "event"
	typeError        = "error"
)

// Close codes the server ends a connection with, besides the 1009 gorilla
// sends itself when a frame exceeds Config.MaxMessageBytes.
const (
	// CloseGoingAway (1001) ends every connection when the hub shuts down.
	CloseGoingAway = 1001
	// CloseSlowConsumer (1008, policy violation) ends a connection whose
	// send queue is full: it reads too slowly to keep up with its
	// subscriptions. It may reconnect and resubscribe with "since".
	CloseSlowConsumer = 1008
	// CloseMessageTooBig (1009) ends a connection that sent a frame larger
	// than Config.MaxMessageBytes.
	CloseMessageTooBig = 1009
	// CloseResync (1012, service restart) ends the subscribed connections
	// of an instance once Redis is reachable again after an outage or a
	// broken pub/sub link, because events may have been missed meanwhile;
	// they reconnect and resubscribe with "since".
	CloseResync = 1012
	// CloseTokenExpired (4001) ends a connection whose token expired
	// without an "auth" refresh.
	CloseTokenExpired = 4001
)

// channelRuns is the channel of every run event of a tenant.
const channelRuns = "runs"

// channelRunPrefix starts the channel of one run's events.
const channelRunPrefix = "run:"

// maxRefLen bounds the client's ref, which every reply echoes.
const maxRefLen = 128

// Names of the run events the server publishes after a write commits.
// Each is declared through serverEvent, which reserves it: "publish"
// frames may not use it. Declare a new one the same way, and the HTTP
// layer, which publishes these names, and the check of client frames
// cannot disagree.
var (
	EventRunCreated       = serverEvent("run.created")
	EventRunUpdated       = serverEvent("run.updated")
	EventStepAppended     = serverEvent("step.appended")
	EventToolCallRecorded = serverEvent("toolcall.recorded")
	EventRunDeleted       = serverEvent("run.deleted")
)

// serverEvents are the reserved event names, those of serverEvent.
var serverEvents = map[string]bool{}

// serverEvent reserves name for the server and returns it.
func serverEvent(name string) string {
	serverEvents[name] = true
	return name
}

// clientEventName is the shape of an event name a client may publish.
var clientEventName = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// inbound is a client frame; which fields apply depends on Type.
type inbound struct {
	Type    string          `json:"type"`
	Ref     string          `json:"ref"`
	Channel string          `json:"channel"`
	Since   *uint64         `json:"since"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Token   string          `json:"token"`
}

// invalid is an INVALID_ARGUMENT refusal of a frame.
func invalid(format string, args ...any) *derrors.Error {
	return derrors.New(derrors.InvalidArgument, format, args...)
}

// decodeFrame parses one client frame strictly: one JSON object of known
// fields, a known type, a string ref of sane length.
func decodeFrame(data []byte) (inbound, *derrors.Error) {
	var in inbound
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, invalid("malformed frame: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return in, invalid("malformed frame: trailing data after the JSON object")
	}
	if len(in.Ref) > maxRefLen {
		in.Ref = ""
		return in, invalid("ref is longer than %d characters", maxRefLen)
	}
	switch in.Type {
	case typeSubscribe, typeUnsubscribe, typePublish, typeAuth, typePing:
		return in, nil
	case "":
		return in, invalid("type is required")
	default:
		return in, invalid("unknown type %q", truncate(in.Type, 32))
	}
}

// refOf digs the ref out of a frame that failed to decode, so that the
// error can still carry it.
func refOf(data []byte) string {
	var r struct {
		Ref string `json:"ref"`
	}
	if json.Unmarshal(data, &r) != nil || len(r.Ref) > maxRefLen {
		return ""
	}
	return r.Ref
}

// jsonProblem says what is wrong with a frame without echoing it.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		if te.Field != "" {
			return te.Field + " has the wrong type"
		}
		return "a frame must be a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + truncate(strings.TrimPrefix(err.Error(), "json: unknown field "), 40)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "incomplete JSON"
	default:
		return "invalid JSON"
	}
}

// parseChannel checks a channel name and returns it in canonical form
// (lower-case UUID) with the run it names, uuid.Nil for "runs".
func parseChannel(s string) (string, uuid.UUID, *derrors.Error) {
	if s == channelRuns {
		return s, uuid.Nil, nil
	}
	if rest, ok := strings.CutPrefix(s, channelRunPrefix); ok && len(rest) == 36 {
		if id, err := uuid.Parse(rest); err == nil && id != uuid.Nil {
			return channelRunPrefix + id.String(), id, nil
		}
	}
	if s == "" {
		return "", uuid.Nil, invalid("channel is required")
	}
	return "", uuid.Nil, invalid(`channel must be "runs" or "run:<uuid>"`)
}

// checkEventName refuses names a client may not publish.
func checkEventName(name string) *derrors.Error {
	if !clientEventName.MatchString(name) {
		return invalid("event must be 1 to 64 characters of A-Z a-z 0-9 . _ : -")
	}
	if serverEvents[name] {
		return invalid("event %q is reserved for the server", name)
	}
	return nil
}

// checkPayload returns the compacted payload of a publish frame, which
// must be a JSON object; an absent payload is {}.
func checkPayload(raw json.RawMessage) (json.RawMessage, *derrors.Error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return json.RawMessage("{}"), nil
	}
	if t[0] != '{' {
		return nil, invalid("payload must be a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, t); err != nil {
		return nil, invalid("payload must be a JSON object")
	}
	return b.Bytes(), nil
}

// replyFrame is a subscribed, unsubscribed or pong frame.
type replyFrame struct {
	Type      string  `json:"type"`
	Ref       string  `json:"ref"`
	Channel   string  `json:"channel,omitempty"`
	Offset    *uint64 `json:"offset,omitempty"`
	Recovered *bool   `json:"recovered,omitempty"`
}

// errorFrame is an "error" frame.
type errorFrame struct {
	Type         string `json:"type"`
	Ref          string `json:"ref"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs *int64 `json:"retryAfterMs,omitempty"`
}

// eventFrame is an "event" frame.
type eventFrame struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Event   string          `json:"event"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
}

// encodeError is the "error" frame of a refused frame: the public code of
// its derrors category (derrors.Code), the same as the HTTP API's error
// bodies, and its client-safe message. An error of no category is
// INTERNAL, without its detail.
func encodeError(ref string, e *derrors.Error) []byte {
	f := errorFrame{Type: typeError, Ref: ref, Code: derrors.Code(e), Message: e.Message}
	if f.Code == derrors.CodeInternal {
		f.Message = "internal error"
	}
	if f.Code == derrors.CodeRateLimited {
		ms := int64(math.Ceil(float64(e.RetryAfter) / float64(time.Millisecond)))
		if ms < 1 {
			ms = 1
		}
		f.RetryAfterMs = &ms
	}
	b, _ := json.Marshal(f) // strings only: cannot fail
	return b
}

func encodeReply(f replyFrame) []byte {
	b, _ := json.Marshal(f) // strings and numbers only: cannot fail
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
