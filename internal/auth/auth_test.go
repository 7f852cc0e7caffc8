package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

var testSecret = []byte("agentstore-test-secret-0123456789abcdef")

// testKeys are generated once per test binary; RSA generation is slow.
type testKeys struct {
	es, es2, esOther *ecdsa.PrivateKey
	rs               *rsa.PrivateKey
	rsPEM            []byte // the RSA public key as PEM, for the HS/RS confusion attack
}

var keys = sync.OnceValue(func() testKeys {
	mustEC := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rs.PublicKey)
	if err != nil {
		panic(err)
	}
	return testKeys{
		es: mustEC(), es2: mustEC(), esOther: mustEC(), rs: rs,
		rsPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	}
})

const (
	kidES  = "es-1"
	kidES2 = "es-2"
	kidRS  = "rs-1"
)

// publicJWK returns raw's public JWK with kid and, when alg is not empty, alg.
func publicJWK(t testing.TB, raw any, kid, alg string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	require.NoError(t, err)
	require.NoError(t, k.Set(jwk.KeyIDKey, kid))
	if alg != "" {
		require.NoError(t, k.Set(jwk.AlgorithmKey, alg))
	}
	return k
}

// jwksServer serves a key set that tests can change, and counts requests.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
	fail bool
	hits atomic.Int64
}

func newJWKSServer(t testing.TB, ks ...jwk.Key) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, ks...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, fail := s.body, s.fail
		s.mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t testing.TB, ks ...jwk.Key) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range ks {
		require.NoError(t, set.AddKey(k))
	}
	body, err := json.Marshal(set)
	require.NoError(t, err)
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func (s *jwksServer) setFail(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

// defaultJWKS is the ES256 and RS256 key set most tests verify against.
func defaultJWKS(t testing.TB) *jwksServer {
	k := keys()
	return newJWKSServer(t,
		publicJWK(t, &k.es.PublicKey, kidES, "ES256"),
		publicJWK(t, &k.rs.PublicKey, kidRS, "RS256"),
	)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newTestVerifier builds a verifier whose clock the test controls.
func newTestVerifier(t testing.TB, cfg Config, log *slog.Logger) (*Verifier, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Now()}
	o := defaultOptions()
	o.now = clk.Now
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	v, err := newVerifier(t.Context(), cfg, log, o)
	require.NoError(t, err)
	return v, clk
}

var tenantA = uuid.MustParse("0b6f0b8e-3d5c-4a55-9a1e-6a2f3c4d5e6f")

// claims returns a valid Supabase-like claim set; edit the copy freely.
func claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"sub":          "user-1",
		"role":         "authenticated",
		"aud":          "authenticated",
		"iat":          now.Unix(),
		"exp":          now.Add(time.Hour).Unix(),
		"app_metadata": map[string]any{"tenant_id": tenantA.String(), "provider": "email"},
	}
}

