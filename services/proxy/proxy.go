// Package proxy carries out a proxied SDK call (DESIGN.md §4.6): it
// identifies the end user when a user token is present, resolves the grant
// (§4.7), opens its credential, checks the target against the credential's
// allowed hosts, and hands the call to egress with the credential injected.
// Retrieve mode (POST /sdk/v1/token) shares the same path up to the
// credential.
package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"

	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// Limits of a proxy request.
const (
	MaxTimeout     = 120 * time.Second
	MaxReasonBytes = 500
	MaxContextKeys = 32
)

// Identity verifies end-user JWTs.
type Identity interface {
	Verify(ctx context.Context, appID, rawJWT string) (identity.EndUser, error)
}

// Grants resolves grants and opens their credentials.
type Grants interface {
	Resolve(ctx context.Context, in grants.ResolveInput) (grants.Resolved, error)
	Secret(ctx context.Context, r grants.Resolved) (grants.Credential, error)
	Refreshed(ctx context.Context, r grants.Resolved, used grants.Credential) (grants.Credential, error)
}

// Egress makes the outbound call.
type Egress interface {
	Do(ctx context.Context, call egress.Call) (*egress.Response, error)
	MaxRequestBytes() int64
}

// Providers resolves the provider behind an OAuth grant's provider config
// (catalog entry or custom definition, tenant params substituted), for its
// API hosts and injection rule.
type Providers interface {
	ProviderByID(ctx context.Context, appID, providerConfigID string) (catalog.Provider, error)
}

// Service runs proxied calls.
type Service struct {
	db        *gorm.DB
	identity  Identity
	grants    Grants
	egress    Egress
	providers Providers
	cache     *Cache
}

// New builds the service. cache may be nil (no caching).
func New(db *gorm.DB, id Identity, g Grants, e Egress, p Providers, cache *Cache) *Service {
	return &Service{db: db, identity: id, grants: g, egress: e, providers: p, cache: cache}
}

// Info is what a call learned on the way, for its audit row. It is filled
// progressively, so a refused call still records how far it got.
type Info struct {
	GrantID       string
	Provider      string
	PrincipalKind string
	PrincipalID   string
	Host          string
	Path          string // upstream path, never the query string
	Reason        string
	Context       map[string]string
}

// Selection picks a grant.
type Selection struct {
	GrantID, Provider, Account string
}

// check adds the selection's shape errors to v, so that a request hears
// about them together with its other field errors, before anything is
// resolved. grants.Resolve enforces the same rules as its own contract.
func (sel Selection) check(v *errs.Validation) {
	switch {
	case sel.GrantID == "" && sel.Provider == "":
		v.Add("grant_id", "give grant_id or provider")
	case sel.GrantID != "" && sel.Provider != "":
		v.Add("grant_id", "give grant_id or provider, not both")
	case sel.Account != "" && sel.Provider == "":
		v.Add("account", "narrows provider; it needs provider")
	}
}

// authorized is a resolved grant with its open credential, ready to inject.
type authorized struct {
	resolved   grants.Resolved
	credential grants.Credential
	allowed    egress.AllowList
	injection  egress.Injection
}

func (s *Service) authorize(ctx context.Context, caller sdkauth.Caller, sel Selection, info *Info) (authorized, error) {
	a, _, err := s.authorizeKeyed(ctx, caller, sel, info)
	return a, err
}

// authorizeKeyed is authorize that also returns the cache key, so a caller
// that refreshes the credential can update the cached entry.
func (s *Service) authorizeKeyed(ctx context.Context, caller sdkauth.Caller, sel Selection, info *Info) (authorized, string, error) {
	key := cacheKey(caller.AppID, caller.AgentID, caller.Impersonating, caller.UserToken, sel)
	if a, ok := s.cache.get(key); ok {
		// A token must still be valid (unexpired) for its cached result to
		// apply: identity verification is cheap when cached and never skipped.
		if caller.UserToken != "" {
			if _, err := s.identity.Verify(ctx, caller.AppID, caller.UserToken); err != nil {
				return authorized{}, key, err
			}
		}
		a.fill(info)
		return a, key, nil
	}
	gen := s.cache.generation()
	a, err := s.resolve(ctx, caller, sel, info)
	if err != nil {
		return authorized{}, key, err
	}
	s.cache.put(key, gen, a)
	return a, key, nil
}

func (a authorized) fill(info *Info) {
	info.GrantID, info.Provider = a.resolved.Grant.ID, a.resolved.Grant.Provider
	info.PrincipalKind, info.PrincipalID = a.resolved.Grant.PrincipalKind, a.resolved.Grant.PrincipalID
}

