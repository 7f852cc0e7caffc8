package realtime

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of the Config fields left zero.
const (
	DefaultMaxMessageBytes  = 64 << 10
	DefaultHistorySize      = 1000
	DefaultHistoryTTL       = 5 * time.Minute
	DefaultSendQueue        = 256
	DefaultPingInterval     = 25 * time.Second
	DefaultPongWait         = 60 * time.Second
	DefaultWriteWait        = 10 * time.Second
	DefaultKeyPrefix        = "agentstore:ws:"
	DefaultMaxSubscriptions = 100
)

// Config tunes a Hub. Zero fields take the defaults above.
type Config struct {
	// AllowedOrigins is WS_ALLOWED_ORIGINS: the browser origins
	// ("https://app.example.com") that may connect. "*" allows any origin
	// and is refused when Production is set. Requests without an Origin
	// header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// Production refuses "*" in AllowedOrigins.
	Production bool
	// MaxMessageBytes is WS_MAX_MESSAGE_BYTES, the largest client frame;
	// a larger one closes the connection with 1009.
	MaxMessageBytes int64
	// HistorySize is WS_HISTORY_SIZE, the events kept per channel for
	// "since" recovery.
	HistorySize int
	// HistoryTTL is WS_HISTORY_TTL: a channel's history and offset are
	// forgotten this long after its last event.
	HistoryTTL time.Duration
	// SendQueue is the number of frames a connection may have waiting to
	// be written; a subscriber that falls further behind is disconnected
	// (close 1008) rather than slowing anyone else. A subscribe's reply and
	// its replay are queued whole. Waiting frames are shared with the other
	// subscribers, so a full queue costs a slice of SendQueue references.
	SendQueue int
	// PingInterval is how often the server pings; it must be shorter than
	// PongWait.
	PingInterval time.Duration
	// PongWait is how long a connection may stay silent (no frame, no
	// pong) before it is dropped.
	PongWait time.Duration
	// WriteWait bounds every write to a connection.
	WriteWait time.Duration
	// KeyPrefix starts every Redis key and the pub/sub channel; instances
	// that should share events share it.
	KeyPrefix string
	// MaxSubscriptions bounds the channels one connection subscribes to.
	MaxSubscriptions int
	// ClientIP returns the client address used in rate-limit keys; nil
	// means the host of the request's RemoteAddr. Pass the HTTP server's
	// extractor when the service runs behind a trusted proxy.
	ClientIP func(r *http.Request) string
}

// withDefaults returns c with zero fields defaulted, or an error when a
// field is unusable.
func (c Config) withDefaults() (Config, error) {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongWait == 0 {
		c.PongWait = DefaultPongWait
	}
	if c.WriteWait == 0 {
		c.WriteWait = DefaultWriteWait
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	switch {
	case c.MaxMessageBytes < 256:
		return c, errors.New("realtime: MaxMessageBytes must be at least 256")
	case c.HistorySize < 0:
		return c, errors.New("realtime: negative HistorySize")
	case c.HistoryTTL < time.Millisecond:
		return c, errors.New("realtime: HistoryTTL must be at least 1ms")
	case c.SendQueue < 1:
		return c, errors.New("realtime: SendQueue must be positive")
	case c.PingInterval < 0 || c.PongWait < 0 || c.WriteWait < 0:
		return c, errors.New("realtime: negative keepalive duration")
	case c.PingInterval >= c.PongWait:
		return c, errors.New("realtime: PingInterval must be shorter than PongWait")
	case c.MaxSubscriptions < 1:
		return c, errors.New("realtime: MaxSubscriptions must be positive")
	}
	return c, nil
}

// originPolicy decides which browser origins may connect.
type originPolicy struct {
	any     bool
	allowed map[string]bool
}

func newOriginPolicy(origins []string, production bool) (originPolicy, error) {
	p := originPolicy{allowed: make(map[string]bool)}
	for _, o := range origins {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" {
			if production {
				return p, errors.New(`realtime: WS_ALLOWED_ORIGINS may not be "*" in production`)
			}
			p.any = true
			continue
		}
		n, ok := normalizeOrigin(o)
		if !ok {
			return p, fmt.Errorf("realtime: %q is not an origin (scheme://host[:port])", o)
		}
		p.allowed[n] = true
	}
	return p, nil
}

// allows reports whether a request with this Origin header may connect.
func (p originPolicy) allows(origin string) bool {
	if origin == "" {
		return true // not a browser
	}
	if p.any {
		return true
	}
	n, ok := normalizeOrigin(origin)
	return ok && p.allowed[n]
}

// normalizeOrigin lower-cases an origin and checks it has only a scheme
// and a host.
func normalizeOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", false
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return "", false
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), true
}
