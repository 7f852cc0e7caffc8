package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// POST /v1/ingest applies a batch of writes, each the body of a REST write
// route, in order and each in its own transaction, and answers 207 with a
// result per item.

const (
	// MaxIngestItems is the most items one POST /v1/ingest may carry.
	MaxIngestItems = 1000
	// MaxIngestBytes is the largest POST /v1/ingest body.
	MaxIngestBytes = 5 << 20
	// ingestScope is the scope of the stored results of ingest items,
	// whose keys are the items' event ids.
	ingestScope = "POST /v1/ingest"
)

// The item types of POST /v1/ingest, each a REST write route.
const (
	ingestRunCreate      = "run.create"      // POST /v1/runs
	ingestRunUpdate      = "run.update"      // PATCH /v1/runs/{id}
	ingestStepAppend     = "step.append"     // POST /v1/runs/{id}/steps
	ingestToolCallRecord = "toolcall.record" // POST /v1/runs/{id}/tool-calls
	ingestUsageRecord    = "usage.record"    // POST /v1/usage
)

// ingestTypes are the item types, in the order the document lists them.
var ingestTypes = []string{ingestRunCreate, ingestRunUpdate, ingestStepAppend, ingestToolCallRecord, ingestUsageRecord}

// ingestOperations names the REST operation (its operationId in the role
// table) each item type performs: an item may be written by exactly the
// roles that may call its route.
var ingestOperations = map[string]string{
	ingestRunCreate:      "createRun",
	ingestRunUpdate:      "updateRun",
	ingestStepAppend:     "appendSteps",
	ingestToolCallRecord: "appendToolCalls",
	ingestUsageRecord:    "recordUsage",
}

// IngestRequest is the body of POST /v1/ingest. Its items are decoded one
// by one, so that a bad item fails alone.
type IngestRequest struct {
	Batch []json.RawMessage `json:"batch"`
}

// IngestItem is one write of a batch.
type IngestItem struct {
	// ID is the client's event id: the same id again within 24 hours is a
	// replay of the item.
	ID string `json:"id"`
	// Type names the write (ingestTypes).
	Type string `json:"type"`
	// RunID is the run the write is to, for run.update, step.append and
	// toolcall.record (the {id} of their routes).
	RunID *ID `json:"runId"`
	// Body is the body of the item's REST route.
	Body json.RawMessage `json:"body"`
}

// IngestResult is the outcome of one item.
type IngestResult struct {
	Index      int        `json:"index"`
	ID         string     `json:"id"`
	Status     int        `json:"status"`
	Code       string     `json:"code,omitempty"`
	Message    string     `json:"message,omitempty"`
	ResourceID *uuid.UUID `json:"resourceId,omitempty"`
}

// IngestResponse is the 207 body of POST /v1/ingest.
type IngestResponse struct {
	Results []IngestResult `json:"results"`
}

func (h *handlers) ingest(c echo.Context) error {
	body, err := readBodyMax(c, MaxIngestBytes)
	if err != nil {
		return err
	}
	var req IngestRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	switch {
	case req.Batch == nil:
		return derrors.Field("batch", "is required")
	case len(req.Batch) == 0:
		return derrors.Field("batch", "must not be empty")
	case len(req.Batch) > MaxIngestItems:
		return derrors.Field("batch", "holds %d items, more than %d", len(req.Batch), MaxIngestItems)
	}
	ctx := c.Request().Context()
	v, _ := tenant.FromContext(ctx)
	results := make([]IngestResult, len(req.Batch))
	// Items that decode and may be written go to the store, in order;
	// the others have their result already.
	var once []store.OnceItem
	var at []int
	events := make([][]event, len(req.Batch))
	for i, raw := range req.Batch {
		results[i] = IngestResult{Index: i}
		item, op, err := h.prepareItem(raw, v)
		results[i].ID = item.ID
		if err != nil {
			results[i].fail(err)
			continue
		}
		once = append(once, store.OnceItem{Key: item.ID, Hash: itemHash(item), Run: func(ctx context.Context) (store.Response, error) {
			o, err := op(ctx)
			if err != nil {
				return store.Response{}, err
			}
			events[i] = o.events
			return store.Response{Status: o.status, Body: []byte(o.resourceID.String())}, nil
		}})
		at = append(at, i)
	}
	if len(once) > 0 {
		done, err := h.st.Once(ctx, ingestScope, once)
		if err != nil {
			return err
		}
		for j, r := range done {
			i := at[j]
			if r.Err != nil {
				results[i].fail(r.Err)
				if results[i].Status >= http.StatusInternalServerError {
					h.log.ErrorContext(ctx, "ingest item failed", "request_id", requestID(c),
						"tenant_id", v.TenantID.String(), "index", i, "status", results[i].Status, "err", r.Err)
				}
				continue
			}
			results[i].Status = r.Response.Status
			if id, err := uuid.ParseBytes(r.Response.Body); err == nil {
				results[i].ResourceID = &id
			}
			if !r.Replayed {
				h.publishAll(ctx, events[i])
			}
		}
	}
	return c.JSON(http.StatusMultiStatus, IngestResponse{Results: results})
}

