-- Every SDK call writes an audit_events row, and each index the row lands in
-- is one more B-tree page per commit. audit_events_grant_idx is used by no
-- query (audit rows are listed by app and time), so it goes; an index for a
-- per-grant history can come back with the page that reads it.

-- +goose Up
DROP INDEX audit_events_grant_idx;

-- +goose Down
CREATE INDEX audit_events_grant_idx ON audit_events (grant_id, occurred_at);
