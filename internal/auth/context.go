package auth

import "context"

type claimsKey struct{}

// NewContext returns a copy of ctx that carries the claims of the
// request's verified token, for what outlives the request, such as a
// WebSocket connection that ends when its token expires.
func NewContext(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims in ctx, and false when there are none.
func FromContext(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}
