package httpapi

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// FuzzDecodeCreateRun feeds arbitrary bodies to the strict decoder and the
// conversion to the store's input: it must never panic, and every failure
// must be a client error, never an internal one.
func FuzzDecodeCreateRun(f *testing.F) {
	for _, seed := range []string{
		`{"agentName":"a"}`,
		`{"agentName":"a","status":"running","steps":[{"type":"llm","seq":1}],"toolCalls":[{"toolName":"t","status":"failed"}]}`,
		`{"agentName":"a","parentRunId":"00000000-0000-0000-0000-000000000000"}`,
		`{"agentName":5}`, `{"x":1}`, `[]`, `null`, `{"steps":[null]}`, `{"input":{"deep":[1,2,{"a":null}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req CreateRunRequest
		err := decodeStrict(body, &req)
		if err == nil {
			_, err = req.toStore()
		}
		if err != nil && !errors.Is(err, derrors.InvalidArgument) {
			t.Fatalf("decode(%q) = %v, not an InvalidArgument", body, err)
		}
	})
}

// FuzzDecodeIngestItem feeds arbitrary items to the decoder of
// POST /v1/ingest: it must never panic, and every refusal must be a client
// error, never an internal one.
func FuzzDecodeIngestItem(f *testing.F) {
	for _, seed := range []string{
		`{"id":"e1","type":"run.create","body":{"agentName":"a"}}`,
		`{"id":"e2","type":"step.append","runId":"00000000-0000-0000-0000-000000000001","body":{"steps":[{"type":"llm"}]}}`,
		`{"id":"e3","type":"toolcall.record","runId":"00000000-0000-0000-0000-000000000001","body":{"toolName":"t","status":"failed"}}`,
		`{"id":"e4","type":"usage.record","runId":"00000000-0000-0000-0000-000000000001","body":{"model":"m","runId":"00000000-0000-0000-0000-000000000002"}}`,
		`{"id":"e5","type":"run.update","runId":"x","body":{}}`, `{"id":5}`, `[]`, `null`, `{"id":" e","type":"run.create","body":{}}`,
	} {
		f.Add([]byte(seed))
	}
	h := &handlers{}
	svc := tenant.Viewer{TenantID: uuid.New(), Role: tenant.RoleServiceRole}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, op, err := h.prepareItem(raw, svc)
		if err != nil && !errors.Is(err, derrors.InvalidArgument) {
			t.Fatalf("prepareItem(%q) = %v, not an InvalidArgument", raw, err)
		}
		if err == nil && op == nil {
			t.Fatalf("prepareItem(%q) accepted the item without an operation", raw)
		}
	})
}
