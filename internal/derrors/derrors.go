// Package derrors defines the few categories of error agentstore's layers
// return to each other, and the public code of each. The store turns
// database errors into them; the HTTP layer maps them to a status, and both
// the HTTP API and the WebSocket's "error" frames show clients their code
// (Code). An error of no category is an internal one.
package derrors

import (
	"errors"
	"fmt"
	"time"
)

var (
	// NotFound: the resource does not exist, or belongs to another tenant.
	NotFound = errors.New("not found")
	// InvalidArgument: the input is malformed or breaks a rule of the model.
	InvalidArgument = errors.New("invalid argument")
	// Conflict: the input clashes with the resource's current state.
	Conflict = errors.New("conflict")
	// Forbidden: the caller is known but may not do this.
	Forbidden = errors.New("forbidden")
	// Unauthenticated: the caller could not be identified.
	Unauthenticated = errors.New("unauthenticated")
	// RateLimited: the caller is over its budget.
	RateLimited = errors.New("rate limited")
	// Unavailable: a dependency is down or overloaded; retrying may succeed.
	Unavailable = errors.New("unavailable")
)

// Public codes of the categories, stable across versions: the "code" of
// the HTTP API's error bodies and of the WebSocket's "error" frames.
const (
	CodeNotFound        = "NOT_FOUND"
	CodeInvalidArgument = "INVALID_ARGUMENT"
	CodeConflict        = "CONFLICT"
	CodeForbidden       = "FORBIDDEN"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeRateLimited     = "RATE_LIMITED"
	CodeUnavailable     = "UNAVAILABLE"
	// CodeInternal is the code of an error of no category.
	CodeInternal = "INTERNAL"
)

// categories is the one table of the categories and their public codes,
// in the order Category tries them.
var categories = []struct {
	category error
	code     string
}{
	{NotFound, CodeNotFound},
	{InvalidArgument, CodeInvalidArgument},
	{Conflict, CodeConflict},
	{Forbidden, CodeForbidden},
	{Unauthenticated, CodeUnauthenticated},
	{RateLimited, CodeRateLimited},
	{Unavailable, CodeUnavailable},
}

// Error is an error in a category with a message fit for a client, and
// optional per-field details.
type Error struct {
	// Category is one of this package's sentinels.
	Category error
	// Message is safe to show to the client.
	Message string
	// Details name the offending fields, when there are any.
	Details []Detail
	// Cause is the underlying error, logged but never shown.
	Cause error
	// RetryAfter, for RateLimited, is how long to wait before retrying.
	RetryAfter time.Duration
}

// Detail names one offending field of a request.
type Detail struct {
	// Field is the JSON path of the field, such as "steps[2].seq".
	Field string `json:"field"`
	// Message says what is wrong with it.
	Message string `json:"message"`
}

// Error returns the client-safe message.
func (e *Error) Error() string { return e.Message }

// Is reports whether target is e's category.
func (e *Error) Is(target error) bool { return e.Category == target }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// New returns an error of category cat with a client-safe message.
func New(cat error, format string, args ...any) *Error {
	return &Error{Category: cat, Message: fmt.Sprintf(format, args...)}
}

// Field returns an InvalidArgument error about one field.
func Field(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{
		Category: InvalidArgument,
		Message:  field + ": " + msg,
		Details:  []Detail{{Field: field, Message: msg}},
	}
}

// Category returns the category of err, or nil when it has none.
func Category(err error) error {
	for _, c := range categories {
		if errors.Is(err, c.category) {
			return c.category
		}
	}
	return nil
}

// Code returns the public code of err's category (see Category), or
// CodeInternal when it has none.
func Code(err error) string {
	for _, c := range categories {
		if errors.Is(err, c.category) {
			return c.code
		}
	}
	return CodeInternal
}

// Wrap prefixes *errp, when it is not nil, with the operation that failed,
// so that the log line of an internal error says where it happened. The
// category and the client's message (the Message of a wrapped *Error) stay
// as they were. Use it deferred:
//
//	defer derrors.Wrap(&err, "Runs.Get(%s)", id)
func Wrap(errp *error, format string, args ...any) {
	if *errp != nil {
		*errp = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), *errp)
	}
}
