package identity

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// signingAlgs are the only algorithms a user token may use. Asymmetric
// only: an HMAC token would be keyed with something the verifier can read,
// and "none" is no signature at all. go-jose refuses anything else while
// parsing, before any key is looked at.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.EdDSA,
}

// invalidTokenMessage is all a client learns about why its token failed;
// the reason goes to logs through CodedError.Cause.
const invalidTokenMessage = "the user token is not valid"

// invalidToken builds the one error every verification failure maps to.
// reason and cause must never contain the token.
func invalidToken(reason string, cause error) *errs.CodedError {
	c := errors.New("identity: " + reason)
	if cause != nil {
		c = fmt.Errorf("identity: %s: %w", reason, cause)
	}
	return &errs.CodedError{Code: wire.CodeInvalidUserToken, Message: invalidTokenMessage, Cause: c}
}

type providerEntry struct {
	p       *oidc.Provider
	builtAt time.Time
}

type failure struct {
	at  time.Time
	err error
}

type verifierEntry struct {
	issuer, audience string
	p                *oidc.Provider
	v                *oidc.IDTokenVerifier
}

// discover returns the go-oidc provider for issuer: cached, shared by every
// app using that issuer (so they share one JWKS cache), fetched at most once
// at a time, and not retried within discoveryRetry of a failure.
func (s *Service) discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	now := s.now()
	s.mu.Lock()
	pe := s.providers[issuer]
	fresh := pe != nil && now.Sub(pe.builtAt) < s.providerMaxAge
	f, failed := s.failures[issuer]
	s.mu.Unlock()
	if fresh {
		return pe.p, nil
	}
	if failed && now.Sub(f.at) < s.discoveryRetry && now.Sub(f.at) >= 0 {
		if pe != nil {
			return pe.p, nil // a stale document beats none while the issuer is down
		}
		return nil, f.err
	}
	res, err, _ := s.flights.Do(issuer, func() (any, error) {
		// Detached from the first caller's cancellation: its waiters share
		// the result. Bounded by its own timeout instead.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.discoveryTimeout)
		defer cancel()
		p, err := oidc.NewProvider(oidc.ClientContext(dctx, s.client), issuer)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			err = fmt.Errorf("discovery for %s: %w", issuer, err)
			s.failures[issuer] = failure{at: s.now(), err: err}
			return nil, err
		}
		delete(s.failures, issuer)
		s.providers[issuer] = &providerEntry{p: p, builtAt: s.now()}
		return p, nil
	})
	if err != nil {
		if pe != nil {
			return pe.p, nil
		}
		return nil, err
	}
	return res.(*oidc.Provider), nil
}

// verifier returns the app's verifier, rebuilt whenever its issuer,
// audience or discovery document changed.
func (s *Service) verifier(ctx context.Context, cfg *idpConfig) (*oidc.IDTokenVerifier, error) {
	p, err := s.discover(ctx, cfg.Issuer)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ve := s.verifiers[cfg.AppID]; ve != nil && ve.p == p && ve.issuer == cfg.Issuer && ve.audience == cfg.Audience {
		return ve.v, nil
	}
	v := p.Verifier(&oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: signingAlgs,
		// exp and nbf are checked below with a leeway of our choosing:
		// go-oidc's exp check has none, its nbf check allows five minutes.
		SkipExpiryCheck: true,
	})
	s.verifiers[cfg.AppID] = &verifierEntry{issuer: cfg.Issuer, audience: cfg.Audience, p: p, v: v}
	return v, nil
}

