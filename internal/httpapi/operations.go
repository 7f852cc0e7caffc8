package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/realtime"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// The write operations, one function each, shared by their REST routes and
// the items of POST /v1/ingest: both decode a body into the same request
// type and call the same function, so validation, audit rows (written by
// the store in the write's transaction) and realtime events are the same
// whichever way a write arrives. An operation publishes nothing itself: it
// returns its events, and the caller publishes them once the transaction
// that holds the write has committed (an ingest item's transaction also
// stores the item's result).

// outcome is what a write operation did.
type outcome struct {
	// status is the HTTP status its REST route answers.
	status int
	// resourceID is the id of the run, step, tool call or usage record
	// written (of the first one, for a batch of steps or tool calls).
	resourceID uuid.UUID
	// body is the JSON its REST route answers.
	body []byte
	// events are the realtime events to publish after commit.
	events []event
	// replayed is set when an Idempotency-Key replayed a stored response.
	replayed bool
}

// event is one realtime event of an outcome.
type event struct {
	runID uuid.UUID
	name  string
	data  any
}

// publishAll publishes the events of a committed write.
func (h *handlers) publishAll(ctx context.Context, events []event) {
	for _, e := range events {
		h.publish(ctx, e.runID, e.name, e.data)
	}
}

// createRun creates the run req describes, with its steps and tool calls.
// With an idempotency key (and the digest of the request that carried it)
// the run is created at most once per tenant and key, and a replay returns
// the stored outcome, with no event.
func (h *handlers) createRun(ctx context.Context, req CreateRunRequest, key, requestHash string) (outcome, error) {
	in, err := req.toStore()
	if err != nil {
		return outcome{}, err
	}
	if in.UserID == nil {
		v, _ := tenant.FromContext(ctx)
		if u, err := uuid.Parse(v.UserID); err == nil {
			in.UserID = &u
		}
	}
	// The created run is encoded once, for the response, the stored
	// response of an idempotent create and the realtime event alike.
	encode := func(run *ent.AgentRun) (store.Response, error) {
		b, err := json.Marshal(toRun(run))
		return store.Response{Status: http.StatusCreated, Body: b}, err
	}
	var resp store.Response
	var run *ent.AgentRun
	if key == "" {
		if run, err = h.st.Runs.Create(ctx, in); err != nil {
			return outcome{}, err
		}
		if resp, err = encode(run); err != nil {
			return outcome{}, err
		}
	} else if resp, run, err = h.st.Runs.CreateIdempotent(ctx, in, key, requestHash, encode); err != nil {
		return outcome{}, err
	}
	out := outcome{status: resp.Status, body: resp.Body}
	if run == nil { // the stored response of an earlier request
		out.replayed = true
		var stored struct {
			ID uuid.UUID `json:"id"`
		}
		_ = json.Unmarshal(resp.Body, &stored)
		out.resourceID = stored.ID
		return out, nil
	}
	out.resourceID = run.ID
	out.events = []event{{run.ID, realtime.EventRunCreated, json.RawMessage(resp.Body)}}
	return out, nil
}

// updateRun applies req to the run id.
func (h *handlers) updateRun(ctx context.Context, id uuid.UUID, req PatchRunRequest) (outcome, error) {
	run, err := h.st.Runs.Update(ctx, id, store.RunPatch{
		Status: req.Status, Output: req.Output, Error: req.Error, Metadata: req.Metadata, EndedAt: req.EndedAt,
	})
	if err != nil {
		return outcome{}, err
	}
	b, err := json.Marshal(toRun(run))
	if err != nil {
		return outcome{}, err
	}
	return outcome{
		status: http.StatusOK, resourceID: run.ID, body: b,
		events: []event{{run.ID, realtime.EventRunUpdated, json.RawMessage(b)}},
	}, nil
}

// appendSteps appends reqs to the run id; batch says the body was the
// batch form, which the response keeps.
func (h *handlers) appendSteps(ctx context.Context, id uuid.UUID, reqs []StepRequest, batch bool) (outcome, error) {
	var missing required
	in := stepsToStore(reqs, "steps", &missing)
	if err := missing.err(); err != nil {
		return outcome{}, asWritten(err, "steps", batch)
	}
	steps, err := h.st.Runs.AppendSteps(ctx, id, in)
	if err != nil {
		return outcome{}, asWritten(err, "steps", batch)
	}
	out := mapSlice(steps, toStep)
	o, err := oneOrBatch(out, batch)
	if err != nil {
		return outcome{}, err
	}
	o.resourceID = out[0].ID
	for _, s := range out {
		o.events = append(o.events, event{id, realtime.EventStepAppended, s})
	}
	return o, nil
}

// recordToolCalls records reqs for the run id; batch as for appendSteps.
func (h *handlers) recordToolCalls(ctx context.Context, id uuid.UUID, reqs []ToolCallRequest, batch bool) (outcome, error) {
	var missing required
	in := toolCallsToStore(reqs, "toolCalls", &missing)
	if err := missing.err(); err != nil {
		return outcome{}, asWritten(err, "toolCalls", batch)
	}
	calls, err := h.st.Runs.AppendToolCalls(ctx, id, in)
	if err != nil {
		return outcome{}, asWritten(err, "toolCalls", batch)
	}
	out := mapSlice(calls, toToolCall)
	o, err := oneOrBatch(out, batch)
	if err != nil {
		return outcome{}, err
	}
	o.resourceID = out[0].ID
	for _, tc := range out {
		o.events = append(o.events, event{id, realtime.EventToolCallRecorded, tc})
	}
	return o, nil
}

// oneOrBatch is the 201 of an append in the form it was asked in.
func oneOrBatch[T any](out []T, batch bool) (outcome, error) {
	var v any = Data[T]{Data: out}
	if !batch {
		v = out[0]
	}
	b, err := json.Marshal(v)
	return outcome{status: http.StatusCreated, body: b}, err
}

// recordUsage records the usage req describes.
func (h *handlers) recordUsage(ctx context.Context, req UsageRequest) (outcome, error) {
	var missing required
	missing.check(req.Model != "", "model")
	if err := missing.err(); err != nil {
		return outcome{}, err
	}
	u, err := h.st.Usage.Record(ctx, store.NewUsage{
		ID: uuidPtr(req.ID), RunID: uuidPtr(req.RunID), Model: req.Model, InputTokens: req.InputTokens,
		OutputTokens: req.OutputTokens, CachedInputTokens: req.CachedInputTokens, TotalTokens: req.TotalTokens,
		CostUSD: req.CostUSD, RecordedAt: req.RecordedAt,
	})
	if err != nil {
		return outcome{}, err
	}
	b, err := json.Marshal(toUsage(u))
	return outcome{status: http.StatusCreated, resourceID: u.ID, body: b}, err
}
