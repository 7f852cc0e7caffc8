// Package otlp turns OpenTelemetry traces (OTLP/HTTP export requests) into
// agentstore's records: it decodes a request, in protobuf or OTLP JSON,
// into the official OTLP types, and maps each span, by the tables of this
// file, to a run, a step, a tool call, or a step with a usage record. It
// is pure: the store places the mapped spans into runs.
package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Target is what a span becomes.
type Target string

// The targets of the span kind table.
const (
	// TargetRun: the span is an agent run (the trace's run, or a child run
	// when it has an agent span above it).
	TargetRun Target = "run"
	// TargetToolCall: the span is a tool call of its run.
	TargetToolCall Target = "toolcall"
	// TargetLLM: the span is a step of type "llm" of its run, plus a
	// usage record.
	TargetLLM Target = "llm"
	// TargetStep: the span is a step of its run, whose type is the span's
	// operation name or kind, lower-case.
	TargetStep Target = "step"
)

// KindMapping is one row of the span kind table: a span whose
// gen_ai.operation.name is one of GenAI, or whose openinference.span.kind
// is OpenInference, becomes Target.
type KindMapping struct {
	GenAI         []string
	OpenInference string
	Target        Target
}

// Kinds is the span kind table. A span that matches no row is a step
// (TargetStep). gen_ai.operation.name is read before
// openinference.span.kind.
var Kinds = []KindMapping{
	{GenAI: []string{OpInvokeAgent}, OpenInference: KindOIAgent, Target: TargetRun},
	{GenAI: []string{OpExecuteTool}, OpenInference: KindOITool, Target: TargetToolCall},
	{GenAI: []string{OpChat, OpTextCompletion, OpGenerateContent, OpEmbeddings}, OpenInference: KindOILLM, Target: TargetLLM},
}

// FieldMapping is one row of the field table: Field of a record is the
// value of the first attribute of GenAI, then of OpenInference, that the
// span has; Else says what fills it when none does.
type FieldMapping struct {
	Field         string
	GenAI         []string
	OpenInference []string
	Else          string
}

// The fields of the field table, as the docs name them.
const (
	FieldAgentName     = "run.agentName"
	FieldUserID        = "run.userId"
	FieldModel         = "run.model, usage.model"
	FieldInputTokens   = "usage.inputTokens"
	FieldOutputTokens  = "usage.outputTokens"
	FieldToolName      = "toolCall.toolName"
	FieldToolArguments = "toolCall.arguments"
	FieldToolResult    = "toolCall.result"
	FieldInput         = "run.input, step.input"
	FieldOutput        = "run.output, step.output"
	FieldStepType      = "step.type"
	FieldError         = "error (run, step, tool call)"
)

// Fields is the field table.
var Fields = []FieldMapping{
	{Field: FieldAgentName, GenAI: []string{AttrGenAIAgentName}, OpenInference: []string{AttrOIAgentName}, Else: "the span name"},
	{Field: FieldUserID, GenAI: []string{AttrEndUserID}, OpenInference: []string{AttrOIUserID}, Else: "none (only a UUID is kept)"},
	{Field: FieldModel, GenAI: []string{AttrGenAIResponseModel, AttrGenAIRequestModel}, OpenInference: []string{AttrOILLMModelName}, Else: `"unknown" on a usage record with tokens; none on a run`},
	{Field: FieldInputTokens, GenAI: []string{AttrGenAIUsageInputTokens}, OpenInference: []string{AttrOITokenPrompt}, Else: "0"},
	{Field: FieldOutputTokens, GenAI: []string{AttrGenAIUsageOutputTokens}, OpenInference: []string{AttrOITokenCompletion}, Else: "0"},
	{Field: FieldToolName, GenAI: []string{AttrGenAIToolName}, OpenInference: []string{AttrOIToolName}, Else: "the span name"},
	{Field: FieldToolArguments, GenAI: []string{AttrGenAIToolCallArguments}, OpenInference: []string{AttrOIInputValue}, Else: "none"},
	{Field: FieldToolResult, GenAI: []string{AttrGenAIToolCallResult}, OpenInference: []string{AttrOIOutputValue}, Else: "none"},
	{Field: FieldInput, GenAI: []string{AttrGenAIInputMessages}, OpenInference: []string{AttrOIInputValue}, Else: "none"},
	{Field: FieldOutput, GenAI: []string{AttrGenAIOutputMessages}, OpenInference: []string{AttrOIOutputValue}, Else: "none"},
	{Field: FieldStepType, GenAI: []string{AttrGenAIOperationName}, OpenInference: []string{AttrOISpanKind}, Else: `the span kind ("internal", "client", …); "llm" for an LLM span`},
	{Field: FieldError, GenAI: []string{AttrErrorType}, OpenInference: nil, Else: `the span status message first; "error" when a span with status ERROR has neither`},
}