// Verify checks an end user's JWT against the app's identity provider and
// returns the end user, created or updated just in time from its claims.
//
// Every problem with the token (signature, algorithm, issuer, audience,
// expiry, nbf, missing user claim, malformed groups claim, an unreachable
// issuer, an app without an IdP) is a *errs.CodedError with code
// invalid_user_token and a generic message; the reason is in its Cause, for
// logs. A database failure is returned as an ordinary error (internal).
// A disabled user verifies: check EndUser.Status before acting for them.
func (s *Service) Verify(ctx context.Context, appID, rawJWT string) (EndUser, error) {
	if rawJWT == "" {
		return EndUser{}, invalidToken("empty token", nil)
	}
	if len(rawJWT) > MaxTokenBytes {
		return EndUser{}, invalidToken(fmt.Sprintf("token longer than %d bytes", MaxTokenBytes), nil)
	}
	if _, err := uuid.Parse(appID); err != nil {
		return EndUser{}, errs.Coded(wire.CodeInvalidUserToken, "app has no identity provider")
	}
	cfg, err := s.config(ctx, appID)
	if err != nil {
		return EndUser{}, err
	}
	if cfg == nil {
		return EndUser{}, errs.Coded(wire.CodeInvalidUserToken, "app has no identity provider")
	}
	v, err := s.verifier(ctx, cfg)
	if err != nil {
		return EndUser{}, invalidToken("identity provider unavailable", err)
	}
	tok, err := v.Verify(ctx, rawJWT)
	if err != nil {
		if ctx.Err() != nil {
			return EndUser{}, ctx.Err()
		}
		return EndUser{}, invalidToken("verification failed", err)
	}
	now := s.now()
	if tok.Expiry.IsZero() {
		return EndUser{}, invalidToken("token has no exp", nil)
	}
	if !now.Before(tok.Expiry.Add(s.leeway)) {
		return EndUser{}, invalidToken("token expired", nil)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return EndUser{}, invalidToken("claims do not decode", err)
	}
	if raw, ok := claims["nbf"]; ok {
		nbf, ok := raw.(float64)
		if !ok || math.IsNaN(nbf) || math.IsInf(nbf, 0) {
			return EndUser{}, invalidToken("nbf is not a number", nil)
		}
		// Compared as floats: a huge nbf must not overflow into the past.
		if nbf > float64(now.Add(s.leeway).Unix()) {
			return EndUser{}, invalidToken("token not yet valid (nbf)", nil)
		}
	}

	subject, ok := claimString(claims, cfg.UserClaim)
	if !ok || subject == "" {
		return EndUser{}, invalidToken(fmt.Sprintf("user claim %q missing or not a string", cfg.UserClaim), nil)
	}
	if len(subject) > MaxSubjectLen {
		return EndUser{}, invalidToken(fmt.Sprintf("user claim longer than %d characters", MaxSubjectLen), nil)
	}
	groups, err := groupsFrom(claims, cfg.GroupsClaim)
	if err != nil {
		return EndUser{}, invalidToken("groups claim", err)
	}
	email, _ := claimString(claims, "email")
	name, _ := claimString(claims, "name")
	if name == "" {
		name, _ = claimString(claims, "preferred_username")
	}
	return s.provision(ctx, cfg, profile{
		subject: subject, email: truncate(email, maxEmailLen), name: truncate(name, maxDisplayLen), groups: groups,
	})
}

// lookupClaim finds a claim by its exact name first (Auth0's namespaced
// claims are URLs full of dots), then as a dotted path into nested objects
// (Keycloak's realm_access.roles).
func lookupClaim(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func claimString(claims map[string]any, name string) (string, bool) {
	v, ok := lookupClaim(claims, name)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return strings.TrimSpace(s), ok
}

// groupsFrom reads the groups claim: an array of strings or one string.
// Absent (or no claim configured) means no groups, so stale memberships are
// removed: a user's groups are always those of their latest token. Any
// other shape is refused rather than guessed at.
func groupsFrom(claims map[string]any, claim string) ([]string, error) {
	if claim == "" {
		return nil, nil
	}
	raw, ok := lookupClaim(claims, claim)
	if !ok || raw == nil {
		return nil, nil
	}
	var names []string
	switch v := raw.(type) {
	case string:
		names = []string{v}
	case []any:
		if len(v) > MaxGroups {
			return nil, fmt.Errorf("more than %d groups", MaxGroups)
		}
		for _, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, fmt.Errorf("%q has a non-string entry", claim)
			}
			names = append(names, s)
		}
	default:
		return nil, fmt.Errorf("%q is neither a string nor an array of strings", claim)
	}
	out := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		if len(n) > MaxGroupNameLen {
			return nil, fmt.Errorf("a group name is longer than %d characters", MaxGroupNameLen)
		}
		seen[n] = true
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the stored text stays valid UTF-8.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
