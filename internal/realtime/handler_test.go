package realtime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// TestAcceptRefusals: Accept writes nothing when it refuses a handshake,
// and returns an error whose category the HTTP layer answers.
func TestAcceptRefusals(t *testing.T) {
	e := newEnv(t, modeMemory, envOpts{})
	ep := e.hubs[0].Endpoint(e.verifier, e.runs, nil)
	viewer := tenant.Viewer{TenantID: uuid.New(), Role: "authenticated"}
	authed := func(r *http.Request) *http.Request {
		ctx := tenant.NewContext(r.Context(), viewer)
		return r.WithContext(auth.NewContext(ctx, auth.Claims{TenantID: viewer.TenantID, Expiry: time.Now().Add(time.Hour)}))
	}
	upgrade := func(r *http.Request) *http.Request {
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return r
	}
	get := func() *http.Request { return httptest.NewRequest(http.MethodGet, "/v1/ws", nil) }

	tests := []struct {
		name     string
		req      *http.Request
		category error
	}{
		{"no viewer", upgrade(get()), derrors.Unauthenticated},
		{"origin", func() *http.Request {
			r := authed(upgrade(get()))
			r.Header.Set("Origin", "https://evil.example.com")
			return r
		}(), derrors.Forbidden},
		{"not an upgrade", authed(get()), derrors.InvalidArgument},
		{"not GET", authed(upgrade(httptest.NewRequest(http.MethodPost, "/v1/ws", nil))), derrors.InvalidArgument},
		{"bad key", func() *http.Request {
			r := authed(upgrade(get()))
			r.Header.Set("Sec-WebSocket-Key", "short")
			return r
		}(), derrors.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			err := ep.Accept(w, tt.req)
			require.ErrorIs(t, err, tt.category)
			assert.Equal(t, derrors.Category(err), tt.category)
			assert.Zero(t, w.Body.Len(), "Accept writes no body")
			assert.False(t, w.Flushed)
		})
	}

	t.Run("shutting down", func(t *testing.T) {
		require.NoError(t, e.hubs[0].Shutdown(context.Background()))
		w := httptest.NewRecorder()
		err := ep.Accept(w, authed(upgrade(get())))
		require.ErrorIs(t, err, derrors.Unavailable)
		assert.Zero(t, w.Body.Len(), "Accept writes no body")
	})
}
