-- Revoking the last grant on an OAuth credential deletes the credential
-- (DESIGN.md §6). The grants that pointed at it are history (revoked rows the
-- wallet, the portal and the audit trail still show), so deleting the
-- credential must not delete them: credential_id becomes nullable and the
-- foreign key sets it to NULL instead of cascading.

-- +goose Up
ALTER TABLE grants ALTER COLUMN credential_id DROP NOT NULL;
ALTER TABLE grants DROP CONSTRAINT grants_credential_id_fkey;
ALTER TABLE grants ADD CONSTRAINT grants_credential_id_fkey
    FOREIGN KEY (credential_id) REFERENCES credentials (id) ON DELETE SET NULL;

-- +goose Down
-- Grants whose credential is gone cannot satisfy NOT NULL again; they are
-- revoked history and go (with their delegations and approvals).
DELETE FROM grants WHERE credential_id IS NULL;
ALTER TABLE grants DROP CONSTRAINT grants_credential_id_fkey;
ALTER TABLE grants ADD CONSTRAINT grants_credential_id_fkey
    FOREIGN KEY (credential_id) REFERENCES credentials (id) ON DELETE CASCADE;
ALTER TABLE grants ALTER COLUMN credential_id SET NOT NULL;
