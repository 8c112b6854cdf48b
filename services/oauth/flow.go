package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/bearer"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
)

// stateBytes is the entropy of a flow state: 256 bits, well above the 128
// an unguessable bearer value needs.
const stateBytes = 32

// maxStateLen bounds the state a callback may present before it is hashed.
const maxStateLen = 256

// Start begins an authorization-code flow for one Connect session and
// returns the provider's authorization URL to send the browser to.
//
// The state is 256 random bits; only its SHA-256 is stored. PKCE S256 is
// used whenever the provider requires or supports it, the verifier sealed
// in the flow row. For providers identified by their ID token, a nonce
// derived from the state is sent (and checked by Finish), which needs no
// extra column. The flow is bound to the session, the provider config, the
// browser (BrowserBinding) and the exact redirect URI, and expires after
// the flow TTL (10 minutes).
//
// The session must be the app's, pending and unexpired; when it already
// records a browser binding, StartInput.BrowserBinding must equal it.
func (s *Service) Start(ctx context.Context, in StartInput) (string, error) {
	var v errs.Validation
	appID, ok := ids.Canonical(in.AppID)
	if !ok {
		v.Add("app", "must be an app id (UUID)")
	}
	sessionID, ok := ids.Canonical(in.ConnectSessionID)
	if !ok {
		v.Add("connect_session_id", "must be a connect session id (UUID)")
	}
	if !isHex64(in.BrowserBinding) {
		v.Add("browser_binding", "must be the hex SHA-256 of the browser's Connect cookie")
	}
	if err := v.Err(); err != nil {
		return "", err
	}
	db := s.db.WithContext(ctx)
	var sess models.ConnectSession
	err := db.Select("id", "app_id", "status", "expires_at", "browser_binding_hash").
		Where("id = ? AND app_id = ?", sessionID, appID).Take(&sess).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("connect session: %w", errs.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("oauth: load connect session: %w", err)
	}
	now := s.now().UTC()
	switch {
	case sess.Status != models.ConnectPending:
		return "", errs.Coded(wire.CodeConnectSessionUsed, "the connect session is already %s", sess.Status)
	case !sess.ExpiresAt.After(now):
		return "", errs.Coded(wire.CodeConnectSessionExpired, "the connect session has expired")
	case sess.BrowserBindingHash != "" &&
		subtle.ConstantTimeCompare([]byte(sess.BrowserBindingHash), []byte(in.BrowserBinding)) != 1:
		return "", fmt.Errorf("the connect session is bound to another browser: %w", errs.ErrForbidden)
	}

	cc, err := s.Client(ctx, appID, in.Provider)
	if err != nil {
		return "", err
	}
	flowID, err := ids.New()
	if err != nil {
		return "", err
	}
	state, err := s.newState()
	if err != nil {
		return "", err
	}
	verifier := ""
	sealed := []byte{} // NOT NULL column; empty means "no PKCE" (provider pkce: none)
	if cc.Provider.PKCE == catalog.PKCERequired || cc.Provider.PKCE == catalog.PKCESupported {
		verifier = oauth2.GenerateVerifier()
		if sealed, err = s.seal(ctx, PKCEVerifierBinding(appID, flowID), verifier); err != nil {
			return "", err
		}
	}
	nonce := ""
	if cc.Provider.Identity.EffectiveSource() == catalog.IdentityIDToken {
		nonce = nonceFor(state)
	}
	authURL := authCodeURL(cc, state, verifier, nonce)

	expires := now.Add(s.flowTTL)
	if sess.ExpiresAt.Before(expires) {
		// A flow never outlives its session.
		expires = sess.ExpiresAt
	}
	flow := models.OAuthFlow{ID: flowID, AppID: appID, ConnectSessionID: sessionID, ProviderConfigID: cc.ProviderConfigID,
		StateHash: bearer.Hash(state), PKCEVerifierSealed: sealed, BrowserBindingHash: in.BrowserBinding,
		RedirectURI: cc.RedirectURI, ExpiresAt: expires, CreatedAt: now}
	if err := db.Create(&flow).Error; err != nil {
		return "", fmt.Errorf("oauth: insert flow: %w", err)
	}
	return authURL, nil
}

