// Package benchresult holds the JSON results the load generators write
// (loadgen -json, wsbench -json) and benchreport reads: one definition
// for the writer and the reader, so that a field added to a result reaches
// the report.
package benchresult
