// Package models holds Latchkey's GORM models: one struct per table, plain
// fields, no behaviour beyond naming. The schema itself comes from the
// versioned migrations; models never AutoMigrate. A drift test keeps the two
// in step on both dialects.
package models

// All returns one zero value of every model, for schema checks.
func All() []any {
	return []any{
		&Organization{}, &Operator{}, &Membership{}, &App{}, &AppURL{},
		&DataKey{}, &Agent{}, &APIKey{},
		&IdentityProvider{}, &EndUser{}, &EndUserGroup{},
		&ProviderConfig{}, &ManagedSecret{}, &Credential{}, &Grant{}, &Delegation{},
		&ConnectSession{}, &OAuthFlow{},
		&Policy{}, &Approval{},
		&AuditEvent{}, &RequestNonce{}, &WebSession{},
	}
}
