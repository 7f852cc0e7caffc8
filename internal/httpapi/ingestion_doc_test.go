package httpapi

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/markdown"
	"github.com/agentstore/agentstore/internal/otlp"
)

// ingestionDoc is docs/development/ingestion.md.
func ingestionDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/development/ingestion.md")
	require.NoError(t, err)
	return string(b)
}

func section(t *testing.T, doc, title string) string {
	t.Helper()
	s, ok := markdown.Section(doc, title)
	require.True(t, ok, "the doc has a section %q", title)
	return s
}

// names returns the code spans of a cell, or the cell itself when it has
// none.
func names(cell string) []string {
	if spans := markdown.CodeSpans(cell); len(spans) > 0 {
		return spans
	}
	if cell == "" {
		return nil
	}
	return []string{cell}
}

// TestIngestionDocMatchesTheMapping holds the doc's two mapping tables
// equal to otlp.Kinds and otlp.Fields, which the mapping itself reads.
func TestIngestionDocMatchesTheMapping(t *testing.T) {
	doc := ingestionDoc(t)

	rows := markdown.TableRows(section(t, doc, "Span kinds"))
	require.Len(t, rows, len(otlp.Kinds)+1, "a row per kind and one for the rest")
	for i, k := range otlp.Kinds {
		assert.Equal(t, k.GenAI, names(rows[i][0]), "kinds row %d", i)
		assert.Equal(t, []string{k.OpenInference}, names(rows[i][1]), "kinds row %d", i)
		assert.Equal(t, string(k.Target), rows[i][2], "kinds row %d", i)
	}
	last := rows[len(rows)-1]
	assert.Equal(t, string(otlp.TargetStep), last[2], "what matches no row is a step")

	rows = markdown.TableRows(section(t, doc, "Attributes"))
	require.Len(t, rows, len(otlp.Fields), "a row per field")
	for i, f := range otlp.Fields {
		require.Len(t, rows[i], 4, "fields row %d", i)
		assert.Equal(t, f.Field, rows[i][0])
		assert.Equal(t, f.GenAI, names(rows[i][1]), "GenAI attributes of %s", f.Field)
		assert.Equal(t, f.OpenInference, names(rows[i][2]), "OpenInference attributes of %s", f.Field)
		assert.Equal(t, f.Else, rows[i][3], "the fallback of %s", f.Field)
	}
}

// TestIngestionDocExampleMapsAsDocumented maps the example trace and
// compares it with the doc's table of what it becomes.
func TestIngestionDocExampleMapsAsDocumented(t *testing.T) {
	doc := ingestionDoc(t)
	example := section(t, doc, "Example trace")
	var body string
	for _, b := range markdown.Blocks(example) {
		if b.Lang == "json" {
			body = b.Text
		}
	}
	require.NotEmpty(t, body, "the example is a json block")
	req, err := otlp.Decode([]byte(body), otlp.JSON, "", MaxTraceDecodedBytes)
	require.NoError(t, err)
	m := otlp.Map(req)
	require.Empty(t, m.Rejected)
	rows := markdown.TableRows(example)
	require.Len(t, rows, len(m.Spans))
	for i, s := range m.Spans {
		assert.Equal(t, []string{s.Name, string(s.Target)}, rows[i])
	}
	assert.Contains(t, example, "`"+m.Spans[2].ToolName+"`")
	assert.Contains(t, example, "`"+m.Spans[1].Model+"`")
	assert.Contains(t, example, "`"+m.Spans[3].StepType+"`")
}

// TestIngestionDocMatchesTheRoutes checks the batch item table, the limits
// and the exporter settings the doc names.
func TestIngestionDocMatchesTheRoutes(t *testing.T) {
	doc := ingestionDoc(t)
	batch := section(t, doc, "Batch ingestion: POST /v1/ingest")
	var types []string
	for _, row := range markdown.TableRows(batch) {
		types = append(types, names(row[0])...)
	}
	assert.Equal(t, ingestTypes, types, "the item types, in order")
	assert.Contains(t, batch, "At most 1,000 items and 5 MiB")
	assert.Equal(t, 1000, MaxIngestItems)
	assert.Equal(t, 5<<20, MaxIngestBytes)

	traces := section(t, doc, "OpenTelemetry traces: POST /v1/traces")
	assert.Contains(t, traces, "at most 20 MiB as sent and once\ndecompressed")
	assert.Equal(t, 20<<20, MaxTraceBodyBytes)
	assert.Equal(t, 20<<20, MaxTraceDecodedBytes)
	for _, ct := range []string{otlp.MediaTypeProtobuf, otlp.MediaTypeJSON} {
		assert.Contains(t, traces, "`"+ct+"`")
	}

	sdk := section(t, doc, "Pointing an OpenTelemetry SDK at agentstore")
	doc404 := loadOpenAPI(t)
	for _, path := range []string{"/v1/traces", "/v1/ingest"} {
		require.NotNil(t, doc404.Paths.Value(path), "%s is a documented route", path)
	}
	assert.Contains(t, sdk, "/v1/traces")
	assert.Contains(t, sdk, `"`+HeaderTenantID+`"`)
	assert.Contains(t, sdk, HeaderTenantID+"=")
	assert.True(t, strings.Contains(sdk, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "the standard variable")
}
