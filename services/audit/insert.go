package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
)

// The batch INSERT of call rows is written by hand rather than through
// GORM's Create: it runs once per batch on every proxied call's path, and
// GORM's per-field reflection and statement building were a quarter of its
// cost on PostgreSQL. TestBatchWritesEveryField keeps the column lists below
// in step with models.AuditEvent.

// textColumnCount is how many of audit_events' columns are text.
const textColumnCount = 20

// auditColumns lists audit_events' columns: the four that are not text,
// then the text ones in textValues order.
const auditColumns = "id, occurred_at, upstream_status, latency_ms, organization_id, app_id, action, actor_kind, " +
	"actor_id, key_id, agent_id, caller, principal_kind, principal_id, grant_id, provider, method, host, path, " +
	"outcome, error_code, reason, context, request_id"

func textValues(ev *models.AuditEvent) [textColumnCount]string {
	return [textColumnCount]string{ev.OrganizationID, ev.AppID, ev.Action, ev.ActorKind, ev.ActorID, ev.KeyID,
		ev.AgentID, ev.Caller, ev.PrincipalKind, ev.PrincipalID, ev.GrantID, ev.Provider, ev.Method, ev.Host, ev.Path,
		ev.Outcome, ev.ErrorCode, ev.Reason, ev.Context, ev.RequestID}
}

// postgresAuditInsert takes a batch as one array per column: one statement
// text whatever the batch size, so PostgreSQL parses and plans it once per
// connection instead of once per batch size, with a parse tree that does
// not grow with the batch.
var postgresAuditInsert = func() string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO audit_events (" + auditColumns + ") SELECT * FROM unnest(" +
		"$1::uuid[], $2::timestamptz[], $3::integer[], $4::bigint[]")
	for i := 0; i < textColumnCount; i++ {
		fmt.Fprintf(&sb, ", $%d::text[]", 5+i)
	}
	sb.WriteString(")")
	return sb.String()
}()

// sqliteAuditRow is one row of placeholders; SQLite has no array parameters.
var sqliteAuditRow = "(?" + strings.Repeat(", ?", 4+textColumnCount-1) + ")"

// insertRows writes rows in one statement that commits on its own.
func insertRows(ctx context.Context, db *gorm.DB, rows []models.AuditEvent) error {
	query, args := insertStatement(db.Dialector.Name() == "postgres", rows)
	// The pool itself, not GORM: GORM would expand the PostgreSQL arrays
	// into lists of placeholders.
	_, err := db.WithContext(ctx).Statement.ConnPool.ExecContext(ctx, query, args...)
	return err
}

func insertStatement(postgres bool, rows []models.AuditEvent) (string, []any) {
	if postgres {
		n := len(rows)
		ids, times := make([]string, n), make([]time.Time, n)
		statuses, latencies := make([]int32, n), make([]int64, n)
		texts := make([][]string, textColumnCount)
		for c := range texts {
			texts[c] = make([]string, n)
		}
		for i := range rows {
			ev := &rows[i]
			ids[i], times[i], statuses[i], latencies[i] = ev.ID, ev.OccurredAt, int32(ev.UpstreamStatus), ev.LatencyMS
			for c, v := range textValues(ev) {
				texts[c][i] = v
			}
		}
		args := []any{ids, times, statuses, latencies}
		for _, t := range texts {
			args = append(args, t)
		}
		return postgresAuditInsert, args
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO audit_events (" + auditColumns + ") VALUES ")
	args := make([]any, 0, (4+textColumnCount)*len(rows))
	for i := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(sqliteAuditRow)
		ev := &rows[i]
		args = append(args, ev.ID, ev.OccurredAt, ev.UpstreamStatus, ev.LatencyMS)
		for _, v := range textValues(ev) {
			args = append(args, v)
		}
	}
	return sb.String(), args
}
