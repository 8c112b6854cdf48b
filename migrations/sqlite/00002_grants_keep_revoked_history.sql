-- Revoking the last grant on an OAuth credential deletes the credential
-- (DESIGN.md §6). The grants that pointed at it are history (revoked rows the
-- wallet, the portal and the audit trail still show), so deleting the
-- credential must not delete them: credential_id becomes nullable and the
-- foreign key sets it to NULL instead of cascading.
--
-- SQLite cannot alter a column's constraints, so grants is rebuilt
-- (https://sqlite.org/lang_altertable.html#otheralter). Foreign keys must be
-- off while the old table is dropped: with them on, DROP TABLE deletes every
-- row first and the cascades would delete all delegations and approvals.
-- PRAGMA foreign_keys is a no-op inside a transaction, hence NO TRANSACTION
-- with an explicit one; goose runs these statements on one connection.

-- +goose NO TRANSACTION
-- +goose Up
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE grants_new (
    id                 text NOT NULL PRIMARY KEY,
    app_id             text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    credential_id      text REFERENCES credentials (id) ON DELETE SET NULL,
    principal_kind     text NOT NULL CHECK (principal_kind IN ('user', 'group', 'system', 'agent')),
    principal_id       text NOT NULL DEFAULT '',
    provider           text NOT NULL,
    managed_secret_id  text REFERENCES managed_secrets (id) ON DELETE CASCADE,
    account_identifier text NOT NULL DEFAULT '',
    status             text NOT NULL CHECK (status IN ('active', 'expired', 'revoked', 'needs_reauth')),
    scopes             text NOT NULL DEFAULT '',
    metadata           text NOT NULL DEFAULT '{}',
    expires_at         datetime,
    last_used_at       datetime,
    revoked_at         datetime,
    created_at         datetime NOT NULL,
    updated_at         datetime NOT NULL
);
INSERT INTO grants_new (id, app_id, credential_id, principal_kind, principal_id, provider, managed_secret_id,
    account_identifier, status, scopes, metadata, expires_at, last_used_at, revoked_at, created_at, updated_at)
SELECT id, app_id, credential_id, principal_kind, principal_id, provider, managed_secret_id,
    account_identifier, status, scopes, metadata, expires_at, last_used_at, revoked_at, created_at, updated_at
FROM grants;
DROP TABLE grants;
ALTER TABLE grants_new RENAME TO grants;
CREATE INDEX grants_resolution_idx ON grants (app_id, principal_kind, principal_id, provider, status);
CREATE INDEX grants_credential_idx ON grants (credential_id);
COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
-- Grants whose credential is gone cannot satisfy NOT NULL again; they are
-- revoked history and go (with their delegations and approvals, deleted
-- by hand because the cascades are off).
DELETE FROM delegations WHERE grant_id IN (SELECT id FROM grants WHERE credential_id IS NULL);
DELETE FROM approvals WHERE grant_id IN (SELECT id FROM grants WHERE credential_id IS NULL);
CREATE TABLE grants_old (
    id                 text NOT NULL PRIMARY KEY,
    app_id             text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    credential_id      text NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    principal_kind     text NOT NULL CHECK (principal_kind IN ('user', 'group', 'system', 'agent')),
    principal_id       text NOT NULL DEFAULT '',
    provider           text NOT NULL,
    managed_secret_id  text REFERENCES managed_secrets (id) ON DELETE CASCADE,
    account_identifier text NOT NULL DEFAULT '',
    status             text NOT NULL CHECK (status IN ('active', 'expired', 'revoked', 'needs_reauth')),
    scopes             text NOT NULL DEFAULT '',
    metadata           text NOT NULL DEFAULT '{}',
    expires_at         datetime,
    last_used_at       datetime,
    revoked_at         datetime,
    created_at         datetime NOT NULL,
    updated_at         datetime NOT NULL
);
INSERT INTO grants_old (id, app_id, credential_id, principal_kind, principal_id, provider, managed_secret_id,
    account_identifier, status, scopes, metadata, expires_at, last_used_at, revoked_at, created_at, updated_at)
SELECT id, app_id, credential_id, principal_kind, principal_id, provider, managed_secret_id,
    account_identifier, status, scopes, metadata, expires_at, last_used_at, revoked_at, created_at, updated_at
FROM grants WHERE credential_id IS NOT NULL;
DROP TABLE grants;
ALTER TABLE grants_old RENAME TO grants;
CREATE INDEX grants_resolution_idx ON grants (app_id, principal_kind, principal_id, provider, status);
CREATE INDEX grants_credential_idx ON grants (credential_id);
COMMIT;
PRAGMA foreign_keys = ON;
