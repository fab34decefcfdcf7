package server

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// The audit_log tool (Options.AuditLogTool): a tenant reads its own audit
// trail. The chain read is always the caller's tenant, from the verified
// token: no argument names a chain, so no argument can reach another
// tenant's events.

const (
	auditLogName         = "audit_log"
	auditLogDefaultLimit = 50
	auditLogMaxLimit     = 100
)

type auditLogIn struct {
	Since   string `json:"since,omitempty" jsonschema:"only events at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z)"`
	Until   string `json:"until,omitempty" jsonschema:"only events before this time (RFC 3339)"`
	Outcome string `json:"outcome,omitempty" jsonschema:"only events with this outcome: ok, error or refused"`
	Tool    string `json:"tool,omitempty" jsonschema:"only calls of this tool"`
	User    string `json:"user,omitempty" jsonschema:"only events of this user id"`
	Cursor  string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page, to read older events"`
	Limit   int    `json:"limit,omitempty" jsonschema:"events per page, 1 to 100 (default 50)"`
}

type auditLogOut struct {
	// Events are newest first.
	Events []auditLogEntry `json:"events"`
	// NextCursor, passed as cursor, reads the next (older) page; absent
	// on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

type auditLogEntry struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	// Event is the stored record, byte for byte.
	Event json.RawMessage `json:"event"`
}

// auditLogOutputSchema is written by hand: the events are JSON objects
// kept as stored (json.RawMessage), which schema inference would describe
// as byte arrays.
var auditLogOutputSchema = json.RawMessage(`{"type":"object","properties":{` +
	`"events":{"type":"array","description":"newest first","items":{"type":"object","properties":{` +
	`"seq":{"type":"integer","description":"position in the tenant's audit chain"},` +
	`"hash":{"type":"string","description":"the record's chain hash (hex SHA-256)"},` +
	`"event":{"type":"object","description":"the audit event as stored"}},"required":["seq","hash","event"]}},` +
	`"next_cursor":{"type":"string","description":"pass as cursor to read older events; absent on the last page"}},` +
	`"required":["events"]}`)

// auditLogTool builds the audit_log tool over the store the audit writer
// writes to.
func auditLogTool(store audit.Store, scope string) Tool {
	t := NewTool(auditLogName, "List this organisation's audit events (requests, tool calls, refusals), newest first. Page with cursor; filter by time, outcome, tool or user.",
		func(ctx context.Context, in auditLogIn) (auditLogOut, error) {
			tc, err := tenant.From(ctx)
			if err != nil {
				return auditLogOut{}, err
			}
			f, err := in.filter()
			if err != nil {
				return auditLogOut{}, err
			}
			limit := f.Limit
			f.Limit++ // one more tells whether there is a next page
			recs, err := store.Query(ctx, string(tc.ID), f)
			if err != nil {
				return auditLogOut{}, err
			}
			out := auditLogOut{Events: make([]auditLogEntry, 0, min(len(recs), limit))}
			for i := range recs {
				if i == limit {
					out.NextCursor = strconv.FormatUint(recs[i-1].Seq, 10)
					break
				}
				out.Events = append(out.Events, auditLogEntry{Seq: recs[i].Seq, Hash: recs[i].Hash.String(), Event: recs[i].Body})
			}
			return out, nil
		}, RequireScopes(scope), ReadOnly())
	t.OutputSchema = auditLogOutputSchema
	return t
}

// filter checks the arguments and turns them into a query of the chain.
func (in *auditLogIn) filter() (audit.Filter, error) {
	f := audit.Filter{Outcome: in.Outcome, Tool: in.Tool, User: in.User, Limit: auditLogDefaultLimit}
	var err error
	if in.Since != "" {
		if f.Since, err = time.Parse(time.RFC3339, in.Since); err != nil {
			return f, UserErrorf("since %q: want an RFC 3339 time such as 2026-01-31T00:00:00Z", in.Since)
		}
	}
	if in.Until != "" {
		if f.Until, err = time.Parse(time.RFC3339, in.Until); err != nil {
			return f, UserErrorf("until %q: want an RFC 3339 time such as 2026-01-31T00:00:00Z", in.Until)
		}
	}
	switch in.Outcome {
	case "", audit.OutcomeOK, audit.OutcomeError, audit.OutcomeRefused:
	default:
		return f, UserErrorf("outcome %q: want ok, error or refused", in.Outcome)
	}
	if in.Cursor != "" {
		if f.BeforeSeq, err = strconv.ParseUint(in.Cursor, 10, 64); err != nil || f.BeforeSeq == 0 {
			return f, UserErrorf("cursor %q: pass the next_cursor of a previous page", in.Cursor)
		}
	}
	if in.Limit != 0 {
		if in.Limit < 1 || in.Limit > auditLogMaxLimit {
			return f, UserErrorf("limit %d: want 1 to %d", in.Limit, auditLogMaxLimit)
		}
		f.Limit = in.Limit
	}
	return f, nil
}
