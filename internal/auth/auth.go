// Package auth verifies Supabase-issued JWTs and turns them into a tenant.Viewer.
//
// HS256 tokens are checked against the project's JWT secret, ES256 and RS256
// tokens against the public keys published at the project's JWKS URL. The
// algorithm is always pinned to the key that verifies it: the token's header
// only selects a key, it never chooses how the key is used.
package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

const (
	// DefaultAudience is the audience Supabase Auth puts in user tokens.
	DefaultAudience = "authenticated"
	// DefaultTenantClaim is where the tenant ID is looked up when
	// Config.TenantClaim is empty.
	DefaultTenantClaim = "app_metadata.tenant_id"
	// RoleAnon is Supabase's role for callers who have not signed in.
	RoleAnon = "anon"
	// MinSecretLen is the shortest HS256 secret accepted, Supabase's own
	// minimum; shorter secrets can be brute-forced from a single token.
	MinSecretLen = 32

	// maxTokenLen bounds the work a single request can cause; real Supabase
	// tokens are a few hundred bytes to a couple of KiB.
	maxTokenLen = 16 << 10
)

// Config says where the keys come from and which claims a token must carry.
type Config struct {
	// HS256Secret is SUPABASE_JWT_SECRET, used as raw bytes. It may be empty
	// when JWKSURL is set; HS256 tokens are then rejected.
	HS256Secret []byte
	// JWKSURL is SUPABASE_JWKS_URL, the JSON Web Key Set holding the ES256
	// and RS256 public keys. It may be empty when HS256Secret is set; ES256
	// and RS256 tokens are then rejected.
	JWKSURL string
	// Audience is JWT_AUDIENCE; the token's aud must contain it. Empty means
	// DefaultAudience.
	Audience string
	// Issuer is JWT_ISSUER; when set, the token's iss must equal it.
	Issuer string
	// TenantClaim is JWT_TENANT_CLAIM, a dot-separated path through nested
	// objects to the tenant UUID. Empty means DefaultTenantClaim.
	TenantClaim string
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	Leeway time.Duration
	// HTTPClient fetches the JWKS; nil means a client with a 5s timeout.
	HTTPClient *http.Client
}

// Claims are the parts of a verified token the rest of the service uses.
type Claims struct {
	// Subject is the token's sub, the Supabase user ID; may be empty.
	Subject string
	// Role is the token's role claim, such as "authenticated",
	// "service_role" or "anon"; empty when absent or not a string.
	Role string
	// TenantID is read from Config.TenantClaim; uuid.Nil when the claim is
	// absent or not a canonical UUID.
	TenantID uuid.UUID
	// Expiry is the token's exp.
	Expiry time.Time
}

// Verifier checks tokens; it is safe for concurrent use.
type Verifier struct {
	log         *slog.Logger
	secret      []byte
	jwks        *keySet // nil when no JWKS URL is configured
	audience    string
	issuer      string
	tenantClaim []string
	leeway      time.Duration
	now         func() time.Time
}

// options are the knobs tests turn; New uses defaultOptions.
type options struct {
	now          func() time.Time
	minRefetch   time.Duration // least time between two JWKS fetches
	refreshEvery time.Duration // period of the background JWKS refresh
	fetchTimeout time.Duration // bound on one JWKS fetch
}

func defaultOptions() options {
	return options{
		now:          time.Now,
		minRefetch:   10 * time.Second,
		refreshEvery: 10 * time.Minute,
		fetchTimeout: 5 * time.Second,
	}
}

// New returns a Verifier for cfg. It fails when neither an HS256 secret nor
// a JWKS URL is configured, or when either is unusable. With a JWKS URL it
// fetches the key set once before returning, and keeps refreshing it in the
// background until ctx is done; a failed fetch is logged, not returned, so
// that an identity provider outage at start-up does not stop the service.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Verifier, error) {
	return newVerifier(ctx, cfg, log, defaultOptions())
}

