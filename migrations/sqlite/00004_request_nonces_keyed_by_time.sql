-- A request's replay identity is (key id, timestamp, nonce): the timestamp
-- is signed, so every replay of a request repeats it (docs/sdk-protocol.md,
-- "Replay refusal"). Keying request_nonces by expires_at first (the
-- timestamp plus a fixed retention) instead of by (key_id, nonce) puts the
-- rows of a batch side by side at the end of one B-tree instead of on as
-- many random leaves as it has rows, and lets the sweep delete a range of
-- that same key instead of needing an index of its own. On the proxy
-- benchmark this was the largest single cost of a call after the audit row.
--
-- WITHOUT ROWID makes the primary key the table: one B-tree in all.
-- SQLite cannot change a table's key in place
-- (https://sqlite.org/lang_altertable.html#otheralter): the table is
-- rebuilt with its rows, so a request signed just before the migration
-- still cannot be replayed just after it.

-- +goose Up
CREATE TABLE request_nonces_new (
    expires_at datetime NOT NULL,
    key_id     text NOT NULL,
    nonce      text NOT NULL,
    PRIMARY KEY (expires_at, key_id, nonce)
) WITHOUT ROWID;
INSERT INTO request_nonces_new (expires_at, key_id, nonce)
SELECT expires_at, key_id, nonce FROM request_nonces;
DROP TABLE request_nonces;
ALTER TABLE request_nonces_new RENAME TO request_nonces;

-- +goose Down
-- The old key is narrower: of rows sharing (key_id, nonce), the one kept
-- longest stays.
CREATE TABLE request_nonces_old (
    key_id     text NOT NULL,
    nonce      text NOT NULL,
    expires_at datetime NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
INSERT INTO request_nonces_old (key_id, nonce, expires_at)
SELECT key_id, nonce, max(expires_at) FROM request_nonces GROUP BY key_id, nonce;
DROP TABLE request_nonces;
ALTER TABLE request_nonces_old RENAME TO request_nonces;
CREATE INDEX request_nonces_expires_idx ON request_nonces (expires_at);
