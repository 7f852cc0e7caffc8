package derrors

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
