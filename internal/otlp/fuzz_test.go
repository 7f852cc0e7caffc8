package otlp

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/agentstore/agentstore/internal/derrors"
)

// FuzzDecode feeds arbitrary bodies to both decoders and maps what they
// accept: nothing may panic, and every refusal is a client error.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"genai", "openinference", "rejects"} {
		body, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body, false)
		req, err := Decode(body, JSON, "", 1<<20)
		if err != nil {
			f.Fatal(err)
		}
		pb, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pb, true)
	}
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"x","spanId":7}]}]}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, protobuf bool) {
		enc := JSON
		if protobuf {
			enc = Protobuf
		}
		req, err := Decode(body, enc, "", 1<<20)
		if err != nil {
			if !errors.Is(err, derrors.InvalidArgument) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode(%q) = %v, not a client error", body, err)
			}
			return
		}
		m := Map(req)
		for _, s := range m.Spans {
			if len(s.TraceID) != 32 || len(s.SpanID) != 16 || s.End.Before(s.Start) {
				t.Fatalf("Map kept an invalid span %+v", s)
			}
		}
	})
}
