package httpapi

import (
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// ingestItemAllowed refuses an item of POST /v1/ingest that the viewer's
// role may not write on the item's REST route: usage.record is
// service_role only (SPEC 13), every other type is open to the tenant's
// users.
//
// To be replaced by the role table of the REST routes at merge, so that
// an item and its route can never disagree.
func ingestItemAllowed(v tenant.Viewer, itemType string) error {
	if itemType == ingestUsageRecord && !v.IsServiceRole() {
		return derrors.New(derrors.Forbidden, "only service_role may record usage")
	}
	return nil
}

// traceUsageAllowed says whether the LLM spans a viewer exports to
// POST /v1/traces record usage, which only service_role may record on
// POST /v1/usage: for any other role they are steps without usage.
//
// To be replaced by the role table of the REST routes at merge.
func traceUsageAllowed(v tenant.Viewer) bool { return v.IsServiceRole() }