// The limits of the record fields the mapping fills, as the schema's.
const (
	maxNameLen = 200
	maxTypeLen = 100
)

// Span is a span mapped to agentstore's terms. Trace and span ids are
// lower-case hex; ParentSpanID is empty for a root span.
type Span struct {
	TraceID      string          `json:"traceId"`
	SpanID       string          `json:"spanId"`
	ParentSpanID string          `json:"parentSpanId,omitempty"`
	Target       Target          `json:"target"`
	Name         string          `json:"name"`
	StepType     string          `json:"stepType,omitempty"`
	AgentName    string          `json:"agentName,omitempty"`
	ToolName     string          `json:"toolName,omitempty"`
	Model        string          `json:"model,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	Output       json.RawMessage `json:"output,omitempty"`
	InputTokens  int64           `json:"inputTokens,omitempty"`
	OutputTokens int64           `json:"outputTokens,omitempty"`
	UserID       *uuid.UUID      `json:"userId,omitempty"`
	ServiceName  string          `json:"serviceName,omitempty"`
	Start        time.Time       `json:"start"`
	End          time.Time       `json:"end"`
	Failed       bool            `json:"failed,omitempty"`
	Error        string          `json:"error,omitempty"`
}

// Rejection is a span that cannot be stored, and why.
type Rejection struct {
	TraceID string `json:"traceId"`
	SpanID  string `json:"spanId"`
	Reason  string `json:"reason"`
}

// Mapped is what Map made of a request.
type Mapped struct {
	Spans    []Span      `json:"spans"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

// Map maps every span of req, in order; the spans that cannot be stored
// (without a valid trace or span id, without a start, ending before they
// start, or with a negative token count) are rejected with a reason.
func Map(req *coltracepb.ExportTraceServiceRequest) Mapped {
	var out Mapped
	for _, rs := range req.GetResourceSpans() {
		service := ""
		if v := find(rs.GetResource().GetAttributes(), AttrServiceName); v != nil {
			service = clip(text(v), maxNameLen)
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s, reason := mapSpan(sp)
				if reason != "" {
					out.Rejected = append(out.Rejected, Rejection{
						TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()), Reason: reason,
					})
					continue
				}
				s.ServiceName = service
				out.Spans = append(out.Spans, s)
			}
		}
	}
	return out
}

// mapSpan maps one span, or says why it cannot be stored.
func mapSpan(sp *tracepb.Span) (Span, string) {
	switch {
	case len(sp.GetTraceId()) != 16 || allZero(sp.GetTraceId()):
		return Span{}, "invalid trace id"
	case len(sp.GetSpanId()) != 8 || allZero(sp.GetSpanId()):
		return Span{}, "invalid span id"
	case len(sp.GetParentSpanId()) != 0 && len(sp.GetParentSpanId()) != 8:
		return Span{}, "invalid parent span id"
	case sp.GetStartTimeUnixNano() == 0:
		return Span{}, "no start time"
	case sp.GetEndTimeUnixNano() < sp.GetStartTimeUnixNano():
		return Span{}, "ends before it starts"
	case sp.GetStartTimeUnixNano() > math.MaxInt64 || sp.GetEndTimeUnixNano() > math.MaxInt64:
		return Span{}, "time out of range"
	}
	attrs := sp.GetAttributes()
	s := Span{
		TraceID: hex.EncodeToString(sp.GetTraceId()),
		SpanID:  hex.EncodeToString(sp.GetSpanId()),
		Name:    clip(sp.GetName(), maxNameLen),
		Start:   time.Unix(0, int64(sp.GetStartTimeUnixNano())).UTC(),
		End:     time.Unix(0, int64(sp.GetEndTimeUnixNano())).UTC(),
		Target:  TargetStep,
	}
	if s.Name == "" {
		s.Name = "span"
	}
	if p := sp.GetParentSpanId(); len(p) == 8 && !allZero(p) {
		s.ParentSpanID = hex.EncodeToString(p)
	}
	op := lookup(attrs, FieldStepType)
	s.Target = targetOf(attrs)
	switch s.Target {
	case TargetLLM:
		s.StepType = "llm"
	case TargetStep:
		s.StepType = strings.ToLower(text(op))
		if s.StepType == "" {
			s.StepType = strings.ToLower(strings.TrimPrefix(sp.GetKind().String(), "SPAN_KIND_"))
		}
		s.StepType = clip(s.StepType, maxTypeLen)
	}
	if sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		s.Failed = true
		s.Error = sp.GetStatus().GetMessage()
		if s.Error == "" {
			s.Error = text(lookup(attrs, FieldError))
		}
		if s.Error == "" {
			s.Error = "error"
		}
	}
	if v := lookup(attrs, FieldModel); v != nil {
		s.Model = clip(text(v), maxNameLen)
	}
	if v := lookup(attrs, FieldUserID); v != nil {
		if id, err := uuid.Parse(text(v)); err == nil {
			s.UserID = &id
		}
	}
	switch s.Target {
	case TargetRun:
		s.AgentName = clip(text(lookup(attrs, FieldAgentName)), maxNameLen)
		if s.AgentName == "" {
			s.AgentName = s.Name
		}
		s.Input, s.Output = jsonOf(lookup(attrs, FieldInput)), jsonOf(lookup(attrs, FieldOutput))
	case TargetToolCall:
		s.ToolName = clip(text(lookup(attrs, FieldToolName)), maxNameLen)
		if s.ToolName == "" {
			s.ToolName = s.Name
		}
		s.Input, s.Output = jsonOf(lookup(attrs, FieldToolArguments)), jsonOf(lookup(attrs, FieldToolResult))
	default:
		s.Input, s.Output = jsonOf(lookup(attrs, FieldInput)), jsonOf(lookup(attrs, FieldOutput))
	}
	if s.Target == TargetLLM {
		var ok bool
		if s.InputTokens, ok = count(lookup(attrs, FieldInputTokens)); !ok {
			return Span{}, "negative or malformed input token count"
		}
		if s.OutputTokens, ok = count(lookup(attrs, FieldOutputTokens)); !ok {
			return Span{}, "negative or malformed output token count"
		}
	}
	return s, ""
}