// newState returns 256 random bits, base64url-encoded.
func (s *Service) newState() (string, error) {
	b := make([]byte, stateBytes)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("oauth: random state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// nonceFor derives the OpenID Connect nonce from the state. It is as
// unguessable as the state, differs from the stored state hash (a separate
// domain), and Finish recomputes it from the state the callback presents.
func nonceFor(state string) string {
	sum := sha256.Sum256([]byte("latchkey-oidc-nonce\x00" + state))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authCodeURL builds the authorization URL with golang.org/x/oauth2. Scopes
// go in the provider's own parameter with its own separator (Slack:
// user_scope, comma separated), so oauth2.Config.Scopes stays empty. The
// extra parameters are applied first: the catalog already refuses extras
// that name a flow parameter, and anything oauth2 sets afterwards wins.
func authCodeURL(cc ClientConfig, state, verifier, nonce string) string {
	p := cc.Provider
	cfg := oauth2.Config{
		ClientID:    cc.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: p.AuthorizeURL},
		RedirectURL: cc.RedirectURI,
	}
	var opts []oauth2.AuthCodeOption
	for _, k := range slices.Sorted(maps.Keys(p.ExtraAuthorizeParams)) {
		opts = append(opts, oauth2.SetAuthURLParam(k, p.ExtraAuthorizeParams[k]))
	}
	if len(cc.Scopes) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam(p.ScopeParamName(), p.JoinScopes(cc.Scopes)))
	}
	if verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	if nonce != "" {
		opts = append(opts, oauth2.SetAuthURLParam("nonce", nonce))
	}
	return cfg.AuthCodeURL(state, opts...)
}

