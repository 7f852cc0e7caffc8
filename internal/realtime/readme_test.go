package realtime

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestReadme keeps the README's "Realtime and Redis" section true to the
// code: the queue size, the close codes and the metric it names.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "## Realtime and Redis\n")
	require.True(t, ok, "README has a Realtime and Redis section")
	section, _, _ = strings.Cut(section, "\n## ")
	text := strings.Join(strings.Fields(section), " ")

	require.Contains(t, text, "send queue ("+strconv.Itoa(DefaultSendQueue)+" frames)")
	for phrase, code := range map[string]int{
		"closed with 1008":      CloseSlowConsumer,
		"connections with 1012": CloseResync,
		"1001 means shutdown":   CloseGoingAway,
		"4001 an expired token": CloseTokenExpired,
	} {
		require.Contains(t, text, phrase)
		require.Contains(t, phrase, strconv.Itoa(code))
	}

	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	families, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	require.Contains(t, names, "agentstore_ws_local_only")
	require.Contains(t, text, "`agentstore_ws_local_only`")
}