func newVerifier(ctx context.Context, cfg Config, log *slog.Logger, o options) (*Verifier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("auth: neither a JWT secret nor a JWKS URL is configured")
	}
	if n := len(cfg.HS256Secret); n > 0 && n < MinSecretLen {
		return nil, fmt.Errorf("auth: JWT secret is %d bytes, want at least %d", n, MinSecretLen)
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("auth: negative leeway")
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = DefaultTenantClaim
	}
	path, err := splitClaimPath(cfg.TenantClaim)
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		log:         log,
		secret:      append([]byte(nil), cfg.HS256Secret...),
		audience:    cfg.Audience,
		issuer:      cfg.Issuer,
		tenantClaim: path,
		leeway:      cfg.Leeway,
		now:         o.now,
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("auth: JWKS URL must be an absolute http(s) URL")
		}
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 5 * time.Second}
		}
		v.jwks = newKeySet(u.String(), client, log, o)
		v.jwks.refresh(ctx)
		go v.jwks.run(ctx)
	}
	return v, nil
}

// splitClaimPath turns "a.b.c" into its segments, refusing empty ones.
func splitClaimPath(p string) ([]string, error) {
	segs := strings.Split(p, ".")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("auth: tenant claim path %q has an empty segment", p)
		}
	}
	return segs, nil
}

// unauthenticated returns the error Verify fails with; msg is short and
// safe to show to the client, and never contains the token.
func unauthenticated(msg string) error {
	return derrors.New(derrors.Unauthenticated, "%s", msg)
}

// Verify checks token's signature and claims and returns its claims. Every
// error it returns is a *derrors.Error of category derrors.Unauthenticated
// with a short message fit for the client.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, unauthenticated("missing token")
	}
	if len(token) > maxTokenLen {
		return Claims{}, unauthenticated("malformed token")
	}
	payload, ok := compactPayload(token)
	if !ok {
		return Claims{}, unauthenticated("malformed token")
	}
	// A JWT's payload is a JSON object; jwx would also unwrap a nested JWS.
	if p := bytes.TrimLeft(payload, " \t\r\n"); len(p) == 0 || p[0] != '{' {
		return Claims{}, unauthenticated("malformed token")
	}
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return Claims{}, unauthenticated("malformed token")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	// Extensions we do not implement must not be silently ignored (RFC 7515
	// §4.1.11), and an unencoded payload (RFC 7797) is never a JWT.
	if _, ok := hdr.Get("crit"); ok {
		return Claims{}, unauthenticated("unsupported token header")
	}
	if _, ok := hdr.Get("b64"); ok {
		return Claims{}, unauthenticated("unsupported token header")
	}

	alg := hdr.Algorithm()
	var key any
	switch alg {
	case jwa.HS256:
		if len(v.secret) == 0 {
			return Claims{}, unauthenticated("unsupported signing algorithm")
		}
		key = v.secret
	case jwa.ES256, jwa.RS256:
		if v.jwks == nil {
			return Claims{}, unauthenticated("unsupported signing algorithm")
		}
		kid := hdr.KeyID()
		if kid == "" {
			return Claims{}, unauthenticated("unknown signing key")
		}
		key = v.jwks.lookup(ctx, kid, alg)
		if key == nil {
			return Claims{}, unauthenticated("unknown signing key")
		}
	default:
		return Claims{}, unauthenticated("unsupported signing algorithm")
	}

	opts := []jwt.ParseOption{
		jwt.WithKey(alg, key),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(v.now)),
		jwt.WithAcceptableSkew(v.leeway),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithAudience(v.audience),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	tok, err := jwt.Parse([]byte(token), opts...)
	if err != nil {
		return Claims{}, unauthenticated(reason(err))
	}
	// jwx skips its exp check for exp == 0; a token must really expire.
	exp := tok.Expiration()
	if exp.Unix() <= 0 {
		return Claims{}, unauthenticated("token has no expiry")
	}

	c := Claims{
		Subject:  tok.Subject(),
		Expiry:   exp,
		TenantID: parseTenant(claimAt(tok, v.tenantClaim)),
	}
	if r, ok := tok.Get("role"); ok {
		c.Role, _ = r.(string)
	}
	return c, nil
}

