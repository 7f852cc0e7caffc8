package derrors

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
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
