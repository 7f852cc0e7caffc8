package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Page limits.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// Page asks for one page of a newest-first list: at most Limit rows (0
// means DefaultPageSize) after the opaque Cursor a previous page returned.
type Page struct {
	Limit  int
	Cursor string
}

// cursor is the keyset position of the last row of a page.
type cursor struct {
	T  time.Time `json:"t"`
	ID uuid.UUID `json:"id"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (p Page) parse() (limit int, after *cursor, err error) {
	limit = p.Limit
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 1 || limit > MaxPageSize:
		return 0, nil, derrors.Field("limit", "must be between 1 and %d", MaxPageSize)
	}
	if p.Cursor == "" {
		return limit, nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil || c.T.IsZero() {
		return 0, nil, derrors.Field("cursor", "is not a cursor this service returned")
	}
	return limit, &c, nil
}

// encodeSeqCursor is the cursor of a page of steps that ends at seq.
func encodeSeqCursor(seq int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("seq:" + strconv.Itoa(seq)))
}

func decodeSeqCursor(c string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), "seq:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

func descending() entsql.OrderTermOption { return entsql.OrderDesc() }

// viewerTenant returns the tenant of the viewer in ctx, the explicit
// predicate every repository adds on top of the privacy policy.
func viewerTenant(ctx context.Context) (uuid.UUID, error) {
	v, ok := tenant.FromContext(ctx)
	if !ok || v.TenantID == uuid.Nil {
		return uuid.Nil, derrors.New(derrors.Forbidden, "no tenant")
	}
	return v.TenantID, nil
}
