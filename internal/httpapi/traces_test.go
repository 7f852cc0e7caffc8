package httpapi

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/otlp"
	"github.com/agentstore/agentstore/internal/realtime"
)

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// otlpSpan is a span of trace starting at ms after a fixed instant and
// lasting 100 ms.
func otlpSpan(trace []byte, id, parent byte, name string, ms int, attrs ...*commonpb.KeyValue) *tracepb.Span {
	t0 := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	s := &tracepb.Span{
		TraceId: trace, SpanId: []byte{0, 0, 0, 0, 0, 0, 0, id}, Name: name, Kind: tracepb.Span_SPAN_KIND_INTERNAL,
		StartTimeUnixNano: uint64(t0.UnixNano()), EndTimeUnixNano: uint64(t0.Add(100 * time.Millisecond).UnixNano()),
		Attributes: attrs,
	}
	if parent != 0 {
		s.ParentSpanId = []byte{0, 0, 0, 0, 0, 0, 0, parent}
	}
	return s
}

// exportRequest wraps spans in an export request of service "svc".
func exportRequest(spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "svc")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

// agentSpans is a GenAI agent trace: the agent, a chat and a tool call.
func agentSpans(trace []byte) []*tracepb.Span {
	return []*tracepb.Span{
		otlpSpan(trace, 1, 0, "invoke_agent planner", 0, strAttr("gen_ai.operation.name", "invoke_agent"), strAttr("gen_ai.agent.name", "planner")),
		otlpSpan(trace, 2, 1, "chat gpt-4o", 10, strAttr("gen_ai.operation.name", "chat"), strAttr("gen_ai.request.model", "gpt-4o"),
			intAttr("gen_ai.usage.input_tokens", 100), intAttr("gen_ai.usage.output_tokens", 20)),
		otlpSpan(trace, 3, 1, "execute_tool search", 20, strAttr("gen_ai.operation.name", "execute_tool"),
			strAttr("gen_ai.tool.name", "search"), strAttr("gen_ai.tool.call.arguments", `{"q":"otlp"}`)),
	}
}

// otlpJSON encodes req as OTLP JSON: protojson with hex ids.
func otlpJSON(t *testing.T, req *coltracepb.ExportTraceServiceRequest) []byte {
	t.Helper()
	b, err := protojson.Marshal(req)
	require.NoError(t, err)
	// protojson writes ids in base64; OTLP JSON has them in hex.
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				for _, id := range [][]byte{s.TraceId, s.SpanId, s.ParentSpanId} {
					if len(id) > 0 {
						b = bytes.ReplaceAll(b, []byte(`"`+b64(id)+`"`), []byte(`"`+hex.EncodeToString(id)+`"`))
					}
				}
			}
		}
	}
	return b
}

func b64(b []byte) string {
	out, _ := protojson.Marshal(&commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: b}})
	return string(bytes.TrimSuffix(bytes.TrimPrefix(out, []byte(`{"bytesValue":"`)), []byte(`"}`)))
}

// otlpBodies returns one agent trace as OTLP JSON and another as protobuf.
func otlpBodies(t *testing.T) (jsonBody, pbBody []byte) {
	t.Helper()
	a, b := uuid.New(), uuid.New()
	pb, err := proto.Marshal(exportRequest(agentSpans(b[:])...))
	require.NoError(t, err)
	return otlpJSON(t, exportRequest(agentSpans(a[:])...)), pb
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// exportTraces posts req in enc and decodes the response.
func exportTraces(t *testing.T, c *client, enc otlp.Encoding, req *coltracepb.ExportTraceServiceRequest) *coltracepb.ExportTraceServiceResponse {
	t.Helper()
	var body []byte
	if enc == otlp.JSON {
		body = otlpJSON(t, req)
	} else {
		var err error
		body, err = proto.Marshal(req)
		require.NoError(t, err)
	}
	c.header.Set("Content-Type", enc.ContentType())
	defer c.header.Del("Content-Type")
	r := c.do("POST", "/v1/traces", body)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, enc.ContentType(), r.header.Get("Content-Type"))
	resp := &coltracepb.ExportTraceServiceResponse{}
	if enc == otlp.JSON {
		require.NoError(t, protojson.Unmarshal(r.body, resp))
	} else {
		require.NoError(t, proto.Unmarshal(r.body, resp))
	}
	return resp
}