func (s *Service) resolve(ctx context.Context, caller sdkauth.Caller, sel Selection, info *Info) (authorized, error) {
	var endUser *grants.EndUser
	if caller.UserToken != "" {
		u, err := s.identity.Verify(ctx, caller.AppID, caller.UserToken)
		if err != nil {
			return authorized{}, err
		}
		endUser = &grants.EndUser{ID: u.ID, AppID: u.AppID, Subject: u.Subject, Groups: u.Groups, Status: u.Status}
		info.PrincipalKind, info.PrincipalID = models.PrincipalUser, u.ID
	}
	res, err := s.grants.Resolve(ctx, grants.ResolveInput{Caller: caller, EndUser: endUser,
		GrantID: sel.GrantID, Provider: sel.Provider, Account: sel.Account})
	if err != nil {
		return authorized{}, err
	}
	info.GrantID, info.Provider = res.Grant.ID, res.Grant.Provider
	info.PrincipalKind, info.PrincipalID = res.Grant.PrincipalKind, res.Grant.PrincipalID
	cred, err := s.grants.Secret(ctx, res)
	if err != nil {
		return authorized{}, err
	}
	hosts := cred.AllowedHosts
	injection := cred.Injection
	if res.Credential.Kind == models.CredentialOAuth {
		p, err := s.providers.ProviderByID(ctx, res.Grant.AppID, res.Credential.ProviderConfigID)
		if err != nil {
			// A grant whose provider can no longer be resolved goes nowhere:
			// egress is closed by default.
			return authorized{}, err
		}
		hosts = p.APIHosts
		// The catalog writes its templates with {token}; egress's
		// placeholder is {secret}.
		injection = strings.ReplaceAll(p.Injection(), "{token}", egress.Placeholder)
	}
	// Stored hosts and templates were validated when written: a failure here
	// is Latchkey's own fault (corruption, a catalog change), never the
	// caller's, so it fails closed as internal.
	allowed, err := egress.ParseAllowList(hosts)
	if err != nil {
		return authorized{}, &errs.CodedError{Code: wire.CodeInternal, Message: "the grant's allowed hosts are unusable",
			Cause: fmt.Errorf("proxy: allowed hosts of grant %s: %w", res.Grant.ID, err)}
	}
	inj, err := egress.ParseInjection(injection)
	if err != nil {
		return authorized{}, &errs.CodedError{Code: wire.CodeInternal, Message: "the grant's injection rule is unusable",
			Cause: fmt.Errorf("proxy: injection of grant %s: %w", res.Grant.ID, err)}
	}
	return authorized{resolved: res, credential: cred, allowed: allowed, injection: inj}, nil
}

// Proxy validates req, authorizes it and makes the upstream call. The
// caller must close the response body.
func (s *Service) Proxy(ctx context.Context, caller sdkauth.Caller, req wire.ProxyRequest, info *Info) (*egress.Response, error) {
	body, contentType, err := s.validate(req, info)
	if err != nil {
		return nil, err
	}
	a, key, err := s.authorizeKeyed(ctx, caller, Selection{GrantID: req.GrantID, Provider: req.Provider, Account: req.Account}, info)
	if err != nil {
		return nil, err
	}
	// egress.Do checks the target against the allow-list before anything is
	// resolved or sent.
	call := egress.Call{
		Method:       req.Method,
		URL:          req.URL,
		Header:       req.Headers,
		ContentType:  contentType,
		Timeout:      time.Duration(req.TimeoutMS) * time.Millisecond,
		AllowedHosts: a.allowed,
		Injection:    a.injection,
		Secret:       egress.Secret(a.credential.AccessToken),
	}
	if body != nil {
		call.Body, call.ContentLength = bytes.NewReader(body), int64(len(body))
	}
	resp, err := s.egress.Do(ctx, call)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || a.resolved.Credential.Kind != models.CredentialOAuth {
		return resp, err
	}
	// The provider refused the token: one forced refresh and one retry,
	// never more (DESIGN.md §6). The refresh happens only if nobody else
	// refreshed since this token was read.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	gen := s.cache.generation()
	fresh, err := s.grants.Refreshed(ctx, a.resolved, a.credential)
	if err != nil {
		return nil, err
	}
	// The cached entry held the refused token: later calls use the new one
	// (and, should it be refused too, force a refresh past it).
	a.credential = fresh
	s.cache.put(key, gen, a)
	call.Secret = egress.Secret(fresh.AccessToken)
	if body != nil {
		call.Body = bytes.NewReader(body)
	}
	return s.egress.Do(ctx, call)
}