// targetOf reads the span kind table.
func targetOf(attrs []*commonpb.KeyValue) Target {
	if v := find(attrs, AttrGenAIOperationName); v != nil {
		op := text(v)
		for _, k := range Kinds {
			for _, g := range k.GenAI {
				if op == g {
					return k.Target
				}
			}
		}
		return TargetStep
	}
	if v := find(attrs, AttrOISpanKind); v != nil {
		kind := strings.ToUpper(text(v))
		for _, k := range Kinds {
			if kind == k.OpenInference {
				return k.Target
			}
		}
	}
	return TargetStep
}

// fieldsByName indexes Fields.
var fieldsByName = func() map[string]FieldMapping {
	m := map[string]FieldMapping{}
	for _, f := range Fields {
		m[f.Field] = f
	}
	return m
}()

// lookup returns the value of field by the field table, or nil.
func lookup(attrs []*commonpb.KeyValue, field string) *commonpb.AnyValue {
	f, ok := fieldsByName[field]
	if !ok {
		panic("otlp: no field " + field)
	}
	for _, names := range [][]string{f.GenAI, f.OpenInference} {
		for _, name := range names {
			if v := find(attrs, name); v != nil {
				return v
			}
		}
	}
	return nil
}

// find returns the value of the attribute key, or nil.
func find(attrs []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for _, kv := range attrs {
		if kv.GetKey() == key && kv.GetValue() != nil && kv.GetValue().GetValue() != nil {
			return kv.GetValue()
		}
	}
	return nil
}

// text is a value as a string: a string as it is, a scalar formatted, a
// composite as JSON.
func text(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case nil:
		return ""
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return string(jsonOf(v))
}

// jsonOf is a value as a JSON document: a string that holds a JSON object
// or array is that document (the conventions carry messages and tool
// arguments as JSON strings), any other string a JSON string; arrays and
// key-value lists become arrays and objects; bytes a base64 string. nil
// for no value.
func jsonOf(v *commonpb.AnyValue) json.RawMessage {
	if v == nil || v.GetValue() == nil {
		return nil
	}
	b, _ := json.Marshal(plain(v))
	if s, ok := v.GetValue().(*commonpb.AnyValue_StringValue); ok {
		t := strings.TrimSpace(s.StringValue)
		if (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) && json.Valid([]byte(t)) {
			return json.RawMessage(t)
		}
	}
	return b
}

// plain converts a value to what encoding/json writes.
func plain(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return fmt.Sprint(x.DoubleValue)
		}
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, plain(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := map[string]any{}
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = plain(kv.GetValue())
		}
		return out
	}
	return nil
}

// count reads a token count: an integer, an integral double or a decimal
// string; absent is 0. ok is false for a negative or malformed count.
func count(v *commonpb.AnyValue) (n int64, ok bool) {
	switch x := v.GetValue().(type) {
	case nil:
		return 0, true
	case *commonpb.AnyValue_IntValue:
		n = x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		if x.DoubleValue != math.Trunc(x.DoubleValue) || math.Abs(x.DoubleValue) > 1<<53 {
			return 0, false
		}
		n = int64(x.DoubleValue)
	case *commonpb.AnyValue_StringValue:
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(x.StringValue), 10, 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return n, n >= 0
}

// clip cuts s to at most n characters, and makes it valid UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
