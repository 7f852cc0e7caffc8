package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Publisher receives realtime events after their transaction committed;
// their names are realtime's server events (realtime.EventRunCreated, …).
type Publisher interface {
	Publish(ctx context.Context, tenantID, runID uuid.UUID, event string, data any)
}

// HeaderIdempotencyKey makes POST /v1/runs safe to retry.
const HeaderIdempotencyKey = "Idempotency-Key"

// headerIdempotentReplayed marks the stored response of an earlier request
// with the same idempotency key.
const headerIdempotentReplayed = "Idempotent-Replayed"

type handlers struct {
	st       *store.Store
	events   Publisher
	log      *slog.Logger
	erasures Notifier
}

func (h *handlers) publish(ctx context.Context, runID uuid.UUID, event string, data any) {
	if h.events == nil {
		return
	}
	v, _ := tenant.FromContext(ctx)
	h.events.Publish(ctx, v.TenantID, runID, event, data)
}

func (h *handlers) postRun(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req CreateRunRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	key, hash := c.Request().Header.Get(HeaderIdempotencyKey), ""
	if key != "" {
		if len(key) > 255 || strings.TrimSpace(key) != key || !utf8.ValidString(key) {
			return derrors.Field(HeaderIdempotencyKey, "must be 1 to 255 bytes of UTF-8 without surrounding spaces")
		}
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	return h.respond(c, func(ctx context.Context) (outcome, error) { return h.createRun(ctx, req, key, hash) })
}

// respond runs a write operation, publishes its events and answers with
// its outcome.
func (h *handlers) respond(c echo.Context, op func(ctx context.Context) (outcome, error)) error {
	ctx := c.Request().Context()
	o, err := op(ctx)
	if err != nil {
		return err
	}
	if o.replayed {
		c.Response().Header().Set(headerIdempotentReplayed, "true")
	}
	h.publishAll(ctx, o.events)
	return c.JSONBlob(o.status, o.body)
}

func (h *handlers) listRuns(c echo.Context) error {
	q := query{c: c}
	f := store.RunFilter{
		Status:        q.oneOf("status", store.StatusQueued, store.StatusRunning, store.StatusSucceeded, store.StatusFailed, store.StatusCancelled),
		AgentName:     q.str("agentName"),
		CreatedAfter:  q.time("createdAfter"),
		CreatedBefore: q.time("createdBefore"),
		ParentRunID:   q.uuid("parentRunId"),
		Page:          store.Page{Limit: q.limit(), Cursor: q.str("cursor")},
	}
	if err := q.err(); err != nil {
		return err
	}
	runs, next, err := h.st.Runs.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page(runs, toRun, next))
}