func with(kv ...any) map[string]any {
	c := claims()
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func without(names ...string) map[string]any {
	c := claims()
	for _, n := range names {
		delete(c, n)
	}
	return c
}

// sign signs c with key under alg, putting kid in the header when not empty.
func sign(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid string, c map[string]any, extraHeaders ...any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	require.NoError(t, err)
	h := jws.NewHeaders()
	require.NoError(t, h.Set(jws.TypeKey, "JWT"))
	if kid != "" {
		require.NoError(t, h.Set(jws.KeyIDKey, kid))
	}
	for i := 0; i < len(extraHeaders); i += 2 {
		require.NoError(t, h.Set(extraHeaders[i].(string), extraHeaders[i+1]))
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)
	return string(out)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// unsigned builds a token with any header and no real signature.
func unsigned(t testing.TB, header string, c map[string]any, sig string) string {
	t.Helper()
	payload, err := json.Marshal(c)
	require.NoError(t, err)
	return b64(header) + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + sig
}

func TestVerifyAccepts(t *testing.T) {
	k := keys()
	srv := defaultJWKS(t)
	v, _ := newTestVerifier(t, Config{HS256Secret: testSecret, JWKSURL: srv.URL}, nil)

	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	c := with("exp", exp.Unix())
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"HS256", sign(t, jwa.HS256, testSecret, "", c)},
		{"HS256 with a kid", sign(t, jwa.HS256, testSecret, "ignored", c)},
		{"ES256", sign(t, jwa.ES256, k.es, kidES, c)},
		{"RS256", sign(t, jwa.RS256, k.rs, kidRS, c)},
		{"aud as a list", sign(t, jwa.HS256, testSecret, "", with("exp", exp.Unix(), "aud", []string{"other", "authenticated"}))},
		{"exp within leeway", sign(t, jwa.HS256, testSecret, "", with("exp", time.Now().Add(-10*time.Second).Unix()))},
		{"nbf within leeway", sign(t, jwa.HS256, testSecret, "", with("exp", exp.Unix(), "nbf", time.Now().Add(10*time.Second).Unix()))},
		{"iat within leeway", sign(t, jwa.HS256, testSecret, "", with("exp", exp.Unix(), "iat", time.Now().Add(10*time.Second).Unix()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(t.Context(), tc.token)
			require.NoError(t, err)
			assert.Equal(t, "user-1", got.Subject)
			assert.Equal(t, "authenticated", got.Role)
			assert.Equal(t, tenantA, got.TenantID)
			assert.False(t, got.Expiry.IsZero())
		})
	}

	t.Run("claims", func(t *testing.T) {
		got, err := v.Verify(t.Context(), sign(t, jwa.ES256, k.es, kidES, c))
		require.NoError(t, err)
		assert.Equal(t, Claims{Subject: "user-1", Role: "authenticated", TenantID: tenantA, Expiry: exp}, Claims{
			Subject: got.Subject, Role: got.Role, TenantID: got.TenantID, Expiry: got.Expiry.Truncate(time.Second).In(exp.Location()),
		})
	})
}

func TestVerifyRejects(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t,
		publicJWK(t, &k.es.PublicKey, kidES, "ES256"),
		publicJWK(t, &k.rs.PublicKey, kidRS, "RS256"),
		// A P-256 key that claims another algorithm is unusable.
		publicJWK(t, &k.es2.PublicKey, "es-mislabelled", "ES384"),
		// A symmetric key in the JWKS must never verify HS256 tokens.
		publicJWK(t, []byte("jwks-published-oct-secret-0123456789abcdef"), "oct-1", "HS256"),
	)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	both, _ := newTestVerifier(t, Config{HS256Secret: testSecret, JWKSURL: srv.URL}, log)
	secretOnly, _ := newTestVerifier(t, Config{HS256Secret: testSecret}, log)
	jwksOnly, _ := newTestVerifier(t, Config{JWKSURL: srv.URL}, log)
	withIssuer, _ := newTestVerifier(t, Config{HS256Secret: testSecret, Issuer: "https://proj.supabase.co/auth/v1"}, log)

	past := time.Now().Add(-2 * time.Minute).Unix()
	future := time.Now().Add(5 * time.Minute).Unix()
	valid := sign(t, jwa.ES256, k.es, kidES, claims())
	parts := strings.Split(valid, ".")
	// ES256 signatures are random: one in about fifteen tokens has no "-"
	// or "_", and the standard alphabet would not change it.
	urlOnly := valid
	for i := 0; i < 100 && !strings.ContainsAny(urlOnly, "-_"); i++ {
		urlOnly = sign(t, jwa.ES256, k.es, kidES, claims())
	}
	require.True(t, strings.ContainsAny(urlOnly, "-_"), "a token with URL-alphabet characters")
	otherPayload := base64.RawURLEncoding.EncodeToString(must(json.Marshal(with("sub", "admin"))))

	for _, tc := range []struct {
		name  string
		v     *Verifier
		token string
		want  string
	}{
		{"HS256 forged with another secret", both, sign(t, jwa.HS256, []byte("not-the-secret-not-the-secret-0123456789"), "", claims()), "invalid signature"},
		{"ES256 signed by a stranger's key under a known kid", both, sign(t, jwa.ES256, k.esOther, kidES, claims()), "invalid signature"},
		{"ES256 payload swapped", both, parts[0] + "." + otherPayload + "." + parts[2], "invalid signature"},
		{"ES256 signature stripped", both, parts[0] + "." + parts[1] + ".", "invalid signature"},
		{"expired", both, sign(t, jwa.HS256, testSecret, "", with("exp", past)), "token expired"},
		{"not yet valid", both, sign(t, jwa.HS256, testSecret, "", with("nbf", future)), "token not yet valid"},
		{"issued in the future", both, sign(t, jwa.HS256, testSecret, "", with("iat", future)), "token issued in the future"},
		{"missing exp", both, sign(t, jwa.HS256, testSecret, "", without("exp")), "token has no expiry"},
		{"exp zero", both, sign(t, jwa.HS256, testSecret, "", with("exp", 0)), "token has no expiry"},
		{"exp not a number", both, sign(t, jwa.HS256, testSecret, "", with("exp", "tomorrow")), "invalid token"},
		{"wrong audience", both, sign(t, jwa.HS256, testSecret, "", with("aud", "anon")), "wrong audience"},
		{"missing audience", both, sign(t, jwa.HS256, testSecret, "", without("aud")), "wrong audience"},
		{"wrong issuer", withIssuer, sign(t, jwa.HS256, testSecret, "", with("iss", "https://evil.example/auth/v1")), "wrong issuer"},
		{"missing issuer when one is set", withIssuer, sign(t, jwa.HS256, testSecret, "", claims()), "wrong issuer"},
		{"alg none", both, unsigned(t, `{"alg":"none","typ":"JWT"}`, claims(), ""), "unsupported signing algorithm"},
		{"alg None", both, unsigned(t, `{"alg":"None","typ":"JWT"}`, claims(), ""), "unsupported signing algorithm"},
		{"alg none with a signature", both, unsigned(t, `{"alg":"none"}`, claims(), b64("sig")), "unsupported signing algorithm"},
		{"HS256 signed with the RSA public key PEM", both, sign(t, jwa.HS256, k.rsPEM, kidRS, claims()), "invalid signature"},
		{"HS256 signed with the RSA public key PEM, JWKS only", jwksOnly, sign(t, jwa.HS256, k.rsPEM, kidRS, claims()), "unsupported signing algorithm"},
		{"HS256 signed with a JWKS oct key", both, sign(t, jwa.HS256, []byte("jwks-published-oct-secret-0123456789abcdef"), "oct-1", claims()), "invalid signature"},
		{"HS256 with only a JWKS", jwksOnly, sign(t, jwa.HS256, testSecret, "", claims()), "unsupported signing algorithm"},
		{"RS256 with only the secret", secretOnly, sign(t, jwa.RS256, k.rs, kidRS, claims()), "unsupported signing algorithm"},
		{"ES256 with only the secret", secretOnly, sign(t, jwa.ES256, k.es, kidES, claims()), "unsupported signing algorithm"},
		{"ES256 header naming the RSA key", both, sign(t, jwa.ES256, k.es, kidRS, claims()), "unknown signing key"},
		{"RS256 header naming the EC key", both, sign(t, jwa.RS256, k.rs, kidES, claims()), "unknown signing key"},
		{"JWK alg does not match the key", both, sign(t, jwa.ES256, k.es2, "es-mislabelled", claims()), "unknown signing key"},
		{"ES256 without a kid", both, sign(t, jwa.ES256, k.es, "", claims()), "unknown signing key"},
		{"unknown kid", both, sign(t, jwa.ES256, k.es, "nope", claims()), "unknown signing key"},
		{"HS384", both, sign(t, jwa.HS384, testSecret, "", claims()), "unsupported signing algorithm"},
		{"HS512", both, sign(t, jwa.HS512, testSecret, "", claims()), "unsupported signing algorithm"},
		{"PS256", both, sign(t, jwa.PS256, k.rs, kidRS, claims()), "unsupported signing algorithm"},
		{"ES384 header", both, sign(t, jwa.ES384, must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)), kidES, claims()), "unsupported signing algorithm"},
		{"crit header", both, sign(t, jwa.HS256, testSecret, "", claims(), "crit", []string{"exp"}), "unsupported token header"},
		{"b64 header", both, sign(t, jwa.HS256, testSecret, "", claims(), "b64", true), "unsupported token header"},
		{"empty", both, "", "missing token"},
		{"garbage", both, "garbage", "malformed token"},
		{"bearer prefix", both, "Bearer " + valid, "malformed token"},
		{"three dots", both, "a.b.c", "malformed token"},
		{"four parts", both, valid + ".x", "malformed token"},
		{"empty parts", both, "..", "malformed token"},
		{"header not JSON", both, b64("hello") + "." + parts[1] + "." + parts[2], "malformed token"},
		{"header an array", both, b64(`[]`) + "." + parts[1] + "." + parts[2], "malformed token"},
		{"payload not JSON", both, hsRaw(t, "not json"), "malformed token"},
		{"payload a JSON array", both, hsRaw(t, "[1]"), "malformed token"},
		{"payload an object that is not a claim set", both, hsRaw(t, `{"exp":"x"}`), "invalid token"},
		{"nested JWS signed twice with the secret", both, hsRaw(t, sign(t, jwa.HS256, testSecret, "", claims())), "malformed token"},
		{"JSON serialization", both, `{"payload":"e30","signatures":[]}`, "malformed token"},
		{"padded base64", both, parts[0] + "=." + parts[1] + "." + parts[2], "malformed token"},
		{"standard base64 alphabet", both, strings.NewReplacer("-", "+", "_", "/").Replace(urlOnly), "malformed token"},
		{"carriage return inside the payload", both, parts[0] + "." + parts[1][:4] + "\r" + parts[1][4:] + "." + parts[2], "malformed token"},
		{"newline inside the signature", both, parts[0] + "." + parts[1] + "." + parts[2][:4] + "\n" + parts[2][4:], "malformed token"},
		{"non-zero trailing bits", both, parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2]), "malformed token"},
		{"huge", both, strings.Repeat("a", maxTokenLen) + ".b.c", "malformed token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(t.Context(), tc.token)
			require.Error(t, err)
			assert.ErrorIs(t, err, derrors.Unauthenticated)
			var de *derrors.Error
			require.True(t, errors.As(err, &de), "want a *derrors.Error, got %T", err)
			assert.Equal(t, tc.want, de.Message)
			if tc.token != "" {
				assert.NotContains(t, err.Error(), tc.token)
			}
		})
	}

	assert.NotContains(t, logs.String(), string(testSecret))
	assert.NotContains(t, logs.String(), parts[2], "a token signature leaked into the logs")
}

