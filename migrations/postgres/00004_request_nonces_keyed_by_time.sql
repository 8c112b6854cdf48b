-- A request's replay identity is (key id, timestamp, nonce): the timestamp
-- is signed, so every replay of a request repeats it (docs/sdk-protocol.md,
-- "Replay refusal"). Keying request_nonces by expires_at first (the
-- timestamp plus a fixed retention) instead of by (key_id, nonce) puts the
-- rows of a batch side by side at the right edge of the index instead of on
-- as many random pages as it has rows (each of which, first touched after a
-- checkpoint, costs a full page image in the WAL), and lets the sweep delete
-- a range of that same key instead of needing an index of its own.
--
-- A replica still running an older binary fails every signed request after
-- this migration (its INSERT names the old key): stop old replicas before
-- the first new one starts (docs/architecture.md, "Upgrading replicas").

-- +goose Up
ALTER TABLE request_nonces DROP CONSTRAINT request_nonces_pkey;
ALTER TABLE request_nonces ADD PRIMARY KEY (expires_at, key_id, nonce);
DROP INDEX request_nonces_expires_idx;

-- +goose Down
-- The old key is narrower: of rows sharing (key_id, nonce), the one kept
-- longest stays.
DELETE FROM request_nonces a USING request_nonces b
WHERE a.key_id = b.key_id AND a.nonce = b.nonce AND a.expires_at < b.expires_at;
CREATE INDEX request_nonces_expires_idx ON request_nonces (expires_at);
ALTER TABLE request_nonces DROP CONSTRAINT request_nonces_pkey;
ALTER TABLE request_nonces ADD PRIMARY KEY (key_id, nonce);
