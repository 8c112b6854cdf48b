// Package audit writes and reads Latchkey's append-only audit trail
// (DESIGN.md §3.9). A change of access writes its row in the same
// transaction as the change, so neither exists without the other.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
)

// Actions recorded for changes of access.
const (
	ActionKeyMint        = "key.mint"
	ActionKeyDeprecate   = "key.deprecate"
	ActionKeyRevoke      = "key.revoke"
	ActionAgentCreate    = "agent.create"
	ActionAppCreate      = "app.create"
	ActionAppURLs        = "app.urls"
	ActionOperatorCreate = "operator.create"
)

// Actor kinds.
const (
	ActorCLI      = "cli"
	ActorOperator = "operator"
	ActorKey      = "key"
	ActorEndUser  = "end_user"
	ActorSystem   = "system"
)

// MaxContextBytes bounds the JSON context stored per row.
const MaxContextBytes = 2048

// Log reads and writes audit rows.
type Log struct {
	db  *gorm.DB
	now func() time.Time
}

// New builds a Log over db.
func New(db *gorm.DB, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{db: db, now: now}
}

// Prepare fills the id and time of an event.
func (l *Log) Prepare(ev *models.AuditEvent) error {
	if ev.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("audit: id: %w", err)
		}
		ev.ID = id.String()
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = l.now().UTC()
	}
	if ev.Context == "" {
		ev.Context = "{}"
	}
	if ev.Outcome == "" {
		ev.Outcome = models.OutcomeSuccess
	}
	sanitize(ev)
	return nil
}

// Bounds of free-text audit fields (bytes).
const (
	maxFieldBytes  = 255
	maxPathBytes   = 512
	maxReasonBytes = 1000
)

// sanitize makes every string of a row storable: valid UTF-8, no NUL (which
// PostgreSQL text refuses), cut on a rune boundary. Callers put text in
// rows that came from requests (reason, path, ids from URLs); without this
// one hostile byte would make the row unwritable — failing the call after
// the credential was used, and every other call batched with it.
func sanitize(ev *models.AuditEvent) {
	for _, f := range []struct {
		p   *string
		max int
	}{
		{&ev.OrganizationID, maxFieldBytes}, {&ev.AppID, maxFieldBytes}, {&ev.Action, maxFieldBytes},
		{&ev.ActorKind, maxFieldBytes}, {&ev.ActorID, maxFieldBytes}, {&ev.KeyID, maxFieldBytes},
		{&ev.AgentID, maxFieldBytes}, {&ev.Caller, maxFieldBytes}, {&ev.PrincipalKind, maxFieldBytes},
		{&ev.PrincipalID, maxFieldBytes}, {&ev.GrantID, maxFieldBytes}, {&ev.Provider, maxFieldBytes},
		{&ev.Method, maxFieldBytes}, {&ev.Host, maxFieldBytes}, {&ev.Path, maxPathBytes},
		{&ev.ErrorCode, maxFieldBytes}, {&ev.Reason, maxReasonBytes}, {&ev.Context, MaxContextBytes},
		{&ev.RequestID, maxFieldBytes},
	} {
		*f.p = cleanText(*f.p, f.max)
	}
}

// cleanText returns s as valid UTF-8 without NUL bytes, at most max bytes,
// cut on a rune boundary.
func cleanText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// InTx writes ev inside the caller's transaction.
func (l *Log) InTx(ctx context.Context, tx *gorm.DB, ev models.AuditEvent) error {
	if err := l.Prepare(&ev); err != nil {
		return err
	}
	if err := tx.WithContext(ctx).Create(&ev).Error; err != nil {
		return fmt.Errorf("audit: write: %w", err)
	}
	return nil
}

// Write writes one event on its own.
func (l *Log) Write(ctx context.Context, ev models.AuditEvent) error {
	return l.InTx(ctx, l.db, ev)
}

// EncodeContext renders a context map as JSON bounded to MaxContextBytes;
// entries that do not fit are dropped and flagged.
func EncodeContext(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	// Keys in order, so which entries survive the bound does not depend on
	// map iteration order: the same context always stores the same row.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]string{}
	size := 2
	for _, k := range keys {
		v := m[k]
		if len(k) > 64 {
			k = k[:64]
		}
		if len(v) > 256 {
			v = v[:256]
		}
		add := len(k) + len(v) + 6
		if size+add > MaxContextBytes-32 {
			out["_truncated"] = "true"
			continue
		}
		out[k] = v
		size += add
	}
	b, err := json.Marshal(out)
	if err != nil || len(b) > MaxContextBytes {
		return `{"_truncated":"true"}`
	}
	return string(b)
}

// Query selects audit rows of one app, newest first.
type Query struct {
	AppID  string
	Limit  int
	Before string // event id cursor (ids sort by time)
}

// List returns events matching q.
func (l *Log) List(ctx context.Context, q Query) ([]models.AuditEvent, error) {
	limit := q.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	tx := l.db.WithContext(ctx).Where("app_id = ?", q.AppID)
	if q.Before != "" {
		tx = tx.Where("id < ?", q.Before)
	}
	var out []models.AuditEvent
	if err := tx.Order("occurred_at DESC, id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}

// EventJSON renders an event for the CLI and the API with snake_case keys.
func EventJSON(ev models.AuditEvent) map[string]any {
	var ctxMap map[string]string
	_ = json.Unmarshal([]byte(ev.Context), &ctxMap)
	return map[string]any{
		"id": ev.ID, "occurred_at": ev.OccurredAt.UTC().Format(time.RFC3339Nano), "app_id": ev.AppID,
		"action": ev.Action, "actor_kind": ev.ActorKind, "actor_id": ev.ActorID, "key_id": ev.KeyID,
		"agent_id": ev.AgentID, "caller": ev.Caller, "principal_kind": ev.PrincipalKind,
		"principal_id": ev.PrincipalID, "grant_id": ev.GrantID, "provider": ev.Provider,
		"method": ev.Method, "host": ev.Host, "path": ev.Path, "upstream_status": ev.UpstreamStatus,
		"latency_ms": ev.LatencyMS, "outcome": ev.Outcome, "error_code": ev.ErrorCode,
		"reason": ev.Reason, "context": ctxMap, "request_id": ev.RequestID,
	}
}
