package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/realtime"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// The data lifecycle of SPEC 16: deleting a run, erasing an end user,
// exporting runs. Only service_role may call these routes
// (serviceRoleRoutes).

// Notifier is told that there is new work, such as a new erasure.
type Notifier interface {
	Notify()
}

// Erasure is the JSON of an erasure job.
type Erasure struct {
	ID         uuid.UUID     `json:"id"`
	UserID     uuid.UUID     `json:"userId"`
	Status     string        `json:"status"`
	Counts     ErasureCounts `json:"counts"`
	Error      *string       `json:"error"`
	CreatedAt  time.Time     `json:"createdAt"`
	FinishedAt *time.Time    `json:"finishedAt"`
}

// ErasureCounts are the rows an erasure removed so far.
type ErasureCounts struct {
	Runs      int64 `json:"runs"`
	Steps     int64 `json:"steps"`
	ToolCalls int64 `json:"toolCalls"`
}

// ErasureRequest is the body of POST /v1/erasures.
type ErasureRequest struct {
	UserID *ID `json:"userId"`
}

func toErasure(e *ent.Erasure) Erasure {
	return Erasure{
		ID: e.ID, UserID: e.UserID, Status: string(e.Status),
		Counts:    ErasureCounts{Runs: e.Runs, Steps: e.Steps, ToolCalls: e.ToolCalls},
		Error:     e.Error,
		CreatedAt: e.CreatedAt.UTC(), FinishedAt: utcPtr(e.FinishedAt),
	}
}

func (h *handlers) deleteRun(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.st.Runs.Delete(ctx, id); err != nil {
		return err
	}
	h.publish(ctx, id, realtime.EventRunDeleted, map[string]uuid.UUID{"id": id})
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) createErasure(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req ErasureRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var missing required
	missing.check(req.UserID != nil, "userId")
	if err := missing.err(); err != nil {
		return err
	}
	job, err := h.st.Erasures.Create(c.Request().Context(), uuid.UUID(*req.UserID))
	if err != nil {
		return err
	}
	if h.erasures != nil {
		h.erasures.Notify()
	}
	return c.JSON(http.StatusAccepted, toErasure(job))
}

func (h *handlers) getErasure(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	job, err := h.st.Erasures.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toErasure(job))
}

// MIMENDJSON is the media type of the export: one JSON value per line.
const MIMENDJSON = "application/x-ndjson"

func (h *handlers) exportRuns(c echo.Context) error {
	q := query{c: c}
	w := store.Window{From: q.time("from"), To: q.time("to")}
	after := q.str("cursor")
	if err := q.err(); err != nil {
		return err
	}
	res := c.Response()
	out := &lazyWriter{start: func() {
		res.Header().Set(echo.HeaderContentType, MIMENDJSON)
		res.Header().Set("Cache-Control", "no-store")
		res.WriteHeader(http.StatusOK)
	}, w: res}
	ctx := c.Request().Context()
	err := WriteExport(ctx, h.st, w, after, out, func(*string, int) error {
		res.Flush()
		return nil
	})
	if err != nil && out.started {
		// The stream is cut short: the client sees no final nextCursor
		// line and resumes from the last one it got.
		v, _ := tenant.FromContext(ctx)
		h.log.ErrorContext(ctx, "export interrupted", "request_id", requestID(c), "tenant_id", v.TenantID.String(), "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if !out.started {
		out.start()
		out.started = true
	}
	return nil
}

// lazyWriter sends the response's status and headers with its first
// write, so that an error found before any output is still an error
// response.
type lazyWriter struct {
	start   func()
	started bool
	w       io.Writer
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.start()
	}
	return l.w.Write(p)
}