// compactPayload returns the decoded payload of token when token is three
// segments of unpadded base64url with zero trailing bits. jwx decodes
// leniently and re-encodes before checking the signature, so without this
// check many different strings would verify as the same signed token.
func compactPayload(token string) ([]byte, bool) {
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		return nil, false
	}
	var payload []byte
	for i, s := range segs {
		// The decoder skips \r and \n wherever they are, even in strict
		// mode: only the base64url alphabet itself is accepted (found by
		// FuzzVerify).
		if !base64URL(s) {
			return nil, false
		}
		b, err := strictB64.DecodeString(s)
		if err != nil {
			return nil, false
		}
		// The header and the payload must each be exactly one JSON value:
		// jwx reads the first value of the header and re-encodes it for the
		// signature check, so trailing bytes would make a different string
		// verify as the same signed token (found by FuzzVerify).
		if i < 2 && !json.Valid(b) {
			return nil, false
		}
		if i == 1 {
			payload = b
		}
	}
	return payload, true
}

var strictB64 = base64.RawURLEncoding.Strict()

// base64URL reports whether s holds only characters of the base64url
// alphabet.
func base64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// reason maps a jwx parse or validation error to a client-safe message.
func reason(err error) string {
	switch {
	case jws.IsVerificationError(err):
		return "invalid signature"
	case errors.Is(err, jwt.ErrTokenExpired()):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotYetValid()):
		return "token not yet valid"
	case errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return "wrong audience"
	case errors.Is(err, jwt.ErrInvalidIssuer()):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return "token has no expiry"
	default:
		return "invalid token"
	}
}

// claimAt walks path through the token's claims and nested JSON objects.
func claimAt(tok jwt.Token, path []string) any {
	cur, ok := tok.Get(path[0])
	if !ok {
		return nil
	}
	for _, seg := range path[1:] {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[seg]; !ok {
			return nil
		}
	}
	return cur
}

// parseTenant returns the UUID in v, or uuid.Nil when v is not a string
// holding a canonical, non-nil UUID.
func parseTenant(v any) uuid.UUID {
	s, ok := v.(string)
	if !ok {
		return uuid.Nil
	}
	return parseCanonicalUUID(s)
}

// parseCanonicalUUID accepts only the 36-character hyphenated form, not the
// braced, URN or bare-hex forms uuid.Parse also takes.
func parseCanonicalUUID(s string) uuid.UUID {
	if len(s) != 36 {
		return uuid.Nil
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil
	}
	return id
}

// Viewer decides who a verified token acts as. A service_role token acts for
// the tenant named by headerTenant (the X-Tenant-ID header), which must be a
// UUID; any other token acts for the tenant in its own claim, and
// headerTenant is ignored. Anonymous tokens, tokens without a role, tokens
// without a tenant, and service_role tokens without a valid X-Tenant-ID are
// refused with a *derrors.Error of category derrors.Forbidden: the caller is
// identified but may not act. The returned Viewer is never System.
func (v *Verifier) Viewer(c Claims, headerTenant string) (tenant.Viewer, error) {
	switch c.Role {
	case tenant.RoleServiceRole:
		h := strings.TrimSpace(headerTenant)
		if h == "" {
			return tenant.Viewer{}, derrors.New(derrors.Forbidden, "service_role requests must name a tenant in the X-Tenant-ID header")
		}
		id := parseCanonicalUUID(h)
		if id == uuid.Nil {
			return tenant.Viewer{}, derrors.New(derrors.Forbidden, "X-Tenant-ID must be a tenant UUID")
		}
		return tenant.Viewer{TenantID: id, UserID: c.Subject, Role: c.Role}, nil
	case RoleAnon:
		return tenant.Viewer{}, derrors.New(derrors.Forbidden, "anonymous tokens may not use this API")
	case "":
		return tenant.Viewer{}, derrors.New(derrors.Forbidden, "token has no role")
	}
	if c.TenantID == uuid.Nil {
		return tenant.Viewer{}, derrors.New(derrors.Forbidden, "token is not bound to a tenant")
	}
	return tenant.Viewer{TenantID: c.TenantID, UserID: c.Subject, Role: c.Role}, nil
}
