package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

// readBody reads the request body, refusing more than MaxBodyBytes.
func readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: the body exceeds %d bytes", errPayloadTooLarge, MaxBodyBytes)
	}
	if err != nil {
		return nil, derrors.New(derrors.InvalidArgument, "could not read the body")
	}
	return body, nil
}

// decodeStrict decodes one JSON value from body into v: unknown fields,
// wrong types, trailing data and an empty body are InvalidArgument errors
// that name the field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return derrors.New(derrors.InvalidArgument, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return derrors.New(derrors.InvalidArgument, "the body must hold a single JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return derrors.New(derrors.InvalidArgument, "the body must hold a single JSON value")
	}
	return nil
}

// jsonError turns a decoding error into an InvalidArgument naming the field.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return derrors.Field(field, "must be %s", typeName(typeErr.Type))
	case errors.As(err, &syntaxErr):
		return derrors.New(derrors.InvalidArgument, "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return derrors.New(derrors.InvalidArgument, "truncated JSON")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return derrors.Field(name, "is not a known field")
	}
	return derrors.New(derrors.InvalidArgument, "invalid JSON")
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(ID{}) || t == reflect.TypeOf(uuid.UUID{}):
		return "a UUID string"
	case t == reflect.TypeOf(time.Time{}):
		return "an RFC 3339 timestamp"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a valid " + t.String()
}

// ID is a UUID in a request body; a malformed one is reported with its
// field's name.
type ID uuid.UUID

// UnmarshalJSON accepts a canonical UUID string.
func (i *ID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if u, err := uuid.Parse(s); err == nil && len(s) == 36 {
			*i = ID(u)
			return nil
		}
	}
	return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeOf(ID{})}
}

// uuidPtr converts an optional ID.
func uuidPtr(i *ID) *uuid.UUID {
	if i == nil {
		return nil
	}
	u := uuid.UUID(*i)
	return &u
}

// pathID parses the UUID path parameter name; a malformed one is an
// InvalidArgument.
func pathID(c echo.Context, name string) (uuid.UUID, error) {
	s := c.Param(name)
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, derrors.Field(name, "must be a UUID")
	}
	return u, nil
}

// query reads optional query parameters, collecting every bad one.
type query struct {
	c    echo.Context
	errs []derrors.Detail
}

func (q *query) str(name string) string { return q.c.QueryParam(name) }

func (q *query) time(name string) time.Time {
	s := q.c.QueryParam(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		q.errs = append(q.errs, derrors.Detail{Field: name, Message: "must be an RFC 3339 timestamp"})
	}
	return t
}

// uuid reads an optional UUID parameter; absent is nil.
func (q *query) uuid(name string) *uuid.UUID {
	s := q.c.QueryParam(name)
	if s == "" {
		return nil
	}
	id, err := uuid.Parse(s)
	if err != nil {
		q.errs = append(q.errs, derrors.Detail{Field: name, Message: "must be a UUID"})
		return nil
	}
	return &id
}

func (q *query) int(name string) int {
	s := q.c.QueryParam(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		q.errs = append(q.errs, derrors.Detail{Field: name, Message: "must be an integer"})
	}
	return n
}

// limit reads the page size: absent is 0 (the default), present must be
// between 1 and store.MaxPageSize.
func (q *query) limit() int {
	if q.c.QueryParam("limit") == "" {
		return 0
	}
	n := q.int("limit")
	if n < 1 || n > store.MaxPageSize {
		q.errs = append(q.errs, derrors.Detail{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", store.MaxPageSize)})
	}
	return n
}

func (q *query) oneOf(name string, allowed ...string) string {
	s := q.c.QueryParam(name)
	if s == "" {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	q.errs = append(q.errs, derrors.Detail{Field: name, Message: "must be one of " + strings.Join(allowed, ", ")})
	return s
}

func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	msgs := make([]string, len(q.errs))
	for i, d := range q.errs {
		msgs[i] = d.Field + ": " + d.Message
	}
	return &derrors.Error{Category: derrors.InvalidArgument, Message: strings.Join(msgs, "; "), Details: q.errs}
}

// required collects the names of missing required fields.
type required []derrors.Detail

func (r *required) check(ok bool, field string) {
	if !ok {
		*r = append(*r, derrors.Detail{Field: field, Message: "is required"})
	}
}

func (r required) err() error {
	if len(r) == 0 {
		return nil
	}
	msgs := make([]string, len(r))
	for i, d := range r {
		msgs[i] = d.Field + " " + d.Message
	}
	return &derrors.Error{Category: derrors.InvalidArgument, Message: strings.Join(msgs, "; "), Details: r}
}