// Finish completes a flow from the provider's callback: it finds the flow
// by the state's hash, checks it belongs to this browser, consumes it
// (single use, atomically), turns a provider error into ErrAccessDenied or
// ErrProviderError, exchanges the code (with the PKCE verifier and the
// exact redirect URI) and identifies the connected account.
//
// Failures are *FlowError values matching this package's sentinels, except
// a provider config that stopped being usable meanwhile
// (provider_not_configured) and internal errors. An unknown state also
// matches errs.ErrNotFound, a used one errs.ErrConflict, another browser's
// errs.ErrForbidden. Once the flow is matched to this browser, a failure
// still returns a Connected naming the flow's AppID, ConnectSessionID and
// ProviderConfigID (no account, no tokens), so the caller can fail that
// session; before that, Connected is empty.
func (s *Service) Finish(ctx context.Context, in FinishInput) (Connected, error) {
	if in.State == "" || len(in.State) > maxStateLen || !isHex64(in.BrowserBinding) {
		return Connected{}, &FlowError{Kind: ErrStateInvalid, Message: "the callback does not belong to a flow of this browser",
			Cause: fmt.Errorf("no usable state or browser binding: %w", errs.ErrNotFound)}
	}
	db := s.db.WithContext(ctx)
	var flows []models.OAuthFlow
	if err := db.Where("state_hash = ?", bearer.Hash(in.State)).Limit(1).Find(&flows).Error; err != nil {
		return Connected{}, fmt.Errorf("oauth: load flow: %w", err)
	}
	if len(flows) == 0 {
		return Connected{}, &FlowError{Kind: ErrStateInvalid, Message: "the state is unknown",
			Cause: fmt.Errorf("flow: %w", errs.ErrNotFound)}
	}
	flow := flows[0]
	// Another browser holding the state (a leaked or planted callback URL)
	// gets nothing and does not consume the flow, so it cannot spoil the
	// real user's attempt either.
	if subtle.ConstantTimeCompare([]byte(flow.BrowserBindingHash), []byte(in.BrowserBinding)) != 1 {
		return Connected{}, &FlowError{Kind: ErrStateInvalid, Message: "the flow was started in another browser",
			Cause: fmt.Errorf("browser binding: %w", errs.ErrForbidden)}
	}
	partial := Connected{AppID: flow.AppID, ConnectSessionID: flow.ConnectSessionID, ProviderConfigID: flow.ProviderConfigID}
	fail := func(kind error, msg string) *FlowError {
		return &FlowError{Kind: kind, Message: msg, AppID: flow.AppID, ConnectSessionID: flow.ConnectSessionID}
	}
	now := s.now().UTC()
	if flow.UsedAt != nil {
		fe := fail(ErrStateInvalid, "the flow was already used")
		fe.Cause = fmt.Errorf("flow: %w", errs.ErrConflict)
		return partial, fe
	}
	if !flow.ExpiresAt.After(now) {
		return partial, fail(ErrFlowExpired, "the flow has expired; start again")
	}
	res := db.Model(&models.OAuthFlow{}).Where("id = ? AND used_at IS NULL", flow.ID).Update("used_at", now)
	if res.Error != nil {
		return partial, fmt.Errorf("oauth: consume flow: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		fe := fail(ErrStateInvalid, "the flow was already used")
		fe.Cause = fmt.Errorf("flow: %w", errs.ErrConflict)
		return partial, fe
	}

	if in.Error != "" {
		kind, msg := ErrProviderError, "the provider reported an error"
		if in.Error == "access_denied" {
			kind, msg = ErrAccessDenied, "access was denied at the provider"
		}
		fe := fail(kind, msg)
		fe.ProviderCode = sanitizeCode(in.Error)
		fe.ProviderDescription = sanitizeText(in.ErrorDescription, 200)
		return partial, fe
	}
	if in.Code == "" {
		return partial, fail(ErrProviderError, "the provider sent neither a code nor an error")
	}

	cc, err := s.ClientByID(ctx, flow.AppID, flow.ProviderConfigID)
	if err != nil {
		return partial, err
	}
	partial.Provider, partial.ProviderName = cc.Provider.ID, cc.Provider.Name
	verifier := ""
	if len(flow.PKCEVerifierSealed) > 0 {
		if verifier, err = s.open(ctx, PKCEVerifierBinding(flow.AppID, flow.ID), flow.PKCEVerifierSealed); err != nil {
			return partial, err
		}
	}
	tr, err := s.exchangeCode(ctx, cc, in.Code, verifier, flow.RedirectURI)
	if err != nil {
		var fe *FlowError
		if errors.As(err, &fe) {
			fe.AppID, fe.ConnectSessionID = flow.AppID, flow.ConnectSessionID
		}
		return partial, err
	}
	nonce := ""
	if cc.Provider.Identity.EffectiveSource() == catalog.IdentityIDToken {
		nonce = nonceFor(in.State)
	}
	account, display, err := s.identify(ctx, cc, tr, nonce)
	if err != nil {
		fe := fail(ErrIdentityFailed, "the connected account could not be identified")
		fe.Cause = err
		return partial, fe
	}
	scopes := tr.grantedScopes()
	if len(scopes) == 0 {
		scopes = slices.Clone(cc.Scopes)
	}
	return Connected{
		AppID: flow.AppID, ConnectSessionID: flow.ConnectSessionID, ProviderConfigID: cc.ProviderConfigID,
		Provider: cc.Provider.ID, ProviderName: cc.Provider.Name,
		AccountIdentifier: account, AccountDisplay: display, Scopes: scopes,
		AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: tr.TokenType, ExpiresAt: tr.ExpiresAt,
	}, nil
}

// DeleteExpiredFlows removes flows that expired more than grace ago (used
// or not). Nothing reads them after expiry; they are kept a little while
// only to tell "expired" from "unknown" in a late callback.
func (s *Service) DeleteExpiredFlows(ctx context.Context, grace time.Duration) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", s.now().UTC().Add(-grace)).Delete(&models.OAuthFlow{})
	if res.Error != nil {
		return 0, fmt.Errorf("oauth: delete expired flows: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// trimScopes splits a scope string on spaces and commas (providers answer
// with their own separator).
func trimScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}