func (h *handlers) getRun(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var inc store.Include
	if s := c.QueryParam("include"); s != "" {
		for _, part := range strings.Split(s, ",") {
			switch strings.TrimSpace(part) {
			case "steps":
				inc.Steps = true
			case "toolCalls":
				inc.ToolCalls = true
			default:
				return derrors.Field("include", "must list steps and/or toolCalls")
			}
		}
	}
	run, err := h.st.Runs.Get(c.Request().Context(), id, inc)
	if err != nil {
		return err
	}
	out := toRun(run)
	if inc.Steps && out.Steps == nil {
		out.Steps = []Step{}
	}
	if inc.ToolCalls && out.ToolCalls == nil {
		out.ToolCalls = []ToolCall{}
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handlers) patchRun(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req PatchRunRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	return h.respond(c, func(ctx context.Context) (outcome, error) { return h.updateRun(ctx, id, req) })
}

func (h *handlers) postSteps(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	reqs, batch, err := decodeOneOrBatch[StepRequest](body, "steps")
	if err != nil {
		return asWritten(err, "steps", batch)
	}
	return h.respond(c, func(ctx context.Context) (outcome, error) { return h.appendSteps(ctx, id, reqs, batch) })
}

// decodeOneOrBatch decodes a body that is either one item or, in the batch
// form, an object whose only member key holds an array of items.
func decodeOneOrBatch[T any](body []byte, key string) (items []T, batch bool, err error) {
	if isBatch(body, key) {
		var wrapper map[string][]T
		if err := decodeStrict(body, &wrapper); err != nil {
			return nil, true, err
		}
		if len(wrapper) != 1 {
			return nil, true, derrors.Field(key, "the batch form holds only %q", key)
		}
		return wrapper[key], true, nil
	}
	var one T
	if err := decodeStrict(body, &one); err != nil {
		return nil, false, err
	}
	return []T{one}, false, nil
}

// asWritten names the fields of err as the client wrote them. The store
// names an appended item's field by its place in the list, such as
// "steps[0].type"; in the single form the body is that item, so the field
// is "type".
func asWritten(err error, list string, batch bool) error {
	var de *derrors.Error
	if batch || !errors.As(err, &de) {
		return err
	}
	prefix := list + "[0]."
	out := *de
	out.Message = strings.ReplaceAll(de.Message, prefix, "")
	out.Details = make([]derrors.Detail, len(de.Details))
	for i, d := range de.Details {
		out.Details[i] = derrors.Detail{Field: strings.TrimPrefix(d.Field, prefix), Message: d.Message}
	}
	return &out
}

// defaultStepPage is the page size of GET /v1/runs/{id}/steps with a
// cursor and no limit.
const defaultStepPage = 1000

func (h *handlers) listSteps(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	// Without limit or cursor, every step at once, as before paging
	// existed; with either, one page of at most limit (default 1000).
	if c.QueryParam("limit") != "" || c.QueryParam("cursor") != "" {
		q := query{c: c}
		limit := defaultStepPage
		if c.QueryParam("limit") != "" {
			limit = q.int("limit")
		}
		if err := q.err(); err != nil {
			return err
		}
		steps, next, err := h.st.Runs.ListStepsPage(c.Request().Context(), id, limit, q.str("cursor"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, page(steps, toStep, next))
	}
	steps, err := h.st.Runs.ListSteps(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page(steps, toStep, ""))
}

func (h *handlers) postToolCalls(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	reqs, batch, err := decodeOneOrBatch[ToolCallRequest](body, "toolCalls")
	if err != nil {
		return asWritten(err, "toolCalls", batch)
	}
	return h.respond(c, func(ctx context.Context) (outcome, error) { return h.recordToolCalls(ctx, id, reqs, batch) })
}

func (h *handlers) listToolCalls(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	calls, err := h.st.Runs.ListToolCalls(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page(calls, toToolCall, ""))
}

func (h *handlers) runStats(c echo.Context) error {
	q := query{c: c}
	w := store.Window{From: q.time("from"), To: q.time("to")}
	groupBy := q.oneOf("groupBy", "status", "agentName")
	if groupBy == "" {
		groupBy = "status"
	}
	if err := q.err(); err != nil {
		return err
	}
	stats, err := h.st.Runs.Stats(c.Request().Context(), w, groupBy)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, Rollup[RunStats]{Window: toRollupWindow(w.WholeHours()), Data: mapSlice(stats, toRunStats)})
}

func (h *handlers) postUsage(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req UsageRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	return h.respond(c, func(ctx context.Context) (outcome, error) { return h.recordUsage(ctx, req) })
}

func (h *handlers) usageSummary(c echo.Context) error {
	q := query{c: c}
	w := store.Window{From: q.time("from"), To: q.time("to")}
	groupBy := q.oneOf("groupBy", "day", "model", "agentName")
	if groupBy == "" {
		groupBy = "day"
	}
	if err := q.err(); err != nil {
		return err
	}
	sum, err := h.st.Usage.Summary(c.Request().Context(), w, groupBy)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, Rollup[UsageSummary]{Window: toRollupWindow(w.WholeHours()), Data: mapSlice(sum, toUsageSummary)})
}

func (h *handlers) listAudit(c echo.Context) error {
	q := query{c: c}
	f := store.AuditFilter{
		Action: q.str("action"), ResourceType: q.str("resourceType"), ResourceID: q.str("resourceId"),
		ActorID: q.str("actorId"), From: q.time("from"), To: q.time("to"),
		Page: store.Page{Limit: q.limit(), Cursor: q.str("cursor")},
	}
	if err := q.err(); err != nil {
		return err
	}
	logs, next, err := h.st.Audit.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page(logs, toAuditLog, next))
}

func (h *handlers) getHealth(c echo.Context) error {
	q := query{c: c}
	component := q.str("component")
	w := store.Window{From: q.time("from"), To: q.time("to")}
	limit := q.limit()
	if component == "" && (!w.From.IsZero() || !w.To.IsZero()) {
		q.errs = append(q.errs, derrors.Detail{Field: "component", Message: "is required with from or to"})
	}
	if err := q.err(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	var rows []*ent.SystemHealth
	var err error
	if component == "" {
		rows, err = h.st.Health.Latest(ctx)
	} else {
		rows, err = h.st.Health.History(ctx, component, w, limit)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, Data[Health]{Data: mapSlice(rows, toHealth)})
}

func (h *handlers) recordHealth(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req HealthRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var missing required
	missing.check(req.Component != "", "component")
	missing.check(req.Status != "", "status")
	if err := missing.err(); err != nil {
		return err
	}
	row, err := h.st.Health.Record(c.Request().Context(), store.NewHealth{
		Component: req.Component, Status: req.Status, LatencyMs: req.LatencyMs, Details: req.Details, CheckedAt: req.CheckedAt,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toHealth(row))
}