// flipTrailingBits changes the unused low bits of the last base64url
// character, which lenient decoders ignore; seg must leave some unused.
func flipTrailingBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

// hsRaw signs an arbitrary payload with the test secret.
func hsRaw(t testing.TB, payload string) string {
	t.Helper()
	out, err := jws.Sign([]byte(payload), jws.WithKey(jwa.HS256, testSecret))
	require.NoError(t, err)
	return string(out)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestUnknownKidsAreRateLimited(t *testing.T) {
	k := keys()
	srv := defaultJWKS(t)
	v, clk := newTestVerifier(t, Config{JWKSURL: srv.URL}, nil)
	require.EqualValues(t, 1, srv.hits.Load(), "New fetches the key set once")

	verifyGarbageKids := func(round int) {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				_, err := v.Verify(t.Context(), sign(t, jwa.ES256, k.es, fmt.Sprintf("garbage-%d-%d", round, i), claims()))
				assert.ErrorIs(t, err, derrors.Unauthenticated)
			})
		}
		wg.Wait()
	}

	verifyGarbageKids(0)
	assert.EqualValues(t, 1, srv.hits.Load(), "a fetch just happened; unknown kids must not refetch")

	clk.Advance(11 * time.Second)
	verifyGarbageKids(1)
	assert.EqualValues(t, 2, srv.hits.Load(), "50 unknown kids after the interval cause one refetch")

	// Known keys keep working throughout.
	_, err := v.Verify(t.Context(), sign(t, jwa.ES256, k.es, kidES, claims()))
	require.NoError(t, err)
	assert.EqualValues(t, 2, srv.hits.Load())
}

