package vault

// SealedColumn names one secret-bearing column: every value in it is a vault
// ciphertext bound to (app id, table, row id, column).
type SealedColumn struct {
	Table       string
	Column      string
	RowIDColumn string
	AppIDColumn string
}

// sealedColumns is the immutable registry. Seal and Open refuse any other
// (table, column): Rotate re-encrypts exactly these columns before it deletes
// an old data-key version, so a ciphertext stored anywhere else would be
// silently orphaned by a rotation.
var sealedColumns = [...]SealedColumn{
	{Table: "api_keys", Column: "signing_key_ciphertext", RowIDColumn: "id", AppIDColumn: "app_id"},
	{Table: "identity_providers", Column: "client_secret_ciphertext", RowIDColumn: "id", AppIDColumn: "app_id"},
	{Table: "provider_configs", Column: "client_secret_ciphertext", RowIDColumn: "id", AppIDColumn: "app_id"},
	{Table: "credentials", Column: "access_token_ciphertext", RowIDColumn: "id", AppIDColumn: "app_id"},
	{Table: "credentials", Column: "refresh_token_ciphertext", RowIDColumn: "id", AppIDColumn: "app_id"},
	{Table: "oauth_flows", Column: "pkce_verifier_sealed", RowIDColumn: "id", AppIDColumn: "app_id"},
	{Table: "approvals", Column: "request_sealed", RowIDColumn: "id", AppIDColumn: "app_id"},
	{Table: "approvals", Column: "result_sealed", RowIDColumn: "id", AppIDColumn: "app_id"},
}

// SealedColumns returns every secret-bearing column (a fresh copy, so callers
// cannot change the registry).
func SealedColumns() []SealedColumn {
	out := make([]SealedColumn, len(sealedColumns))
	copy(out, sealedColumns[:])
	return out
}

func isSealedColumn(table, column string) bool {
	for _, c := range sealedColumns {
		if c.Table == table && c.Column == column {
			return true
		}
	}
	return false
}
