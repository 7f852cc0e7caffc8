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
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

// readBody reads the request body, refusing more than MaxBodyBytes.
func readBody(c echo.Context) ([]byte, error) { return readBodyMax(c, MaxBodyBytes) }

// readBodyMax reads the request body, refusing more than limit bytes.
func readBodyMax(c echo.Context, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: the body exceeds %d bytes", errPayloadTooLarge, limit)
	}
	if err != nil {
		return nil, derrors.New(derrors.InvalidArgument, "could not read the body")
	}
	return body, nil
}

// decodeStrict decodes one JSON value from body into v: unknown fields,
// wrong types, trailing data, an empty body and text PostgreSQL cannot
// store are InvalidArgument errors that name the field by its JSON path in
// the body, such as "steps[3].type".
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return derrors.New(derrors.InvalidArgument, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(body, reflect.TypeOf(v), err)
	}
	if dec.More() {
		return derrors.New(derrors.InvalidArgument, "the body must hold a single JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return derrors.New(derrors.InvalidArgument, "the body must hold a single JSON value")
	}
	return storableText(body)
}

// jsonError turns the error of decoding body into a value of type typ into
// an InvalidArgument naming the field.
func jsonError(body []byte, typ reflect.Type, err error) error {
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &syntaxErr):
		return derrors.New(derrors.InvalidArgument, "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return derrors.New(derrors.InvalidArgument, "truncated JSON")
	}
	if field, msg, ok := locate(body, typ, ""); ok {
		if field == "" {
			return derrors.New(derrors.InvalidArgument, "the body %s", msg)
		}
		return derrors.Field(field, "%s", msg)
	}
	return derrors.New(derrors.InvalidArgument, "invalid JSON")
}

// locate finds in raw, a JSON value that failed to decode into typ, the
// first value in document order that does not fit, and returns its JSON
// path (under path) and what is wrong with it in an API user's words. It
// follows encoding/json's rules: keys match field names case-insensitively,
// null fits anything, and the leaves are decoded by encoding/json itself.
func locate(raw []byte, typ reflect.Type, path string) (field, msg string, ok bool) {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		return "", "", false
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if reflect.PointerTo(typ).Implements(jsonUnmarshaler) || (typ.Kind() != reflect.Struct && typ.Kind() != reflect.Slice && typ.Kind() != reflect.Map) {
		if json.Unmarshal(raw, reflect.New(typ).Interface()) != nil {
			return path, "must be " + typeName(typ), true
		}
		return "", "", false
	}
	switch typ.Kind() {
	case reflect.Slice:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return path, "must be an array", true
		}
		for i, item := range items {
			if f, m, ok := locate(item, typ.Elem(), fmt.Sprintf("%s[%d]", path, i)); ok {
				return f, m, true
			}
		}
	case reflect.Map:
		keys, values, isObject := members(raw)
		if !isObject {
			return path, "must be an object", true
		}
		for i, k := range keys {
			if f, m, ok := locate(values[i], typ.Elem(), member(path, k)); ok {
				return f, m, true
			}
		}
	case reflect.Struct:
		keys, values, isObject := members(raw)
		if !isObject {
			return path, "must be an object", true
		}
		for i, k := range keys {
			f, found := structField(typ, k)
			if !found {
				return member(path, k), "is not a known field", true
			}
			if f, m, ok := locate(values[i], f.Type, member(path, k)); ok {
				return f, m, true
			}
		}
	}
	return "", "", false
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// members returns the keys and values of a JSON object in document order;
// isObject is false when raw is not an object.
func members(raw []byte) (keys []string, values []json.RawMessage, isObject bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return keys, values, true
		}
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return keys, values, true
		}
		keys, values = append(keys, tok.(string)), append(values, v)
	}
	return keys, values, true
}

// structField is the field of typ that encoding/json decodes the key
// into: an exact match of its JSON name, else a case-insensitive one.
func structField(typ reflect.Type, key string) (reflect.StructField, bool) {
	var folded *reflect.StructField
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if folded == nil && strings.EqualFold(name, key) {
			folded = &f
		}
	}
	if folded != nil {
		return *folded, true
	}
	return reflect.StructField{}, false
}