func TestKeyRotation(t *testing.T) {
	k := keys()
	srv := defaultJWKS(t)
	v, clk := newTestVerifier(t, Config{JWKSURL: srv.URL}, nil)

	// The IdP starts serving a new key, and issues tokens with it.
	srv.set(t,
		publicJWK(t, &k.es.PublicKey, kidES, "ES256"),
		publicJWK(t, &k.es2.PublicKey, kidES2, ""), // no alg: ES256 from the curve
		publicJWK(t, &k.rs.PublicKey, kidRS, "RS256"),
	)
	rotated := sign(t, jwa.ES256, k.es2, kidES2, claims())

	_, err := v.Verify(t.Context(), rotated)
	require.ErrorIs(t, err, derrors.Unauthenticated, "within the refetch interval the new kid is not fetched yet")

	clk.Advance(11 * time.Second)
	hits := srv.hits.Load()
	got, err := v.Verify(t.Context(), rotated)
	require.NoError(t, err)
	assert.Equal(t, tenantA, got.TenantID)
	assert.Equal(t, hits+1, srv.hits.Load())

	_, err = v.Verify(t.Context(), sign(t, jwa.ES256, k.es, kidES, claims()))
	require.NoError(t, err, "old keys still served keep working")

	// The IdP retires the old key.
	srv.set(t, publicJWK(t, &k.es2.PublicKey, kidES2, "ES256"))
	clk.Advance(11 * time.Second)
	_, err = v.Verify(t.Context(), sign(t, jwa.ES256, k.es, "es-unknown", claims())) // forces a refetch
	require.Error(t, err)
	_, err = v.Verify(t.Context(), sign(t, jwa.ES256, k.es, kidES, claims()))
	require.ErrorIs(t, err, derrors.Unauthenticated, "retired keys stop verifying")
}

