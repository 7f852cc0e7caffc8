package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// TestOpenTelemetrySDKExportsToTheBinary points the OpenTelemetry Go SDK's
// OTLP/HTTP exporter at the built binary, on SQLite and on PostgreSQL, in
// protobuf (gzipped) and in JSON, exports a multi-span agent trace in
// batches of two spans (so children arrive before their parents, in
// several requests), exports it again, and reads it back through REST.
func TestOpenTelemetrySDKExportsToTheBinary(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := []string{"SUPABASE_JWT_SECRET=" + e2eSecret}
			if backend == "postgres" {
				env = append(env, "DATABASE_URL="+dbtest.NewDatabase(t))
				out, err := command(t, env, "migrate", "apply")
				require.NoError(t, err, out)
			}
			s := start(t, env...)
			tenantID := uuid.NewString()
			svc, err := command(t, env, "token", "--tenant", tenantID, "--role", "service_role", "--sub", "exporter", "--ttl", "10m")
			require.NoError(t, err, svc)
			user := mint(t, tenantID)
			for _, enc := range []otlptracehttp.Encoding{otlptracehttp.EncodingProtobuf, otlptracehttp.EncodingJSON} {
				name := map[otlptracehttp.Encoding]string{otlptracehttp.EncodingProtobuf: "protobuf", otlptracehttp.EncodingJSON: "json"}[enc]
				t.Run(name, func(t *testing.T) {
					traceID := exportAgentTrace(t, s.base, svc[:len(svc)-1], tenantID, enc)
					checkAgentTrace(t, s, user, traceID)
				})
			}
			code, body := s.get(t, "/metrics")
			require.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, `agentstore_http_requests_total{method="POST",route="/v1/traces",status="200"}`)
		})
	}
}

// exportAgentTrace records an agent trace with the SDK and exports it
// twice through the exporter; it returns the trace id.
func exportAgentTrace(t *testing.T, base, token, tenantID string, enc otlptracehttp.Encoding) trace.TraceID {
	ctx := context.Background()
	var traceID trace.TraceID
	for range 2 { // the second export repeats the spans: nothing is written twice
		exp, err := otlptracehttp.New(ctx,
			otlptracehttp.WithEndpointURL(base+"/v1/traces"),
			otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token, "X-Tenant-ID": tenantID}),
			otlptracehttp.WithEncoding(enc),
			otlptracehttp.WithCompression(map[bool]otlptracehttp.Compression{true: otlptracehttp.GzipCompression}[enc == otlptracehttp.EncodingProtobuf]),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		)
		require.NoError(t, err)
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(2), sdktrace.WithBatchTimeout(50*time.Millisecond)),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "e2e-agent"))),
			sdktrace.WithIDGenerator(fixedIDs(&traceID)),
		)
		tr := tp.Tracer("agentstore-e2e")
		ctx, root := tr.Start(ctx, "invoke_agent planner", trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.name", "planner"),
			attribute.String("gen_ai.request.model", "gpt-4o")))
		_, chat := tr.Start(ctx, "chat gpt-4o", trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.response.model", "gpt-4o"),
			attribute.Int("gen_ai.usage.input_tokens", 200), attribute.Int("gen_ai.usage.output_tokens", 50)))
		time.Sleep(2 * time.Millisecond)
		chat.End()
		_, tool := tr.Start(ctx, "execute_tool search", trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", "search"),
			attribute.String("gen_ai.tool.call.arguments", `{"q":"weather"}`)))
		tool.SetStatus(codes.Error, "search backend down")
		tool.End()
		nctx, nested := tr.Start(ctx, "invoke_agent booker", trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.name", "booker")))
		_, inner := tr.Start(nctx, "chat llama", trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.request.model", "llama-3"),
			attribute.Int("gen_ai.usage.input_tokens", 10)))
		inner.End()
		nested.End()
		_, retrieve := tr.Start(ctx, "retrieve", trace.WithAttributes(attribute.String("openinference.span.kind", "RETRIEVER")))
		retrieve.End()
		root.End()
		require.NoError(t, tp.Shutdown(ctx), "every export succeeded")
	}
	return traceID
}

// fixedIDs generates the same trace and span ids on every pass, as a
// re-export of the same spans would carry them.
func fixedIDs(traceID *trace.TraceID) sdktrace.IDGenerator {
	if *traceID == (trace.TraceID{}) {
		u := uuid.New()
		copy(traceID[:], u[:])
	}
	return &idGen{trace: *traceID}
}

type idGen struct {
	trace trace.TraceID
	n     byte
}

func (g *idGen) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	g.n++
	return g.trace, trace.SpanID{0, 0, 0, 0, 0, 0, 1, g.n}
}

func (g *idGen) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	g.n++
	return trace.SpanID{0, 0, 0, 0, 0, 0, 1, g.n}
}

// checkAgentTrace reads the trace back through REST as the tenant's user.
func checkAgentTrace(t *testing.T, s *server, token string, traceID trace.TraceID) {
	type step struct {
		Seq  int    `json:"seq"`
		Type string `json:"type"`
		Name string `json:"name"`
	}
	type run struct {
		ID          string          `json:"id"`
		AgentName   string          `json:"agentName"`
		Status      string          `json:"status"`
		ParentRunID *string         `json:"parentRunId"`
		Metadata    json.RawMessage `json:"metadata"`
		Steps       []step          `json:"steps"`
		ToolCalls   []struct {
			ToolName  string          `json:"toolName"`
			Status    string          `json:"status"`
			Error     string          `json:"error"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"toolCalls"`
	}
	code, body := s.call(t, "GET", "/v1/runs?agentName=planner&limit=200", token, "")
	require.Equal(t, http.StatusOK, code, body)
	var list struct{ Data []run }
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	var root *run
	for i, r := range list.Data {
		if strings.Contains(string(r.Metadata), traceID.String()) {
			root = &list.Data[i]
		}
	}
	require.NotNil(t, root, "the trace's run: %s", body)
	code, body = s.call(t, "GET", "/v1/runs/"+root.ID+"?include=steps,toolCalls", token, "")
	require.Equal(t, http.StatusOK, code, body)
	var full run
	require.NoError(t, json.Unmarshal([]byte(body), &full))
	assert.Equal(t, "succeeded", full.Status)
	require.Len(t, full.Steps, 2, "once each: %s", body)
	assert.Equal(t, []step{{1, "llm", "chat gpt-4o"}, {2, "retriever", "retrieve"}}, full.Steps, "ordered by start")
	require.Len(t, full.ToolCalls, 1)
	assert.Equal(t, "failed", full.ToolCalls[0].Status)
	assert.Equal(t, "search backend down", full.ToolCalls[0].Error)
	assert.JSONEq(t, `{"q":"weather"}`, string(full.ToolCalls[0].Arguments))

	code, body = s.call(t, "GET", "/v1/runs?agentName=booker&limit=200", token, "")
	require.Equal(t, http.StatusOK, code, body)
	var children struct{ Data []run }
	require.NoError(t, json.Unmarshal([]byte(body), &children))
	var child *run
	for i, c := range children.Data {
		if c.ParentRunID != nil && *c.ParentRunID == root.ID {
			child = &children.Data[i]
		}
	}
	require.NotNil(t, child, "the nested agent is a child run: %s", body)
	code, body = s.call(t, "GET", "/v1/runs/"+child.ID+"/steps", token, "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"name":"chat llama"`)
	code, body = s.call(t, "GET", "/v1/audit-logs?action=trace.ingest&resourceId="+root.ID, token, "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, fmt.Sprintf(`"resourceId":"%s"`, root.ID))
}
