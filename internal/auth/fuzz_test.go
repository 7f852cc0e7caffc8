package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// FuzzVerify feeds arbitrary strings to Verify. It must never panic, and
// whatever it accepts must carry a valid signature by one of the test keys
// over exactly the bytes given, checked here with the standard library
// alone, plus an unexpired exp and the right audience.
func FuzzVerify(f *testing.F) {
	k := keys()
	srv := defaultJWKS(f)
	v, _ := newTestVerifier(f, Config{HS256Secret: testSecret, JWKSURL: srv.URL, Leeway: time.Second}, nil)

	// Valid tokens of each kind, so the fuzzer mutates real structure; the
	// files in testdata/fuzz/FuzzVerify add malformed and hostile ones.
	f.Add(sign(f, jwa.HS256, testSecret, "", claims()))
	f.Add(sign(f, jwa.ES256, k.es, kidES, claims()))
	f.Add(sign(f, jwa.RS256, k.rs, kidRS, claims()))
	f.Add(sign(f, jwa.HS256, k.rsPEM, kidRS, claims()))
	f.Add(unsigned(f, `{"alg":"none","typ":"JWT"}`, claims(), ""))

	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(t.Context(), token)
		if err != nil {
			return
		}
		if !signedByTestKey(token, k) {
			t.Fatalf("accepted a token not signed by a test key: %q", token)
		}
		if !c.Expiry.After(time.Now().Add(-time.Minute)) {
			t.Fatalf("accepted a token that expired at %v", c.Expiry)
		}
		if !audienceOK(token) {
			t.Fatalf("accepted a token without the audience: %q", token)
		}
	})
}

// signedByTestKey checks token's signature with the standard library only.
func signedByTestKey(token string, k testKeys) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	hdrJSON, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdrJSON, &hdr) != nil {
		return false
	}
	input := []byte(parts[0] + "." + parts[1])
	digest := sha256.Sum256(input)
	switch hdr.Alg {
	case "HS256":
		mac := hmac.New(sha256.New, testSecret)
		mac.Write(input)
		return hmac.Equal(sig, mac.Sum(nil))
	case "ES256":
		if len(sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(&k.es.PublicKey, digest[:], r, s)
	case "RS256":
		return rsa.VerifyPKCS1v15(&k.rs.PublicKey, crypto.SHA256, digest[:], sig) == nil
	}
	return false
}

// audienceOK reports whether token's aud is or contains DefaultAudience.
func audienceOK(token string) bool {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c struct {
		Aud any `json:"aud"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return false
	}
	switch a := c.Aud.(type) {
	case string:
		return a == DefaultAudience
	case []any:
		for _, x := range a {
			if x == DefaultAudience {
				return true
			}
		}
	}
	return false
}
