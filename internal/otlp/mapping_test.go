package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/agentstore/agentstore/internal/derrors"
)

var update = flag.Bool("update", false, "rewrite the golden files of the mapping tests")

// TestMappingGolden decodes each OTLP JSON request of testdata, maps it,
// and compares the result with its golden file; the same request in
// protobuf maps the same.
func TestMappingGolden(t *testing.T) {
	for _, name := range []string{"genai", "openinference", "rejects"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", name+".json"))
			require.NoError(t, err)
			req, err := Decode(body, JSON, "", 1<<20)
			require.NoError(t, err)
			got, err := json.MarshalIndent(Map(req), "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./internal/otlp -update to write it")
			assert.Equal(t, string(want), string(got))

			pb, err := proto.Marshal(req)
			require.NoError(t, err)
			fromPB, err := Decode(pb, Protobuf, "", 1<<20)
			require.NoError(t, err)
			assert.Equal(t, Map(req), Map(fromPB), "protobuf and JSON map alike")
		})
	}
}

func TestMappingOfEachConvention(t *testing.T) {
	load := func(name string) Mapped {
		body, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		require.NoError(t, err)
		req, err := Decode(body, JSON, "", 1<<20)
		require.NoError(t, err)
		return Map(req)
	}
	targets := func(m Mapped) []Target {
		var out []Target
		for _, s := range m.Spans {
			out = append(out, s.Target)
		}
		return out
	}
	g := load("genai")
	assert.Equal(t, []Target{TargetRun, TargetLLM, TargetToolCall, TargetToolCall, TargetRun, TargetLLM, TargetStep, TargetStep}, targets(g))
	assert.Equal(t, "travel-planner", g.Spans[0].AgentName)
	assert.Equal(t, "gpt-4o-2024-08-06", g.Spans[1].Model, "the response model wins over the request model")
	assert.Equal(t, int64(120), g.Spans[1].InputTokens)
	assert.JSONEq(t, `{"city":"Paris"}`, string(g.Spans[2].Input), "JSON arguments stay JSON")
	assert.JSONEq(t, `"sunny, 21C"`, string(g.Spans[2].Output))
	assert.Equal(t, "TimeoutError", g.Spans[3].Error, "error.type when the status has no message")
	assert.Equal(t, "no rooms left", g.Spans[4].Error)
	assert.Equal(t, "client", g.Spans[6].StepType, "no operation: the span kind")
	assert.Equal(t, "create_agent", g.Spans[7].StepType)
	assert.Equal(t, "travel-service", g.Spans[0].ServiceName)
	assert.Equal(t, "", g.Spans[0].ParentSpanID)

	o := load("openinference")
	assert.Equal(t, []Target{TargetRun, TargetLLM, TargetToolCall, TargetStep, TargetStep, TargetRun, TargetLLM}, targets(o))
	assert.Equal(t, "research-agent", o.Spans[0].AgentName, "no agent name: the span name")
	assert.Equal(t, "summarizer", o.Spans[5].AgentName)
	assert.Equal(t, int64(10), o.Spans[1].OutputTokens, "an integral double counts")
	assert.Equal(t, int64(12), o.Spans[6].InputTokens, "a decimal string counts")
	assert.Equal(t, "arxiv_search", o.Spans[2].ToolName)
	assert.Equal(t, []string{"chain", "retriever"}, []string{o.Spans[3].StepType, o.Spans[4].StepType})
	require.NotNil(t, o.Spans[0].UserID)

	r := load("rejects")
	require.Len(t, r.Spans, 1)
	assert.Equal(t, "kept", r.Spans[0].Name)
	var reasons []string
	for _, x := range r.Rejected {
		reasons = append(reasons, x.Reason)
	}
	assert.Equal(t, []string{"invalid trace id", "invalid trace id", "invalid span id", "invalid span id",
		"invalid parent span id", "ends before it starts", "no start time", "negative or malformed input token count"}, reasons)
}

func TestDecodeRefusals(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "genai.json"))
	require.NoError(t, err)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(body)
	require.NoError(t, zw.Close())
	req, err := Decode(zipped.Bytes(), JSON, "gzip", 1<<20)
	require.NoError(t, err)
	assert.Len(t, Map(req).Spans, 8)

	_, err = Decode(zipped.Bytes(), JSON, "gzip", int64(len(body)-1))
	assert.ErrorIs(t, err, ErrTooLarge, "the cap holds after decompression")
	_, err = Decode(body, JSON, "br", 1<<20)
	assert.ErrorIs(t, err, ErrUnsupportedMediaType)
	for _, c := range []struct {
		body []byte
		enc  Encoding
		ce   string
	}{
		{[]byte("{"), JSON, ""}, {[]byte(`{"resourceSpans": 5}`), JSON, ""}, {[]byte(`[] []`), JSON, ""},
		{[]byte{0xff, 0xff, 0xff}, Protobuf, ""}, {[]byte("not gzip"), Protobuf, "gzip"},
	} {
		_, err := Decode(c.body, c.enc, c.ce, 1<<20)
		assert.ErrorIs(t, err, derrors.InvalidArgument, "%q", c.body)
	}
	for ct, want := range map[string]Encoding{
		"application/x-protobuf": Protobuf, "application/json; charset=utf-8": JSON, "Application/JSON": JSON,
	} {
		got, err := EncodingOf(ct)
		require.NoError(t, err, ct)
		assert.Equal(t, want, got, ct)
	}
	for _, ct := range []string{"", "text/plain", "application/grpc", ";;"} {
		_, err := EncodingOf(ct)
		assert.True(t, errors.Is(err, ErrUnsupportedMediaType), ct)
	}
	out, err := EncodeResponse(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{
		RejectedSpans: 2, ErrorMessage: "x"}}, JSON)
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(out), `"rejectedSpans":"2"`), "%s", out)
}
