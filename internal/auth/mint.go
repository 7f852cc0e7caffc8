package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// DefaultMintTTL is how long a minted token lives when MintOptions.TTL is 0.
const DefaultMintTTL = time.Hour

// MintOptions describe a token for Mint. Zero fields take the defaults a
// Verifier with default settings accepts.
type MintOptions struct {
	// Tenant goes into the claim at TenantClaim; uuid.Nil leaves it out.
	Tenant uuid.UUID
	// Subject is the sub claim; empty leaves it out.
	Subject string
	// Role is the role claim; empty means "authenticated".
	Role string
	// Audience is the aud claim; empty means DefaultAudience.
	Audience string
	// Issuer is the iss claim; empty leaves it out.
	Issuer string
	// TTL is the time from now to exp; 0 means DefaultMintTTL, and a
	// negative TTL mints an already expired token.
	TTL time.Duration
	// TenantClaim is the dot path the tenant goes to; empty means
	// DefaultTenantClaim.
	TenantClaim string
}

// reservedClaims may not be the first segment of a tenant claim path, so a
// minted tenant cannot overwrite a claim the verifier relies on.
var reservedClaims = map[string]bool{
	jwt.IssuerKey: true, jwt.SubjectKey: true, jwt.AudienceKey: true,
	jwt.ExpirationKey: true, jwt.NotBeforeKey: true, jwt.IssuedAtKey: true,
	jwt.JwtIDKey: true, "role": true,
}

// Mint returns an HS256 token signed with secret, as Supabase Auth would
// issue it: for local development, tests, and tools that call the API as a
// given tenant.
func Mint(secret []byte, o MintOptions) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("auth: JWT secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	if o.Role == "" {
		o.Role = DefaultAudience
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.TTL == 0 {
		o.TTL = DefaultMintTTL
	}
	if o.TenantClaim == "" {
		o.TenantClaim = DefaultTenantClaim
	}
	path, err := splitClaimPath(o.TenantClaim)
	if err != nil {
		return "", err
	}
	if reservedClaims[path[0]] {
		return "", fmt.Errorf("auth: tenant claim path %q overwrites a registered claim", o.TenantClaim)
	}

	now := time.Now().Truncate(time.Second)
	b := jwt.NewBuilder().
		Audience([]string{o.Audience}).
		IssuedAt(now).
		Expiration(now.Add(o.TTL)).
		Claim("role", o.Role)
	if o.Subject != "" {
		b = b.Subject(o.Subject)
	}
	if o.Issuer != "" {
		b = b.Issuer(o.Issuer)
	}
	if o.Tenant != uuid.Nil {
		// Build the nested objects from the innermost one out.
		var v any = o.Tenant.String()
		for i := len(path) - 1; i > 0; i-- {
			v = map[string]any{path[i]: v}
		}
		b = b.Claim(path[0], v)
	}
	tok, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("auth: build token: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, secret))
	if err != nil {
		return "", errors.New("auth: sign token")
	}
	return string(signed), nil
}
