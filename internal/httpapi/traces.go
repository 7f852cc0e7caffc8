package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/agentstore/agentstore/internal/otlp"
	"github.com/agentstore/agentstore/internal/realtime"
	"github.com/agentstore/agentstore/internal/tenant"
)

// POST /v1/traces is OTLP/HTTP's trace export: the spans of an
// ExportTraceServiceRequest, in protobuf or OTLP JSON and optionally
// gzipped, become runs, steps, tool calls and usage (package otlp maps
// them, Store.Traces places them), in one transaction; the answer is an
// ExportTraceServiceResponse in the request's encoding, whose
// partialSuccess counts and explains the spans rejected.

const (
	// MaxTraceBodyBytes is the largest POST /v1/traces body, as sent.
	MaxTraceBodyBytes = 20 << 20
	// MaxTraceDecodedBytes is the largest POST /v1/traces body once
	// decompressed.
	MaxTraceDecodedBytes = 20 << 20
)

func (h *handlers) traces(c echo.Context) error {
	enc, err := otlp.EncodingOf(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil {
		return fmt.Errorf("%w: Content-Type must be %s or %s", errUnsupportedMediaType, otlp.MediaTypeProtobuf, otlp.MediaTypeJSON)
	}
	body, err := readBodyMax(c, MaxTraceBodyBytes)
	if err != nil {
		return err
	}
	req, err := otlp.Decode(body, enc, c.Request().Header.Get(echo.HeaderContentEncoding), MaxTraceDecodedBytes)
	switch {
	case errors.Is(err, otlp.ErrTooLarge):
		return fmt.Errorf("%w: the decompressed body exceeds %d bytes", errPayloadTooLarge, MaxTraceDecodedBytes)
	case errors.Is(err, otlp.ErrUnsupportedMediaType):
		return fmt.Errorf("%w: Content-Encoding must be gzip or none", errUnsupportedMediaType)
	case err != nil:
		return err
	}
	mapped := otlp.Map(req)
	ctx := c.Request().Context()
	if len(mapped.Spans) > 0 {
		v, _ := tenant.FromContext(ctx)
		w, err := h.st.Traces.Write(ctx, mapped.Spans, RoleAllowed("recordUsage", v.Role))
		if err != nil {
			return err
		}
		for _, r := range w.CreatedRuns {
			b, err := json.Marshal(toRun(r))
			if err != nil {
				return err
			}
			h.publish(ctx, r.ID, realtime.EventRunCreated, json.RawMessage(b))
		}
		for _, r := range w.UpdatedRuns {
			b, err := json.Marshal(toRun(r))
			if err != nil {
				return err
			}
			h.publish(ctx, r.ID, realtime.EventRunUpdated, json.RawMessage(b))
		}
		for _, s := range w.Steps {
			h.publish(ctx, s.RunID, realtime.EventStepAppended, toStep(s))
		}
		for _, tc := range w.ToolCalls {
			h.publish(ctx, tc.RunID, realtime.EventToolCallRecorded, toToolCall(tc))
		}
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if len(mapped.Rejected) > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{
			RejectedSpans: int64(len(mapped.Rejected)),
			ErrorMessage:  rejectionMessage(mapped.Rejected, len(mapped.Rejected)+len(mapped.Spans)),
		}
	}
	out, err := otlp.EncodeResponse(resp, enc)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, enc.ContentType(), out)
}

// rejectionMessage explains the rejected spans: how many of all, and
// each reason with its count and one span it applies to.
func rejectionMessage(rejected []otlp.Rejection, total int) string {
	type reason struct {
		n       int
		example otlp.Rejection
	}
	byReason := map[string]*reason{}
	var order []string
	for _, r := range rejected {
		if byReason[r.Reason] == nil {
			byReason[r.Reason] = &reason{example: r}
			order = append(order, r.Reason)
		}
		byReason[r.Reason].n++
	}
	sort.SliceStable(order, func(i, j int) bool { return byReason[order[i]].n > byReason[order[j]].n })
	parts := make([]string, len(order))
	for i, name := range order {
		r := byReason[name]
		parts[i] = fmt.Sprintf("%s: %d (e.g. trace %q span %q)", name, r.n, r.example.TraceID, r.example.SpanID)
	}
	return fmt.Sprintf("%d of %d spans rejected; %s", len(rejected), total, strings.Join(parts, "; "))
}