func TestJWKSOutage(t *testing.T) {
	k := keys()

	t.Run("cached keys survive a failing IdP", func(t *testing.T) {
		srv := defaultJWKS(t)
		v, clk := newTestVerifier(t, Config{JWKSURL: srv.URL}, nil)
		srv.setFail(true)
		clk.Advance(11 * time.Second)
		_, err := v.Verify(t.Context(), sign(t, jwa.ES256, k.es, "new-kid", claims()))
		require.ErrorIs(t, err, derrors.Unauthenticated)
		assert.EqualValues(t, 2, srv.hits.Load(), "the refetch was attempted")
		_, err = v.Verify(t.Context(), sign(t, jwa.RS256, k.rs, kidRS, claims()))
		require.NoError(t, err)
	})

	t.Run("garbage key set keeps cached keys", func(t *testing.T) {
		srv := defaultJWKS(t)
		v, clk := newTestVerifier(t, Config{JWKSURL: srv.URL}, nil)
		srv.mu.Lock()
		srv.body = []byte(`{"keys": [`)
		srv.mu.Unlock()
		clk.Advance(11 * time.Second)
		_, err := v.Verify(t.Context(), sign(t, jwa.ES256, k.es, "new-kid", claims()))
		require.Error(t, err)
		_, err = v.Verify(t.Context(), sign(t, jwa.ES256, k.es, kidES, claims()))
		require.NoError(t, err)
	})

	t.Run("IdP down at start", func(t *testing.T) {
		srv := defaultJWKS(t)
		srv.setFail(true)
		v, clk := newTestVerifier(t, Config{HS256Secret: testSecret, JWKSURL: srv.URL}, nil)
		_, err := v.Verify(t.Context(), sign(t, jwa.HS256, testSecret, "", claims()))
		require.NoError(t, err, "HS256 works without the JWKS")
		_, err = v.Verify(t.Context(), sign(t, jwa.ES256, k.es, kidES, claims()))
		require.ErrorIs(t, err, derrors.Unauthenticated)

		srv.setFail(false)
		clk.Advance(11 * time.Second)
		_, err = v.Verify(t.Context(), sign(t, jwa.ES256, k.es, kidES, claims()))
		require.NoError(t, err)
	})

	t.Run("unreachable URL", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := New(t.Context(), Config{JWKSURL: url}, nil)
		require.NoError(t, err)
	})
}