// member is the JSON path of key in the object at path.
func member(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
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

// str reads a free-text parameter, which must be text PostgreSQL can
// compare with: valid UTF-8 without NUL.
func (q *query) str(name string) string {
	s := q.c.QueryParam(name)
	switch {
	case strings.ContainsRune(s, 0):
		q.errs = append(q.errs, derrors.Detail{Field: name, Message: "contains the NUL character, which cannot be stored"})
	case !utf8.ValidString(s):
		q.errs = append(q.errs, derrors.Detail{Field: name, Message: "is not valid UTF-8"})
	}
	return s
}

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

// storableText refuses, with an InvalidArgument naming the field, text in
// a JSON body that PostgreSQL cannot store, so that both backends answer
// it the same way, before anything is written: the NUL character (\u0000,
// which neither text nor jsonb holds), an unpaired UTF-16 surrogate escape
// (\ud800) and bytes that are not UTF-8. body is valid JSON.
func storableText(body []byte) error {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u`)) {
		return nil // the common case: nothing to look at
	}
	type frame struct {
		object bool
		key    string
		index  int
	}
	var stack []frame
	path := func(depth int) string {
		p := ""
		for _, f := range stack[:depth] {
			if f.object {
				p = member(p, f.key)
			} else {
				p = fmt.Sprintf("%s[%d]", p, f.index)
			}
		}
		return p
	}
	expectKey := false
	for i := 0; i < len(body); {
		switch body[i] {
		case '{':
			stack = append(stack, frame{object: true})
			expectKey = true
			i++
		case '[':
			stack = append(stack, frame{})
			expectKey = false
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			i++
		case ',':
			if top := &stack[len(stack)-1]; top.object {
				expectKey = true
			} else {
				top.index++
			}
			i++
		case '"':
			end, problem := scanString(body, i)
			switch {
			case expectKey && problem != "":
				field := path(len(stack) - 1)
				if field == "" {
					return derrors.New(derrors.InvalidArgument, "the body has a key that %s", problem)
				}
				return derrors.Field(field, "has a key that %s", problem)
			case expectKey:
				var key string
				if json.Unmarshal(body[i:end], &key) != nil {
					key = string(body[i+1 : end-1])
				}
				stack[len(stack)-1].key = key
				expectKey = false
			case problem != "":
				field := path(len(stack))
				if field == "" {
					return derrors.New(derrors.InvalidArgument, "the body %s", problem)
				}
				return derrors.Field(field, "%s", problem)
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

// scanString scans the JSON string that starts at body[start] (its opening
// quote) and returns the index just past its closing quote and, when it
// holds text PostgreSQL cannot store, what is wrong with it.
func scanString(body []byte, start int) (end int, problem string) {
	for i := start + 1; i < len(body); {
		switch c := body[i]; {
		case c == '"':
			return i + 1, problem
		case c == '\\' && i+1 < len(body) && body[i+1] == 'u' && i+6 <= len(body):
			r := hexRune(body[i+2 : i+6])
			switch {
			case r == 0 && problem == "":
				problem = `contains the NUL character (\u0000), which cannot be stored`
			case r >= 0xD800 && r < 0xDC00:
				if i+12 <= len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
					if lo := hexRune(body[i+8 : i+12]); lo >= 0xDC00 && lo <= 0xDFFF {
						i += 12
						continue
					}
				}
				fallthrough
			case r >= 0xDC00 && r <= 0xDFFF:
				if problem == "" {
					problem = `contains an unpaired UTF-16 surrogate escape (\ud800-\udfff), which is not a character`
				}
			}
			i += 6
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 && problem == "" {
				problem = "is not valid UTF-8"
			}
			i += size
		}
	}
	return len(body), problem
}

// hexRune decodes the four hex digits of a \u escape; -1 when malformed.
func hexRune(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}
