package store

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"entgo.io/ent/dialect/sql/schema"
	"entgo.io/ent/schema/field"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/auditlog"
	"github.com/agentstore/agentstore/ent/idempotencykey"
	"github.com/agentstore/agentstore/ent/migrate"
	"github.com/agentstore/agentstore/ent/systemhealth"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
)

// A value the schema's generated validators refuse is reported to the
// client in the client's words: the field as its JSON name (the column in
// camelCase, as every request type spells it), and what the field must be,
// read from the schema (the enum's values, the column's size). No message
// names ent, a table, a Go type or a column.

// tableOf is the table of each ent type, by the type's name as ent's
// validation errors spell it.
var tableOf = map[string]string{
	"AgentRun": agentrun.Table, "AgentStep": agentstep.Table, "ToolCall": toolcall.Table,
	"UsageMetric": usagemetric.Table, "SystemHealth": systemhealth.Table, "AuditLog": auditlog.Table,
	"IdempotencyKey": idempotencykey.Table,
}

// minimums are the lower bounds of the validated numeric columns
// (Positive is 1, NonNegative and Min(0) are 0), by "table.column";
// TestMinimumsMatchValidators holds them to the generated validators.
var minimums = map[string]int64{
	agentstep.Table + "." + agentstep.FieldSeq:                   1,
	toolcall.Table + "." + toolcall.FieldDurationMs:              0,
	usagemetric.Table + "." + usagemetric.FieldInputTokens:       0,
	usagemetric.Table + "." + usagemetric.FieldOutputTokens:      0,
	usagemetric.Table + "." + usagemetric.FieldCachedInputTokens: 0,
	usagemetric.Table + "." + usagemetric.FieldTotalTokens:       0,
	usagemetric.Table + "." + usagemetric.FieldCostUsd:           0,
	systemhealth.Table + "." + systemhealth.FieldLatencyMs:       0,
}

// jsonName is the name clients use for column: its camelCase form.
func jsonName(column string) string {
	parts := strings.Split(column, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// columnOf returns the schema of table.column, nil when there is none.
func columnOf(table, column string) *schema.Column {
	for _, t := range migrate.Tables {
		if t.Name != table {
			continue
		}
		for _, c := range t.Columns {
			if c.Name == column {
				return c
			}
		}
	}
	return nil
}

// refusal is what to tell a client whose value for table.column a
// generated validator refused with err.
func refusal(table, column string, err error) string {
	c := columnOf(table, column)
	switch {
	case c == nil:
	case c.Type == field.TypeEnum:
		return "must be one of " + strings.Join(c.Enums, ", ")
	case c.Type == field.TypeString && strings.Contains(err.Error(), "less than the required length"):
		return "must not be empty"
	case c.Type == field.TypeString && strings.Contains(err.Error(), "greater than the required length"):
		return fmt.Sprintf("must be at most %d bytes long", c.Size)
	case strings.Contains(err.Error(), "out of range"):
		if m, ok := minimums[table+"."+column]; ok {
			if m == 0 {
				return "must not be negative"
			}
			return fmt.Sprintf("must be at least %d", m)
		}
	}
	return "is not valid"
}

// validationField reads the type and column out of the message of ent's
// validation errors: validator failed for field "UsageMetric.input_tokens".
var validationField = regexp.MustCompile(`field "(\w+)\.(\w+)"`)

// fromValidation turns an error of one of ent's builders' validators into
// an InvalidArgument naming the client's field.
func fromValidation(verr *ent.ValidationError) error {
	table, column := "", verr.Name
	if m := validationField.FindStringSubmatch(verr.Error()); m != nil {
		table, column = tableOf[m[1]], m[2]
	}
	name, msg := jsonName(column), refusal(table, column, errors.Unwrap(verr))
	return &derrors.Error{
		Category: derrors.InvalidArgument,
		Message:  name + ": " + msg,
		Details:  []derrors.Detail{{Field: name, Message: msg}},
		Cause:    verr,
	}
}
