// Package migrations holds agentstore's Atlas versioned migration files,
// embedded into the binary for `migrate apply`. The files are written by
// `make migrate-diff name=...`, never by hand.
package migrations

import "embed"

// FS holds the migration files and atlas.sum.
//
//go:embed *.sql atlas.sum
var FS embed.FS
