package audit

import (
	"context"
	"strings"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/database"
)

// The batch INSERT of call rows is written by hand rather than through
// GORM's Create: it runs once per batch on every proxied call's path, and
// GORM's per-field reflection and statement building were a quarter of its
// cost on PostgreSQL. TestBatchWritesEveryField keeps the column list below
// in step with models.AuditEvent.
//
// It stays a multi-row VALUES list on both dialects. PostgreSQL could take
// one array per column (INSERT … SELECT FROM unnest(…)), one statement text
// for every batch size, but it plans such a statement afresh on every
// execution (the row count is only known from the arrays), and on the
// proxy benchmark that doubled the median latency of a call at 1 000
// calls/s; a VALUES statement of a given size gets a cached generic plan.

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

// insertRows writes rows in one statement that commits on its own. It runs
// on database/sql, not through GORM (database.Placeholders says why).
func insertRows(ctx context.Context, db *gorm.DB, rows []models.AuditEvent) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	var sb strings.Builder
	sb.Grow(len(auditColumns) + 64 + len(rows)*(4+textColumnCount)*6)
	sb.WriteString("INSERT INTO audit_events (" + auditColumns + ") VALUES ")
	ph := database.NewPlaceholders(db.Dialector.Name())
	args := make([]any, 0, (4+textColumnCount)*len(rows))
	for i := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		ph.Row(&sb, 4+textColumnCount)
		ev := &rows[i]
		args = append(args, ev.ID, ev.OccurredAt, ev.UpstreamStatus, ev.LatencyMS)
		for _, v := range textValues(ev) {
			args = append(args, v)
		}
	}
	_, err = sqlDB.ExecContext(ctx, sb.String(), args...)
	return err
}