// fail records err as the item's result: the status and code its REST
// route would have answered.
func (r *IngestResult) fail(err error) {
	r.Status, r.Code, r.Message = http.StatusInternalServerError, derrors.CodeInternal, "internal error"
	if derrors.Category(err) == nil && !errors.Is(err, errPayloadTooLarge) {
		return
	}
	for _, m := range statusOf {
		if errors.Is(err, m.category) {
			r.Status, r.Code = m.status, codeOf(m.category)
			break
		}
	}
	r.Message = err.Error()
	var de *derrors.Error
	if errors.As(err, &de) {
		r.Message = de.Message
	}
}

// prepareItem decodes one item and its body, checks the viewer may write
// it, and returns the operation that writes it.
func (h *handlers) prepareItem(raw json.RawMessage, v tenant.Viewer) (IngestItem, func(context.Context) (outcome, error), error) {
	var item IngestItem
	if err := decodeStrict(raw, &item); err != nil {
		// Keep the id for the result when the item has a readable one.
		var probe struct{ ID any }
		if json.Unmarshal(raw, &probe) == nil {
			if s, ok := probe.ID.(string); ok {
				item.ID = s
			}
		}
		return item, nil, err
	}
	var missing required
	missing.check(item.ID != "", "id")
	missing.check(item.Type != "", "type")
	missing.check(len(item.Body) > 0, "body")
	if err := missing.err(); err != nil {
		return item, nil, err
	}
	if len(item.ID) > 255 || strings.TrimSpace(item.ID) != item.ID {
		return item, nil, derrors.Field("id", "must be 1 to 255 characters without surrounding spaces")
	}
	needsRun := item.Type == ingestRunUpdate || item.Type == ingestStepAppend || item.Type == ingestToolCallRecord
	var runID uuid.UUID
	switch {
	case !isIngestType(item.Type):
		return item, nil, derrors.Field("type", "must be one of %s", strings.Join(ingestTypes, ", "))
	case needsRun && item.RunID == nil:
		return item, nil, derrors.Field("runId", "is required for %s", item.Type)
	case needsRun:
		runID = uuid.UUID(*item.RunID)
	}
	if op := ingestOperations[item.Type]; !RoleAllowed(op, v.Role) {
		return item, nil, derrors.New(derrors.Forbidden, "a token with role %q may not write %s items; they are for %s",
			v.Role, item.Type, strings.Join(accessOf(op).roles, " or "))
	}
	switch item.Type {
	case ingestRunCreate:
		var req CreateRunRequest
		if err := decodeStrict(item.Body, &req); err != nil {
			return item, nil, err
		}
		if err := sameID("id", &req.ID, item.RunID); err != nil {
			return item, nil, err
		}
		return item, func(ctx context.Context) (outcome, error) { return h.createRun(ctx, req, "", "") }, nil
	case ingestRunUpdate:
		var req PatchRunRequest
		if err := decodeStrict(item.Body, &req); err != nil {
			return item, nil, err
		}
		return item, func(ctx context.Context) (outcome, error) { return h.updateRun(ctx, runID, req) }, nil
	case ingestStepAppend:
		reqs, batch, err := decodeOneOrBatch[StepRequest](item.Body, "steps")
		if err != nil {
			return item, nil, err
		}
		return item, func(ctx context.Context) (outcome, error) { return h.appendSteps(ctx, runID, reqs, batch) }, nil
	case ingestToolCallRecord:
		reqs, batch, err := decodeOneOrBatch[ToolCallRequest](item.Body, "toolCalls")
		if err != nil {
			return item, nil, err
		}
		return item, func(ctx context.Context) (outcome, error) { return h.recordToolCalls(ctx, runID, reqs, batch) }, nil
	default: // ingestUsageRecord
		var req UsageRequest
		if err := decodeStrict(item.Body, &req); err != nil {
			return item, nil, err
		}
		if err := sameID("runId", &req.RunID, item.RunID); err != nil {
			return item, nil, err
		}
		return item, func(ctx context.Context) (outcome, error) { return h.recordUsage(ctx, req) }, nil
	}
}

// sameID fills the body's field from the item's runId when the body has
// none, and refuses a body that names another run.
func sameID(field string, inBody **ID, runID *ID) error {
	switch {
	case runID == nil:
	case *inBody == nil:
		*inBody = runID
	case **inBody != *runID:
		return derrors.Field("runId", "differs from the body's %s", field)
	}
	return nil
}

func isIngestType(t string) bool {
	for _, x := range ingestTypes {
		if x == t {
			return true
		}
	}
	return false
}

// itemHash is the digest an event id is bound to: the item's type, run and
// body, whitespace aside.
func itemHash(item IngestItem) string {
	var compact bytes.Buffer
	if json.Compact(&compact, item.Body) != nil {
		compact.Reset()
		compact.Write(item.Body)
	}
	run := ""
	if item.RunID != nil {
		run = uuid.UUID(*item.RunID).String()
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s", item.Type, run, compact.Bytes()))
	return hex.EncodeToString(sum[:])
}
