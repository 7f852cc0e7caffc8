package derrors

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCode(t *testing.T) {
	tests := []struct {
		err  error
		code string
	}{
		{New(NotFound, "no run"), CodeNotFound},
		{Field("steps[0].type", "is required"), CodeInvalidArgument},
		{New(Conflict, "terminal"), CodeConflict},
		{New(Forbidden, "no"), CodeForbidden},
		{New(Unauthenticated, "no token"), CodeUnauthenticated},
		{&Error{Category: RateLimited, Message: "slow down"}, CodeRateLimited},
		{New(Unavailable, "down"), CodeUnavailable},
		{fmt.Errorf("runs.Get: %w", New(NotFound, "no run")), CodeNotFound},
		{Unavailable, CodeUnavailable},
		{errors.New("boom"), CodeInternal},
		{&Error{Message: "no category"}, CodeInternal},
		{nil, CodeInternal},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.code, Code(tt.err), "%v", tt.err)
		if tt.code != CodeInternal {
			assert.NotNil(t, Category(tt.err), "%v", tt.err)
		} else {
			assert.Nil(t, Category(tt.err), "%v", tt.err)
		}
	}
}

func TestWrapKeepsCategory(t *testing.T) {
	err := func() (err error) {
		defer Wrap(&err, "runs.Get(%d)", 7)
		return New(NotFound, "run not found")
	}()
	assert.EqualError(t, err, "runs.Get(7): run not found")
	assert.Equal(t, CodeNotFound, Code(err))

	var none error
	Wrap(&none, "nothing")
	assert.NoError(t, none)
}

func TestWrapNamesTheOperationAndKeepsTheClientMessage(t *testing.T) {
	get := func(cause error) (err error) {
		defer Wrap(&err, "Runs.Get(%s)", "r1")
		return cause
	}
	require.NoError(t, get(nil), "a nil error stays nil")

	err := get(New(NotFound, "not found"))
	assert.Equal(t, "Runs.Get(r1): not found", err.Error(), "the log line names the operation")
	assert.ErrorIs(t, err, NotFound, "the category is kept")
	assert.Equal(t, NotFound, Category(err))
	var de *Error
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "not found", de.Message, "the client's message is unchanged")

	plain := errors.New("connection reset")
	err = get(plain)
	assert.Equal(t, "Runs.Get(r1): connection reset", err.Error())
	assert.ErrorIs(t, err, plain)
	assert.Nil(t, Category(err), "an internal error stays uncategorized")
}
