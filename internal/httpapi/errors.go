package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Public error codes, stable across versions.
const (
	CodeInvalidArgument  = "INVALID_ARGUMENT"
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodeForbidden        = "FORBIDDEN"
	CodeNotFound         = "NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeConflict         = "CONFLICT"
	CodePayloadTooLarge  = "PAYLOAD_TOO_LARGE"
	CodeRateLimited      = "RATE_LIMITED"
	CodeInternal         = "INTERNAL"
	CodeUnavailable      = "UNAVAILABLE"
)

// statusOf is the one table from error category to HTTP status and code.
var statusOf = []struct {
	category error
	status   int
	code     string
}{
	{derrors.InvalidArgument, http.StatusBadRequest, CodeInvalidArgument},
	{derrors.Unauthenticated, http.StatusUnauthorized, CodeUnauthenticated},
	{derrors.Forbidden, http.StatusForbidden, CodeForbidden},
	{derrors.NotFound, http.StatusNotFound, CodeNotFound},
	{derrors.Conflict, http.StatusConflict, CodeConflict},
	{errPayloadTooLarge, http.StatusRequestEntityTooLarge, CodePayloadTooLarge},
	{derrors.RateLimited, http.StatusTooManyRequests, CodeRateLimited},
	{derrors.Unavailable, http.StatusServiceUnavailable, CodeUnavailable},
}

var errPayloadTooLarge = errors.New("payload too large")

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Code         string           `json:"code"`
	Message      string           `json:"message"`
	RequestID    string           `json:"requestId"`
	Details      []derrors.Detail `json:"details,omitempty"`
	RetryAfterMs *int64           `json:"retryAfterMs,omitempty"`
}

// errorHandler writes every error a handler or middleware returns. It is
// the only place that writes error bodies; unmapped errors are a bare 500,
// logged once with the request and tenant ids.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, body := http.StatusInternalServerError, ErrorBody{Code: CodeInternal, Message: "internal error"}
		var he *echo.HTTPError
		var de *derrors.Error
		switch {
		case errors.As(err, &he):
			status = he.Code
			body = ErrorBody{Code: codeForStatus(he.Code), Message: http.StatusText(he.Code)}
			if he.Code == http.StatusNotFound {
				body.Message = "no such route"
			}
		case derrors.Category(err) != nil || errors.Is(err, errPayloadTooLarge):
			for _, m := range statusOf {
				if errors.Is(err, m.category) {
					status, body.Code = m.status, m.code
					break
				}
			}
			body.Message = err.Error()
			if errors.As(err, &de) {
				body.Message, body.Details = de.Message, de.Details
				if de.RetryAfter > 0 {
					ms := de.RetryAfter.Milliseconds()
					body.RetryAfterMs = &ms
				}
			}
		}
		if status >= 500 {
			v, _ := tenant.FromContext(c.Request().Context())
			log.ErrorContext(c.Request().Context(), "request failed",
				"request_id", requestID(c), "tenant_id", v.TenantID.String(),
				"route", c.Path(), "status", status, "err", err)
			if status == http.StatusInternalServerError {
				body.Message = "internal error"
				body.Details = nil
			}
		}
		body.RequestID = requestID(c)
		if status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="agentstore"`)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, body)
	}
}

func codeForStatus(status int) string {
	for _, m := range statusOf {
		if m.status == status {
			return m.code
		}
	}
	if status == http.StatusMethodNotAllowed {
		return CodeMethodNotAllowed
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeInvalidArgument
}