// WriteExport writes the export of SPEC 16 to out: the runs of the
// viewer's tenant created in w, oldest first (createdAt, id), after the
// cursor after, one run per line with its steps and tool calls nested
// (the JSON of GET /v1/runs/{id}?include=steps,toolCalls). After every
// page of runs it writes a checkpoint line {"nextCursor":"<cursor>"};
// the last line is {"nextCursor":null}. After each checkpoint line is
// written to out, checkpoint is called with its cursor (nil for the last
// line) and the number of runs written since the previous one. A reader that is cut off resumes with the last nextCursor it
// read, dropping the runs it read after it. GET /v1/export/runs and
// `agentstore export` write exactly this.
func WriteExport(ctx context.Context, st *store.Store, w store.Window, after string, out io.Writer,
	checkpoint func(cursor *string, runs int) error) error {
	bw := bufio.NewWriterSize(out, 64<<10)
	sink := &exportEncoder{w: bw}
	sink.checkpoint = func(cursor *string) error {
		if err := bw.Flush(); err != nil {
			return err
		}
		runs := sink.runs
		sink.runs = 0
		return checkpoint(cursor, runs)
	}
	if err := st.Runs.Export(ctx, w, after, sink); err != nil {
		return err
	}
	return sink.writeCheckpoint(nil)
}

// ExportCheckpoint is the JSON of a checkpoint line of the export.
type ExportCheckpoint struct {
	NextCursor *string `json:"nextCursor"`
}

// exportEncoder writes the runs Export streams as NDJSON, a run's steps
// and tool calls as they come, without holding them.
type exportEncoder struct {
	w          *bufio.Writer
	checkpoint func(cursor *string) error
	state      int // 0 between runs, 1 in steps, 2 in tool calls
	runs       int // runs written since the last checkpoint
	first      bool
	buf        []byte
}

var errExportOrder = errors.New("export: rows out of order")

func (e *exportEncoder) encode(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = e.w.Write(b)
	return err
}

// Run starts a run's line: its fields, then the steps array.
func (e *exportEncoder) Run(r *ent.AgentRun) error {
	if e.state != 0 {
		return errExportOrder
	}
	b, err := json.Marshal(toRun(r)) // no edges loaded: no steps or toolCalls
	if err != nil {
		return err
	}
	e.buf = append(append(e.buf[:0], b[:len(b)-1]...), `,"steps":[`...)
	e.state, e.first = 1, true
	e.runs++
	_, err = e.w.Write(e.buf)
	return err
}

func (e *exportEncoder) sep() error {
	if e.first {
		e.first = false
		return nil
	}
	return e.w.WriteByte(',')
}

// Step writes a step of the open run.
func (e *exportEncoder) Step(s *ent.AgentStep) error {
	if e.state != 1 {
		return errExportOrder
	}
	if err := e.sep(); err != nil {
		return err
	}
	return e.encode(toStep(s))
}

// ToolCall writes a tool call of the open run, closing its steps.
func (e *exportEncoder) ToolCall(t *ent.ToolCall) error {
	switch e.state {
	case 1:
		if _, err := e.w.WriteString(`],"toolCalls":[`); err != nil {
			return err
		}
		e.state, e.first = 2, true
	case 2:
	default:
		return errExportOrder
	}
	if err := e.sep(); err != nil {
		return err
	}
	return e.encode(toToolCall(t))
}

// EndRun ends the open run's line.
func (e *exportEncoder) EndRun() error {
	var tail string
	switch e.state {
	case 1:
		tail = `],"toolCalls":[]}` + "\n"
	case 2:
		tail = "]}\n"
	default:
		return errExportOrder
	}
	e.state = 0
	_, err := e.w.WriteString(tail)
	return err
}

// EndPage writes the checkpoint line of a page.
func (e *exportEncoder) EndPage(cursor string) error { return e.writeCheckpoint(&cursor) }

// writeCheckpoint writes a checkpoint line, flushes it and calls
// checkpoint.
func (e *exportEncoder) writeCheckpoint(cursor *string) error {
	if e.state != 0 {
		return errExportOrder
	}
	if err := e.encode(ExportCheckpoint{NextCursor: cursor}); err != nil {
		return err
	}
	if err := e.w.WriteByte('\n'); err != nil {
		return err
	}
	return e.checkpoint(cursor)
}
