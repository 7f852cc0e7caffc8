package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"strings"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentstore/agentstore/internal/derrors"
)

// Encoding is how an OTLP/HTTP request, and so its response, is encoded.
type Encoding int

// The encodings of OTLP/HTTP.
const (
	// Protobuf is application/x-protobuf: the binary protobuf encoding.
	Protobuf Encoding = iota + 1
	// JSON is application/json: OTLP JSON, protobuf's JSON mapping with
	// trace and span ids as hex strings.
	JSON
)

// The media types of the encodings.
const (
	MediaTypeProtobuf = "application/x-protobuf"
	MediaTypeJSON     = "application/json"
)

// ContentType is the media type of e.
func (e Encoding) ContentType() string {
	if e == JSON {
		return MediaTypeJSON
	}
	return MediaTypeProtobuf
}

var (
	// ErrUnsupportedMediaType is a content type or content encoding that
	// OTLP/HTTP does not have.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrTooLarge is a body larger, once decompressed, than allowed.
	ErrTooLarge = errors.New("body too large")
)

// EncodingOf reads a Content-Type header.
func EncodingOf(contentType string) (Encoding, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, ErrUnsupportedMediaType
	}
	switch strings.ToLower(mt) {
	case MediaTypeProtobuf, "application/protobuf":
		return Protobuf, nil
	case MediaTypeJSON:
		return JSON, nil
	}
	return 0, ErrUnsupportedMediaType
}

// Decode decodes an export request encoded as enc, first gunzipping it
// when contentEncoding is gzip. The body may not exceed max bytes once
// decompressed (ErrTooLarge); an encoding other than gzip or identity is
// ErrUnsupportedMediaType; a body that is not an export request is an
// InvalidArgument.
func Decode(body []byte, enc Encoding, contentEncoding string, max int64) (*coltracepb.ExportTraceServiceRequest, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, derrors.New(derrors.InvalidArgument, "the body is not valid gzip")
		}
		body, err = io.ReadAll(io.LimitReader(zr, max+1))
		if err != nil {
			return nil, derrors.New(derrors.InvalidArgument, "the body is not valid gzip")
		}
	default:
		return nil, ErrUnsupportedMediaType
	}
	if int64(len(body)) > max {
		return nil, ErrTooLarge
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if enc == JSON {
		fixed, err := hexIDsToBase64(body)
		if err != nil {
			return nil, err
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, req); err != nil {
			return nil, derrors.New(derrors.InvalidArgument, "the body is not an OTLP JSON export request: %s", brief(err))
		}
		return req, nil
	}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, derrors.New(derrors.InvalidArgument, "the body is not an OTLP protobuf export request: %s", brief(err))
	}
	return req, nil
}

// EncodeResponse encodes resp as enc.
func EncodeResponse(resp *coltracepb.ExportTraceServiceResponse, enc Encoding) ([]byte, error) {
	if enc == JSON {
		return protojson.Marshal(resp)
	}
	return proto.Marshal(resp)
}

// idKeys are the members of OTLP JSON that hold ids, hex in OTLP JSON and
// base64 in protobuf's JSON mapping.
var idKeys = map[string]bool{
	"traceId": true, "spanId": true, "parentSpanId": true,
	"trace_id": true, "span_id": true, "parent_span_id": true,
}

// badID is what an id that is not hex becomes: one byte, which no id has,
// so that its span is rejected alone rather than the whole request.
var badID = base64.StdEncoding.EncodeToString([]byte{0})

// hexIDsToBase64 rewrites the hex ids of an OTLP JSON document as base64,
// for protojson.
func hexIDsToBase64(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, derrors.New(derrors.InvalidArgument, "the body is not JSON: %s", brief(err))
	}
	if dec.More() {
		return nil, derrors.New(derrors.InvalidArgument, "the body must hold a single JSON value")
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && idKeys[k] {
					b, err := hex.DecodeString(s)
					if err != nil {
						x[k] = badID
					} else {
						x[k] = base64.StdEncoding.EncodeToString(b)
					}
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return json.Marshal(doc)
}

// brief is the first line of err, at most 200 bytes.
func brief(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