func TestPeriodicRefresh(t *testing.T) {
	k := keys()
	srv := defaultJWKS(t)
	o := defaultOptions()
	o.refreshEvery = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, err := newVerifier(ctx, Config{JWKSURL: srv.URL}, nil, o)
	require.NoError(t, err)

	srv.set(t, publicJWK(t, &k.es2.PublicKey, kidES2, "ES256"))
	require.Eventually(t, func() bool { return v.jwks.get(kidES2, jwa.ES256) != nil }, 5*time.Second, 5*time.Millisecond)

	// Verify while the refresher swaps the cache, for the race detector.
	var wg sync.WaitGroup
	tok := sign(t, jwa.ES256, k.es2, kidES2, claims())
	for range 8 {
		wg.Go(func() {
			for range 20 {
				_, err := v.Verify(t.Context(), tok)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()

	cancel()
	time.Sleep(100 * time.Millisecond)
	hits := srv.hits.Load()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, hits, srv.hits.Load(), "the refresher stops with its context")
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no key source", Config{}},
		{"short secret", Config{HS256Secret: []byte("short")}},
		{"relative JWKS URL", Config{JWKSURL: "/jwks.json"}},
		{"non-http JWKS URL", Config{JWKSURL: "file:///etc/passwd"}},
		{"empty claim path segment", Config{HS256Secret: testSecret, TenantClaim: "app_metadata..tenant_id"}},
		{"negative leeway", Config{HS256Secret: testSecret, Leeway: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(t.Context(), tc.cfg, nil)
			require.Error(t, err)
		})
	}
}

func TestTenantClaim(t *testing.T) {
	top := Config{HS256Secret: testSecret, TenantClaim: "tenant"}
	deep := Config{HS256Secret: testSecret, TenantClaim: "a.b.c"}
	def := Config{HS256Secret: testSecret}
	for _, tc := range []struct {
		name string
		cfg  Config
		c    map[string]any
		want uuid.UUID
	}{
		{"default path", def, claims(), tenantA},
		{"top-level claim", top, with("tenant", tenantA.String()), tenantA},
		{"top-level claim ignores app_metadata", top, claims(), uuid.Nil},
		{"deep path", deep, with("a", map[string]any{"b": map[string]any{"c": tenantA.String()}}), tenantA},
		{"deep path through a string", deep, with("a", map[string]any{"b": "c"}), uuid.Nil},
		{"absent", def, without("app_metadata"), uuid.Nil},
		{"not a UUID", def, with("app_metadata", map[string]any{"tenant_id": "acme"}), uuid.Nil},
		{"a number", def, with("app_metadata", map[string]any{"tenant_id": 42}), uuid.Nil},
		{"braced UUID", def, with("app_metadata", map[string]any{"tenant_id": "{" + tenantA.String() + "}"}), uuid.Nil},
		{"nil UUID", def, with("app_metadata", map[string]any{"tenant_id": uuid.Nil.String()}), uuid.Nil},
		{"app_metadata not an object", def, with("app_metadata", "x"), uuid.Nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := newTestVerifier(t, tc.cfg, nil)
			got, err := v.Verify(t.Context(), sign(t, jwa.HS256, testSecret, "", tc.c))
			require.NoError(t, err, "a malformed tenant is absent, not an invalid token")
			assert.Equal(t, tc.want, got.TenantID)
		})
	}
}

func TestViewer(t *testing.T) {
	v, _ := newTestVerifier(t, Config{HS256Secret: testSecret}, nil)
	tenantB := uuid.MustParse("7d2b2a8c-59f1-4c0e-8d55-1a9b3e7c6f01")
	for _, tc := range []struct {
		name    string
		claims  Claims
		header  string
		want    tenant.Viewer
		wantErr string // substring of the Forbidden message
	}{
		{"user with tenant", Claims{Subject: "u1", Role: "authenticated", TenantID: tenantA}, "",
			tenant.Viewer{TenantID: tenantA, UserID: "u1", Role: "authenticated"}, ""},
		{"user ignores X-Tenant-ID", Claims{Subject: "u1", Role: "authenticated", TenantID: tenantA}, tenantB.String(),
			tenant.Viewer{TenantID: tenantA, UserID: "u1", Role: "authenticated"}, ""},
		{"service_role with header", Claims{Role: "service_role"}, tenantB.String(),
			tenant.Viewer{TenantID: tenantB, Role: "service_role"}, ""},
		{"service_role header wins over claim", Claims{Role: "service_role", TenantID: tenantA}, " " + tenantB.String() + " ",
			tenant.Viewer{TenantID: tenantB, Role: "service_role"}, ""},
		{"service_role without header", Claims{Role: "service_role", TenantID: tenantA}, "", tenant.Viewer{}, "X-Tenant-ID"},
		{"service_role with a bad header", Claims{Role: "service_role"}, "acme", tenant.Viewer{}, "X-Tenant-ID"},
		{"service_role with the nil UUID", Claims{Role: "service_role"}, uuid.Nil.String(), tenant.Viewer{}, "X-Tenant-ID"},
		{"anon", Claims{Role: "anon", TenantID: tenantA}, tenantA.String(), tenant.Viewer{}, "anonymous"},
		{"no tenant claim", Claims{Subject: "u1", Role: "authenticated"}, tenantA.String(), tenant.Viewer{}, "tenant"},
		{"no role", Claims{Subject: "u1", TenantID: tenantA}, "", tenant.Viewer{}, "role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Viewer(tc.claims, tc.header)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, derrors.Forbidden)
				var de *derrors.Error
				require.True(t, errors.As(err, &de))
				assert.Contains(t, de.Message, tc.wantErr)
				assert.Equal(t, tenant.Viewer{}, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.False(t, got.System)
		})
	}
}

func TestViewerFromCustomClaimPath(t *testing.T) {
	v, _ := newTestVerifier(t, Config{HS256Secret: testSecret, TenantClaim: "tenant"}, nil)
	tok, err := Mint(testSecret, MintOptions{Tenant: tenantA, Subject: "u1", TenantClaim: "tenant"})
	require.NoError(t, err)
	c, err := v.Verify(t.Context(), tok)
	require.NoError(t, err)
	got, err := v.Viewer(c, "")
	require.NoError(t, err)
	assert.Equal(t, tenant.Viewer{TenantID: tenantA, UserID: "u1", Role: "authenticated"}, got)
}

func TestMint(t *testing.T) {
	v, _ := newTestVerifier(t, Config{HS256Secret: testSecret, Issuer: "https://proj.supabase.co/auth/v1"}, nil)

	t.Run("round trip", func(t *testing.T) {
		tok, err := Mint(testSecret, MintOptions{Tenant: tenantA, Subject: "u1", Issuer: "https://proj.supabase.co/auth/v1", TTL: time.Minute})
		require.NoError(t, err)
		c, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
		assert.Equal(t, "u1", c.Subject)
		assert.Equal(t, "authenticated", c.Role)
		assert.Equal(t, tenantA, c.TenantID)
		assert.WithinDuration(t, time.Now().Add(time.Minute), c.Expiry, 2*time.Second)
	})
	t.Run("service_role without tenant", func(t *testing.T) {
		tok, err := Mint(testSecret, MintOptions{Role: "service_role", Issuer: "https://proj.supabase.co/auth/v1"})
		require.NoError(t, err)
		c, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
		assert.Equal(t, uuid.Nil, c.TenantID)
		assert.Equal(t, "service_role", c.Role)
	})
	t.Run("negative TTL mints an expired token", func(t *testing.T) {
		tok, err := Mint(testSecret, MintOptions{Tenant: tenantA, Issuer: "https://proj.supabase.co/auth/v1", TTL: -time.Hour})
		require.NoError(t, err)
		_, err = v.Verify(t.Context(), tok)
		require.ErrorIs(t, err, derrors.Unauthenticated)
	})
	t.Run("short secret", func(t *testing.T) {
		_, err := Mint([]byte("short"), MintOptions{})
		require.Error(t, err)
	})
	t.Run("tenant path over a registered claim", func(t *testing.T) {
		_, err := Mint(testSecret, MintOptions{Tenant: tenantA, TenantClaim: "exp"})
		require.Error(t, err)
	})
}
