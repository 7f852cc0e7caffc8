package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

const (
	// maxJWKSBytes bounds the key set body; real ones are a few KiB.
	maxJWKSBytes = 1 << 20
	// minRSABits is the smallest RSA modulus accepted from the key set.
	minRSABits = 2048
)

// keyRef names one verification key: the kid the token's header selects it
// by, and the only algorithm it may be used with.
type keyRef struct {
	kid string
	alg jwa.SignatureAlgorithm
}

// keySet is a cached JWKS. Lookups read the cache; a lookup that misses
// triggers a fetch, at most one every minRefetch, so tokens with made-up
// kids cannot hammer the identity provider. A failed fetch keeps the keys
// already cached.
type keySet struct {
	url    string
	client *http.Client
	log    *slog.Logger
	o      options

	mu   sync.RWMutex
	keys map[keyRef]any // *ecdsa.PublicKey or *rsa.PublicKey

	fetchMu   sync.Mutex // serialises fetches; guards lastFetch
	lastFetch time.Time  // start of the last fetch attempt, zero before the first
}

func newKeySet(url string, client *http.Client, log *slog.Logger, o options) *keySet {
	return &keySet{url: url, client: client, log: log, o: o, keys: map[keyRef]any{}}
}

// run refreshes the set every refreshEvery until ctx is done.
func (s *keySet) run(ctx context.Context) {
	t := time.NewTicker(s.o.refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				return
			}
			s.refresh(ctx)
		}
	}
}

func (s *keySet) get(kid string, alg jwa.SignatureAlgorithm) any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[keyRef{kid, alg}]
}

// lookup returns the key for kid that may verify alg, refetching the set
// once when it is unknown and the last fetch is older than minRefetch. It
// returns nil when there is no such key.
func (s *keySet) lookup(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) any {
	if k := s.get(kid, alg); k != nil {
		return k
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	if k := s.get(kid, alg); k != nil {
		return k
	}
	if !s.lastFetch.IsZero() && s.o.now().Sub(s.lastFetch) < s.o.minRefetch {
		return nil
	}
	s.refreshLocked(ctx)
	return s.get(kid, alg)
}

// refresh fetches the set and, when that succeeds, replaces the cache.
func (s *keySet) refresh(ctx context.Context) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.refreshLocked(ctx)
}

func (s *keySet) refreshLocked(ctx context.Context) {
	s.lastFetch = s.o.now()
	// The fetch is shared by every request waiting on fetchMu, so one
	// caller going away must not cancel it; the timeout still bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.fetchTimeout)
	defer cancel()
	keys, err := s.fetch(ctx)
	if err != nil {
		s.mu.RLock()
		n := len(s.keys)
		s.mu.RUnlock()
		s.log.Warn("jwks fetch failed; keeping cached keys", "jwks_url", s.url, "cached_keys", n, "error", err)
		return
	}
	s.mu.Lock()
	changed := !maps.EqualFunc(s.keys, keys, func(a, b any) bool { return publicKeyEqual(a, b) })
	s.keys = keys
	s.mu.Unlock()
	if changed {
		s.log.Info("jwks keys loaded", "jwks_url", s.url, "kids", kidList(keys))
	}
}

func (s *keySet) fetch(ctx context.Context) (map[keyRef]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, errors.New("key set larger than 1 MiB")
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("parse key set: %w", err)
	}
	keys := make(map[keyRef]any, set.Len())
	for i := range set.Len() {
		k, _ := set.Key(i)
		ref, pub, err := usableKey(k)
		if err != nil {
			s.log.Debug("jwks key skipped", "kid", k.KeyID(), "reason", err.Error())
			continue
		}
		if _, dup := keys[ref]; dup {
			s.log.Warn("jwks key skipped", "kid", ref.kid, "reason", "duplicate kid")
			continue
		}
		keys[ref] = pub
	}
	return keys, nil
}

// usableKey returns the public key in k and the one algorithm it may verify:
// ES256 for a P-256 key, RS256 for an RSA key of at least 2048 bits. A key
// without a kid, not meant for signatures, of another type or curve, or
// whose own alg names another algorithm is refused.
func usableKey(k jwk.Key) (keyRef, any, error) {
	kid := k.KeyID()
	if kid == "" {
		return keyRef{}, nil, errors.New("no kid")
	}
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return keyRef{}, nil, fmt.Errorf("use %q", u)
	}
	pk, err := k.PublicKey()
	if err != nil {
		return keyRef{}, nil, err
	}
	var raw any
	if err := pk.Raw(&raw); err != nil {
		return keyRef{}, nil, err
	}
	var alg jwa.SignatureAlgorithm
	switch pub := raw.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return keyRef{}, nil, errors.New("EC key not on P-256")
		}
		alg = jwa.ES256
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return keyRef{}, nil, fmt.Errorf("RSA key of %d bits", pub.N.BitLen())
		}
		alg = jwa.RS256
	default:
		return keyRef{}, nil, fmt.Errorf("key type %s", k.KeyType())
	}
	if a := k.Algorithm().String(); a != "" && a != alg.String() {
		return keyRef{}, nil, fmt.Errorf("alg %q does not fit the key", a)
	}
	return keyRef{kid: kid, alg: alg}, raw, nil
}

func publicKeyEqual(a, b any) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func kidList(keys map[keyRef]any) []string {
	kids := make([]string, 0, len(keys))
	for ref := range keys {
		kids = append(kids, ref.kid+"/"+ref.alg.String())
	}
	slices.Sort(kids)
	return kids
}
