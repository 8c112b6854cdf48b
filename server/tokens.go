package server

import (
	"context"

	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/tokens"
)

// grantTokens adapts the token service to what grants consumes; grants
// cannot import tokens (tokens → oauth → grants would be a cycle).
type grantTokens struct{ t *tokens.Service }

func (g grantTokens) AccessToken(ctx context.Context, appID, credentialID string) (grants.Token, error) {
	tok, err := g.t.AccessToken(ctx, appID, credentialID, false)
	return grants.Token{Value: tok.Value, Type: tok.Type, ExpiresAt: tok.ExpiresAt, Version: tok.Version}, err
}

func (g grantTokens) ForceAfter(ctx context.Context, appID, credentialID string, seenVersion int64) (grants.Token, error) {
	tok, err := g.t.ForceAfter(ctx, appID, credentialID, seenVersion)
	return grants.Token{Value: tok.Value, Type: tok.Type, ExpiresAt: tok.ExpiresAt, Version: tok.Version}, err
}

func (g grantTokens) RevokeCredential(ctx context.Context, appID, credentialID string) error {
	return g.t.RevokeCredential(ctx, appID, credentialID)
}
