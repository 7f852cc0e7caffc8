package httpapi

import (
	"errors"
	"testing"

	"github.com/agentstore/agentstore/internal/derrors"
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