func TestTracesBecomeRunsReadableThroughREST(t *testing.T) {
	for _, b := range backends {
		for _, enc := range []otlp.Encoding{otlp.Protobuf, otlp.JSON} {
			t.Run(b.name+" "+enc.ContentType(), func(t *testing.T) {
				t.Parallel()
				events := &recorder{}
				a := newAPIWith(t, b.open(t), func(d *Deps) { d.Events = events })
				tenantID := uuid.New()
				svc := a.as(auth.MintOptions{Subject: "exporter", Role: "service_role"})
				svc.header.Set(HeaderTenantID, tenantID.String())
				u := a.as(auth.MintOptions{Tenant: tenantID, Subject: uuid.NewString(), Role: "authenticated"})
				trace := uuid.New()
				spans := agentSpans(trace[:])

				// The children first, with two spans that cannot be stored.
				bad := otlpSpan(make([]byte, 16), 9, 0, "zero trace id", 0)
				backwards := otlpSpan(trace[:], 8, 1, "backwards", 50)
				backwards.EndTimeUnixNano = backwards.StartTimeUnixNano - 1
				resp := exportTraces(t, svc, enc, exportRequest(spans[2], bad, spans[1], backwards))
				require.NotNil(t, resp.PartialSuccess)
				assert.Equal(t, int64(2), resp.PartialSuccess.RejectedSpans)
				assert.Contains(t, resp.PartialSuccess.ErrorMessage, "2 of 4 spans rejected")
				assert.Contains(t, resp.PartialSuccess.ErrorMessage, "invalid trace id: 1")
				assert.Contains(t, resp.PartialSuccess.ErrorMessage, "ends before it starts: 1")

				var runs List[Run]
				u.do("GET", "/v1/runs", nil).json(t, &runs)
				require.Len(t, runs.Data, 1, "one run per trace")
				runID := runs.Data[0].ID
				assert.Equal(t, "running", runs.Data[0].Status, "a placeholder until the root arrives")

				// The root, and everything again: nothing twice.
				resp = exportTraces(t, svc, enc, exportRequest(spans...))
				assert.Nil(t, resp.PartialSuccess, "nothing rejected, no partial success")
				var run Run
				u.do("GET", "/v1/runs/"+runID.String()+"?include=steps,toolCalls", nil).json(t, &run)
				assert.Equal(t, "planner", run.AgentName)
				assert.Equal(t, "succeeded", run.Status)
				require.Len(t, run.Steps, 1)
				assert.Equal(t, "llm", run.Steps[0].Type)
				require.Len(t, run.ToolCalls, 1)
				assert.Equal(t, "search", run.ToolCalls[0].ToolName)
				assert.JSONEq(t, `{"q":"otlp"}`, string(run.ToolCalls[0].Arguments))
				assert.Equal(t, int64(100), *run.ToolCalls[0].DurationMs)
				assert.Contains(t, string(run.Metadata), hex.EncodeToString(trace[:]))

				var sum Data[UsageSummary]
				u.do("GET", "/v1/usage/summary?groupBy=model", nil).json(t, &sum)
				require.Len(t, sum.Data, 1, "one usage record per LLM span, once")
				assert.Equal(t, int64(120), sum.Data[0].TotalTokens)

				var audit List[AuditLog]
				u.do("GET", "/v1/audit-logs?action=trace.ingest", nil).json(t, &audit)
				assert.Len(t, audit.Data, 2, "one audit row per request that wrote to the trace")

				var names []string
				for _, e := range events.taken() {
					assert.Equal(t, tenantID, e.tenantID)
					assert.Equal(t, runID, e.runID)
					names = append(names, e.event)
				}
				assert.Equal(t, []string{realtime.EventRunCreated, realtime.EventStepAppended, realtime.EventToolCallRecorded,
					realtime.EventRunUpdated}, names)

				// A user's LLM spans are steps without usage: only service_role records usage.
				other := uuid.New()
				exportTraces(t, u, enc, exportRequest(agentSpans(other[:])...))
				u.do("GET", "/v1/usage/summary?groupBy=model", nil).json(t, &sum)
				assert.Equal(t, int64(120), sum.Data[0].TotalTokens, "no usage from the user's trace")
				u.do("GET", "/v1/runs", nil).json(t, &runs)
				assert.Len(t, runs.Data, 2)

				// Another tenant with the same trace id: its own run.
				stranger := a.user()
				exportTraces(t, stranger, enc, exportRequest(spans...))
				var theirs List[Run]
				stranger.do("GET", "/v1/runs", nil).json(t, &theirs)
				require.Len(t, theirs.Data, 1)
				assert.NotEqual(t, runID, theirs.Data[0].ID)
			})
		}
	}
}

func TestTracesRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		u := a.user()
		trace := uuid.New()
		pb, err := proto.Marshal(exportRequest(agentSpans(trace[:])...))
		require.NoError(t, err)
		post := func(contentType, encoding string, body []byte) response {
			u.header.Set("Content-Type", contentType)
			u.header.Set("Content-Encoding", encoding)
			defer u.header.Del("Content-Encoding")
			defer u.header.Del("Content-Type")
			return u.do("POST", "/v1/traces", body)
		}
		for _, c := range []struct {
			ct, ce string
			body   []byte
			status int
			code   string
		}{
			{"text/plain", "", pb, 415, CodeUnsupportedMediaType},
			{otlp.MediaTypeProtobuf, "br", pb, 415, CodeUnsupportedMediaType},
			{otlp.MediaTypeProtobuf, "gzip", pb, 400, "INVALID_ARGUMENT"},
			{otlp.MediaTypeProtobuf, "", []byte("garbage that is no protobuf"), 400, "INVALID_ARGUMENT"},
			{otlp.MediaTypeJSON, "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}`), 400, "INVALID_ARGUMENT"},
			{otlp.MediaTypeJSON, "", []byte(`nope`), 400, "INVALID_ARGUMENT"},
			{otlp.MediaTypeProtobuf, "gzip", gzipped(t, make([]byte, MaxTraceDecodedBytes+1)), 413, CodePayloadTooLarge},
			{otlp.MediaTypeProtobuf, "", make([]byte, MaxTraceBodyBytes+1), 413, CodePayloadTooLarge},
		} {
			r := post(c.ct, c.ce, c.body)
			require.Equal(t, c.status, r.status, "%s %s: %s", c.ct, c.ce, r.body)
			assert.Equal(t, c.code, r.errCode(t))
		}
		var runs List[Run]
		u.do("GET", "/v1/runs", nil).json(t, &runs)
		assert.Empty(t, runs.Data, "nothing written")
		assert.Equal(t, http.StatusOK, post(otlp.MediaTypeProtobuf, "gzip", gzipped(t, pb)).status)
		assert.Equal(t, http.StatusOK, post(otlp.MediaTypeProtobuf, "", nil).status, "an empty export stores nothing")
		u.do("GET", "/v1/runs", nil).json(t, &runs)
		assert.Len(t, runs.Data, 1)
	})
}
