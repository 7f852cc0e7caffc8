package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Public codes of the refusals only the HTTP API has. The code of every
// error category is derrors.Code's, the same on the WebSocket.
const (
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
)

// statusOf is the one table from error category to HTTP status, tried in
// order; the body's code is the category's (codeOf).
var statusOf = []struct {
	category error
	status   int
}{
	{derrors.InvalidArgument, http.StatusBadRequest},
	{derrors.Unauthenticated, http.StatusUnauthorized},
	{derrors.Forbidden, http.StatusForbidden},
	{derrors.NotFound, http.StatusNotFound},
	{derrors.Conflict, http.StatusConflict},
	{errPayloadTooLarge, http.StatusRequestEntityTooLarge},
	{errUnsupportedMediaType, http.StatusUnsupportedMediaType},
	{derrors.RateLimited, http.StatusTooManyRequests},
	{derrors.Unavailable, http.StatusServiceUnavailable},
}

// codeOf is the public code of a category of statusOf.
func codeOf(category error) string {
	switch category {
	case errPayloadTooLarge:
		return CodePayloadTooLarge
	case errUnsupportedMediaType:
		return CodeUnsupportedMediaType
	}
	return derrors.Code(category)
}

var (
	errPayloadTooLarge = errors.New("payload too large")
	// errUnsupportedMediaType is a body of a media type or content
	// encoding the route does not take.
	errUnsupportedMediaType = errors.New("unsupported media type")
)

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
		status, body := http.StatusInternalServerError, ErrorBody{Code: derrors.CodeInternal, Message: "internal error"}
		var he *echo.HTTPError
		var de *derrors.Error
		switch {
		case errors.As(err, &he):
			status = he.Code
			body = ErrorBody{Code: codeForStatus(he.Code), Message: http.StatusText(he.Code)}
			if he.Code == http.StatusNotFound {
				body.Message = "no such route"
			}
		case derrors.Category(err) != nil || errors.Is(err, errPayloadTooLarge) || errors.Is(err, errUnsupportedMediaType):
			for _, m := range statusOf {
				if errors.Is(err, m.category) {
					status, body.Code = m.status, codeOf(m.category)
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
			return codeOf(m.category)
		}
	}
	if status == http.StatusMethodNotAllowed {
		return CodeMethodNotAllowed
	}
	if status >= 500 {
		return derrors.CodeInternal
	}
	return derrors.CodeInvalidArgument
}