// validate checks the request's shape and records its audit fields.
func (s *Service) validate(req wire.ProxyRequest, info *Info) (body []byte, contentType string, err error) {
	var v errs.Validation
	info.Reason, info.Context = req.Reason, req.Context
	if u, perr := url.Parse(req.URL); perr == nil {
		info.Host, info.Path = u.Hostname(), u.EscapedPath()
	}
	if strings.TrimSpace(req.Method) == "" {
		v.Add("method", "is required")
	}
	if strings.TrimSpace(req.URL) == "" {
		v.Add("url", "is required")
	}
	Selection{GrantID: req.GrantID, Provider: req.Provider, Account: req.Account}.check(&v)
	hasJSON := len(bytes.TrimSpace(req.JSON)) > 0
	if hasJSON && req.BodyBase64 != "" {
		v.Add("json", "give json or body_base64, not both")
	}
	if req.TimeoutMS < 0 || time.Duration(req.TimeoutMS)*time.Millisecond > MaxTimeout {
		v.Add("timeout_ms", "must be between 0 and %d", MaxTimeout.Milliseconds())
	}
	if len(req.Reason) > MaxReasonBytes {
		v.Add("reason", "must be at most %d bytes", MaxReasonBytes)
	}
	if !utf8.ValidString(req.Reason) || strings.ContainsFunc(req.Reason, unicode.IsControl) {
		v.Add("reason", "must be text without control characters")
	}
	if len(req.Context) > MaxContextKeys {
		v.Add("context", "must have at most %d entries", MaxContextKeys)
	}
	switch {
	case hasJSON:
		body, contentType = []byte(req.JSON), "application/json"
	case req.BodyBase64 != "":
		b, derr := base64.StdEncoding.DecodeString(req.BodyBase64)
		if derr != nil {
			v.Add("body_base64", "is not valid standard base64")
		}
		body = b
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	if int64(len(body)) > s.egress.MaxRequestBytes() {
		return nil, "", errs.Coded(wire.CodePayloadTooLarge, "the upstream request body is over the limit")
	}
	return body, contentType, nil
}

// Token answers retrieve mode: the access token and how to inject it, only
// for apps that enabled it (off by default).
func (s *Service) Token(ctx context.Context, caller sdkauth.Caller, req wire.TokenRequest, info *Info) (wire.TokenResponse, error) {
	info.Reason, info.Context = req.Reason, req.Context
	var app models.App
	if err := s.db.WithContext(ctx).Select("retrieve_mode_enabled").Where("id = ?", caller.AppID).Take(&app).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return wire.TokenResponse{}, errs.ErrNotFound
		}
		return wire.TokenResponse{}, fmt.Errorf("proxy: load app: %w", err)
	}
	if !app.RetrieveModeEnabled {
		return wire.TokenResponse{}, errs.Coded(wire.CodeForbidden, "retrieve mode is off for this app; use the proxy, or ask an operator to enable it")
	}
	sel := Selection{GrantID: req.GrantID, Provider: req.Provider, Account: req.Account}
	var v errs.Validation
	sel.check(&v)
	if err := v.Err(); err != nil {
		return wire.TokenResponse{}, err
	}
	a, err := s.authorize(ctx, caller, sel, info)
	if err != nil {
		return wire.TokenResponse{}, err
	}
	out := wire.TokenResponse{
		AccessToken: a.credential.AccessToken,
		TokenType:   a.credential.TokenType,
		ExpiresAt:   a.credential.ExpiresAt,
		GrantID:     a.resolved.Grant.ID,
		Injection:   wireInjection(a.injection),
	}
	if out.TokenType == "" {
		out.TokenType = "Bearer"
	}
	return out, nil
}

// wireInjection tells a retrieve-mode caller where the token goes, with
// {token} standing for it.
func wireInjection(in egress.Injection) wire.Injection {
	switch in.Kind {
	case egress.InjectQuery:
		return wire.Injection{In: "query", Name: in.Name, Format: strings.ReplaceAll(in.Value, egress.Placeholder, "{token}")}
	case egress.InjectBasic:
		return wire.Injection{In: "basic", Name: strings.ReplaceAll(in.Username, egress.Placeholder, "{token}"),
			Format: strings.ReplaceAll(in.Password, egress.Placeholder, "{token}")}
	default:
		return wire.Injection{In: "header", Name: in.Name, Format: strings.ReplaceAll(in.Value, egress.Placeholder, "{token}")}
	}
}
