package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/bearer"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
)

// The browser side of a session, in the order a browser meets it:
//
//	Exchange  the popup's script trades the token (once) for a binding
//	View      the picker and the consent screen show the session
//	Begin     the end user approved: start the provider's OAuth flow
//	Deny      the end user declined at the consent screen
//	Complete  the provider sent the browser back: finish, save, complete
//
// Every step after Exchange takes the binding (SHA-256 of the browser's
// Connect cookie) and refuses a session bound to another browser.

// ExchangeInput trades a session token for a browser binding.
type ExchangeInput struct {
	Token string
	// Binding is the SHA-256 (hex) of the fresh random cookie value the
	// edge is about to set.
	Binding string
}

// Opened is a session now bound to one browser.
type Opened struct {
	SessionID string
	Providers []string
	ExpiresAt time.Time
}

// Exchange binds a pending, never-opened session to a browser. The token
// works once: a second exchange is connect_session_used, whoever sends it.
func (s *Service) Exchange(ctx context.Context, in ExchangeInput) (Opened, error) {
	if !wellFormedToken(in.Token) {
		return Opened{}, fail(CodeNotFound, errNoSession)
	}
	if !validBinding(in.Binding) {
		return Opened{}, fail(CodeInvalidRequest, errors.New("connect: malformed binding"))
	}
	var row models.ConnectSession
	err := s.db.WithContext(ctx).Where("token_hash = ?", bearer.Hash(in.Token)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Opened{}, fail(CodeNotFound, errNoSession)
	}
	if err != nil {
		return Opened{}, fmt.Errorf("connect: load session by token: %w", err)
	}
	if f := s.unusable(ctx, row); f != nil {
		return Opened{}, f
	}
	if row.OpenedAt != nil {
		return Opened{}, s.usedFailure(ctx, row)
	}
	app, err := s.tenancy.App(ctx, row.AppID)
	if err != nil {
		return Opened{}, err
	}
	now := s.now().UTC()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The conditions make the exchange single-use across replicas: of
		// two racing exchanges only one finds opened_at still empty.
		res := tx.Model(&models.ConnectSession{}).
			Where("id = ? AND status = ? AND opened_at IS NULL", row.ID, models.ConnectPending).
			Updates(map[string]any{"opened_at": now, "browser_binding_hash": in.Binding, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("connect: bind session: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return errLostRace
		}
		return s.audit.InTx(ctx, tx, s.browserEvent(ctx, app, row, ActionSessionOpen))
	})
	if errors.Is(err, errLostRace) {
		return Opened{}, s.usedFailure(ctx, row)
	}
	if err != nil {
		return Opened{}, err
	}
	providers, err := decodeProviders(row)
	if err != nil {
		return Opened{}, err
	}
	return Opened{SessionID: row.ID, Providers: providers, ExpiresAt: row.ExpiresAt.UTC()}, nil
}

// errLostRace is a conditional update that found the row already changed.
var errLostRace = errors.New("connect: session changed concurrently")

// View is what the picker and the consent screen show.
type View struct {
	SessionID string
	// AppName is the app's display name (its name when it has none).
	AppName string
	// BrandColor is the app's colour as #rrggbb, or empty.
	BrandColor string
	// Agent is the display name of the agent the session names, or empty.
	Agent string
	// EndUser is how the end user is shown (name or email), or empty for a
	// system session.
	EndUser string
	// Providers describes the providers asked for; Allowed lists every
	// provider the session allows.
	Providers []ProviderView
	Allowed   []string
	ExpiresAt time.Time
}

// ProviderView is one provider as the pages show it.
type ProviderView struct {
	Slug        string
	Name        string
	LogoDataURI string
	Scopes      []string
	// AuthorizeOrigin is the origin of the provider's authorization
	// endpoint: the consent form's redirect goes there, so the page's
	// form-action must allow it.
	AuthorizeOrigin string
}

var brandColorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// View loads a session bound to this browser for display. With only set, it
// describes only that provider (which must be allowed); otherwise every
// allowed provider.
func (s *Service) View(ctx context.Context, sessionID, binding, only string) (View, error) {
	row, err := s.loadBound(ctx, sessionID, binding)
	if err != nil {
		return View{}, err
	}
	providers, err := decodeProviders(row)
	if err != nil {
		return View{}, err
	}
	allowed := providers
	if only != "" {
		if !slices.Contains(providers, only) {
			return View{}, fail(CodeProviderNotConfigured, fmt.Errorf("connect: provider %q not allowed by the session", only))
		}
		providers = []string{only}
	}
	app, err := s.tenancy.App(ctx, row.AppID)
	if err != nil {
		return View{}, err
	}
	v := View{SessionID: row.ID, AppName: app.DisplayName, Allowed: allowed, ExpiresAt: row.ExpiresAt.UTC()}
	if v.AppName == "" {
		v.AppName = app.Name
	}
	if brandColorRE.MatchString(app.BrandColor) {
		v.BrandColor = strings.ToLower(app.BrandColor)
	}
	if row.AgentID != nil {
		ag, err := s.agents.Get(ctx, row.AppID, *row.AgentID)
		if err != nil {
			return View{}, err
		}
		if ag.Status != models.AgentActive {
			// Disabled since the session was minted: nobody may consent
			// for it now.
			return View{}, s.failSession(ctx, row, CodeInvalidRequest, errors.New("connect: agent disabled"))
		}
		v.Agent = ag.DisplayName
		if v.Agent == "" {
			v.Agent = ag.Name
		}
	}
	if row.EndUserID != nil {
		var u models.EndUser
		err := s.db.WithContext(ctx).Select("email", "display_name").Where("id = ? AND app_id = ?", *row.EndUserID, row.AppID).Take(&u).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return View{}, fmt.Errorf("connect: load end user: %w", err)
		}
		v.EndUser = u.DisplayName
		if v.EndUser == "" {
			v.EndUser = u.Email
		}
	}
	for _, slug := range providers {
		cfg, err := s.oauth.Client(ctx, row.AppID, slug)
		if err != nil {
			if only != "" {
				return View{}, s.clientFailure(err)
			}
			// One broken configuration must not hide the others.
			continue
		}
		scopes := cfg.Scopes
		if len(scopes) == 0 {
			scopes = cfg.Provider.DefaultScopes
		}
		name := cfg.Provider.Name
		if name == "" {
			name = slug
		}
		v.Providers = append(v.Providers, ProviderView{
			Slug:            slug,
			Name:            name,
			LogoDataURI:     cfg.Provider.LogoDataURI(),
			Scopes:          slices.Clone(scopes),
			AuthorizeOrigin: originOf(cfg.Provider.AuthorizeURL),
		})
	}
	if len(v.Providers) == 0 {
		return View{}, fail(CodeProviderNotConfigured, errors.New("connect: no usable provider configuration"))
	}
	return v, nil
}

// Begin starts the provider's authorization for a session bound to this
// browser and returns the URL to send the browser to. A session may begin
// more than once (the user went back and picked again); only one flow can
// complete it.
func (s *Service) Begin(ctx context.Context, sessionID, binding, provider string) (string, error) {
	row, err := s.loadBound(ctx, sessionID, binding)
	if err != nil {
		return "", err
	}
	providers, err := decodeProviders(row)
	if err != nil {
		return "", err
	}
	if !slices.Contains(providers, provider) {
		return "", fail(CodeProviderNotConfigured, fmt.Errorf("connect: provider %q not allowed by the session", provider))
	}
	u, err := s.oauth.Start(ctx, oauth.StartInput{
		AppID: row.AppID, ConnectSessionID: row.ID, Provider: provider, BrowserBinding: binding,
	})
	if err != nil {
		return "", s.clientFailure(err)
	}
	return u, nil
}

// Deny records that the end user declined at the consent screen. The
// session is over: the returned error is always a *Failure (access_denied,
// with its delivery) unless recording it failed.
func (s *Service) Deny(ctx context.Context, sessionID, binding string) error {
	row, err := s.loadBound(ctx, sessionID, binding)
	if err != nil {
		return err
	}
	return s.failSession(ctx, row, CodeAccessDenied, errors.New("connect: the end user declined"))
}

// CallbackInput is what the provider sent back, with the browser binding.
type CallbackInput struct {
	State            string
	Code             string
	Error            string
	ErrorDescription string
	Binding          string
}

// Result is a completed session, ready for delivery.
type Result struct {
	SessionID string
	Grants    []PopupGrant
	Delivery  Delivery
}

// PopupGrant is one grant in the shape the popup posts to the app; the
// wire package owns the shape so the page and the service cannot drift.
type PopupGrant = wire.PopupGrant

// Complete finishes the provider's flow for this browser, stores the grant
// (and the agent's delegation) and completes the session. Failures are
// *Failure values; they carry a delivery only when the provider's state
// proved which session they belong to and that session is this browser's.
func (s *Service) Complete(ctx context.Context, in CallbackInput) (Result, error) {
	if !validBinding(in.Binding) {
		// No Connect cookie: another browser, or cookies are off. Nothing
		// is consumed, so the right browser can still finish.
		return Result{}, fail(CodeBrowserMismatch, errors.New("connect: callback without binding"))
	}
	if in.State == "" {
		return Result{}, fail(CodeStateMismatch, errors.New("connect: callback without state"))
	}
	connected, finishErr := s.oauth.Finish(ctx, oauth.FinishInput{
		State: in.State, Code: in.Code, Error: in.Error, ErrorDescription: in.ErrorDescription, BrowserBinding: in.Binding,
	})
	if finishErr != nil {
		code := classifyFinish(finishErr)
		var fe *oauth.FlowError
		if !errors.As(finishErr, &fe) || fe.ConnectSessionID == "" || code == CodeStateMismatch {
			// The state did not prove which session this is (unknown,
			// another browser's, already used): nothing is ended or
			// delivered, so a planted callback cannot spoil a session.
			return Result{}, fail(code, finishErr)
		}
		row, err := s.loadBound(ctx, fe.ConnectSessionID, in.Binding)
		if err != nil {
			return Result{}, err
		}
		return Result{}, s.failSession(ctx, row, code, finishErr)
	}
	row, err := s.loadBound(ctx, connected.ConnectSessionID, in.Binding)
	if err != nil {
		return Result{}, err
	}
	if connected.AppID != row.AppID {
		return Result{}, fmt.Errorf("connect: flow of app %s finished session of app %s", connected.AppID, row.AppID)
	}
	providers, err := decodeProviders(row)
	if err != nil {
		return Result{}, err
	}
	if !slices.Contains(providers, connected.Provider) {
		return Result{}, s.failSession(ctx, row, CodeProviderNotConfigured,
			fmt.Errorf("connect: flow for %q is not allowed by the session", connected.Provider))
	}

	// Claim the session before saving, so two flows started from one
	// session cannot both store a grant. completed_at marks the claim; the
	// status stays pending until the grant is stored, so a poll never sees
	// "completed" without grants.
	now := s.now().UTC()
	res := s.db.WithContext(ctx).Model(&models.ConnectSession{}).
		Where("id = ? AND status = ? AND completed_at IS NULL", row.ID, models.ConnectPending).
		Updates(map[string]any{"completed_at": now, "updated_at": now})
	if res.Error != nil {
		return Result{}, fmt.Errorf("connect: claim session: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return Result{}, fail(CodeSessionUsed, errLostRace)
	}
	row.CompletedAt = &now

	meta, err := decodeMetadata(row)
	if err != nil {
		return Result{}, err
	}
	save := oauth.SaveInput{
		Connected:     connected,
		PrincipalKind: row.PrincipalKind,
		Metadata:      meta,
		Actor:         browserActor(row),
	}
	if row.EndUserID != nil {
		save.PrincipalID = *row.EndUserID
		save.EndUserID = *row.EndUserID
	}
	if row.AgentID != nil {
		save.AgentID = *row.AgentID
	}
	saved, err := s.oauth.Save(ctx, save)
	if err != nil {
		code := CodeInternal
		if errs.CodeOf(err) == wire.CodeInvalidRequest {
			// The account or the agent cannot be stored as they are (an
			// over-long identifier, an agent disabled meanwhile).
			code = CodeInvalidRequest
		}
		return Result{}, s.failClaimed(ctx, row, code, err)
	}

	app, err := s.tenancy.App(ctx, row.AppID)
	if err != nil {
		return Result{}, err
	}
	ids, err := json.Marshal([]string{saved.Grant.ID})
	if err != nil {
		return Result{}, fmt.Errorf("connect: encode result grants: %w", err)
	}
	ev := s.browserEvent(ctx, app, row, ActionSessionComplete)
	ev.GrantID = saved.Grant.ID
	ev.Provider = saved.Grant.Provider
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&models.ConnectSession{}).
			Where("id = ? AND status = ?", row.ID, models.ConnectPending).
			Updates(map[string]any{"status": models.ConnectCompleted, "result_grants": string(ids), "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("connect: complete session: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return errLostRace
		}
		return s.audit.InTx(ctx, tx, ev)
	})
	if errors.Is(err, errLostRace) {
		return Result{}, fail(CodeSessionUsed, err)
	}
	if err != nil {
		return Result{}, err
	}
	return Result{
		SessionID: row.ID,
		Grants:    []PopupGrant{popupGrant(saved, connected, now)},
		Delivery:  s.delivery(ctx, row),
	}, nil
}

// popupGrant renders a saved grant for the app.
func popupGrant(saved oauth.Saved, c oauth.Connected, at time.Time) PopupGrant {
	g := saved.Grant
	pg := PopupGrant{
		GrantID:           g.ID,
		Provider:          g.Provider,
		ProviderName:      c.ProviderName,
		AccountIdentifier: g.AccountIdentifier,
		Timestamp:         at.UTC().Format(time.RFC3339),
		Operation:         saved.Operation,
		Scopes:            strings.Fields(g.Scopes),
		Status:            g.Status,
	}
	if pg.Provider == "" {
		pg.Provider = c.Provider
	}
	if pg.ProviderName == "" {
		pg.ProviderName = pg.Provider
	}
	if pg.AccountIdentifier == "" {
		pg.AccountIdentifier = c.AccountIdentifier
	}
	if pg.Operation == "" {
		pg.Operation = oauth.OperationCreation
	}
	if len(pg.Scopes) == 0 {
		pg.Scopes = slices.Clone(c.Scopes)
	}
	if pg.Scopes == nil {
		pg.Scopes = []string{}
	}
	if pg.Status == "" {
		pg.Status = models.GrantActive
	}
	meta := map[string]string{}
	if g.Metadata != "" {
		var m map[string]any
		if json.Unmarshal([]byte(g.Metadata), &m) == nil {
			for k, v := range m {
				if s, ok := v.(string); ok {
					meta[k] = s
				}
			}
		}
	}
	if c.AccountDisplay != "" {
		meta["account_display_name"] = c.AccountDisplay
	}
	if len(meta) > 0 {
		pg.Metadata = meta
	}
	return pg
}

// classifyFinish maps why oauth.Finish refused to the code the browser and
// the app see: the flow error's own code (state_mismatch, flow_expired,
// access_denied, provider_error, exchange_failed, identity_failed), or the
// SDK code of a session or configuration problem, or internal.
func classifyFinish(err error) string {
	var fe *oauth.FlowError
	if errors.As(err, &fe) {
		if code := fe.Code(); code != "" {
			return code
		}
	}
	switch errs.CodeOf(err) {
	case wire.CodeProviderNotConfigured, wire.CodeNotFound:
		return CodeProviderNotConfigured
	case wire.CodeConnectSessionExpired:
		return CodeSessionExpired
	case wire.CodeConnectSessionUsed:
		return CodeSessionUsed
	}
	return CodeInternal
}

// clientFailure turns an oauth error about the provider configuration into
// a Failure; anything else stays an internal error.
func (s *Service) clientFailure(err error) error {
	if errors.Is(err, errs.ErrNotFound) || errs.CodeOf(err) == wire.CodeProviderNotConfigured {
		return fail(CodeProviderNotConfigured, err)
	}
	return err
}

// loadBound loads a session for the browser bound to it. Another browser's
// session is browser_mismatch, without a delivery: it must not learn where
// the session reports to, nor end it.
func (s *Service) loadBound(ctx context.Context, sessionID, binding string) (models.ConnectSession, error) {
	row, err := s.load(ctx, "", sessionID)
	if errors.Is(err, errs.ErrNotFound) {
		return row, fail(CodeNotFound, err)
	}
	if err != nil {
		return row, err
	}
	if !sameHash(row.BrowserBindingHash, binding) {
		return row, fail(CodeBrowserMismatch, errors.New("connect: session bound to another browser"))
	}
	if f := s.unusable(ctx, row); f != nil {
		return row, f
	}
	if row.CompletedAt != nil {
		// Claimed by a flow that is storing its grant right now.
		return row, fail(CodeSessionUsed, errors.New("connect: session being completed"))
	}
	return row, nil
}

// unusable reports why a session can no longer be used, or nil. An expired
// session is recorded as such and reported to the app (the browser that
// met it holds the token or the binding, so it speaks for the session); a
// finished one was already reported and gets no second delivery.
func (s *Service) unusable(ctx context.Context, row models.ConnectSession) *Failure {
	switch s.state(row) {
	case models.ConnectCompleted, models.ConnectFailed:
		f := fail(CodeSessionUsed, errors.New("connect: session already finished"))
		f.SessionID = row.ID
		return f
	case models.ConnectExpired:
		s.markExpired(ctx, row)
		f := fail(CodeSessionExpired, errors.New("connect: session expired"))
		f.SessionID = row.ID
		f.Delivery = s.delivery(ctx, row)
		return f
	}
	return nil
}

// usedFailure is a second exchange of a token. The first browser owns the
// session, so this one gets no delivery.
func (s *Service) usedFailure(ctx context.Context, row models.ConnectSession) *Failure {
	f := fail(CodeSessionUsed, errors.New("connect: token already exchanged"))
	f.SessionID = row.ID
	return f
}

// markExpired records a pending session's expiry. Best effort: state()
// already reports it expired, so a failed write changes nothing visible.
func (s *Service) markExpired(ctx context.Context, row models.ConnectSession) {
	if row.Status != models.ConnectPending {
		return
	}
	now := s.now().UTC()
	_ = s.db.WithContext(ctx).Model(&models.ConnectSession{}).
		Where("id = ? AND status = ? AND completed_at IS NULL", row.ID, models.ConnectPending).
		Updates(map[string]any{"status": models.ConnectExpired, "error_code": CodeSessionExpired, "updated_at": now}).Error
}

// failSession ends a pending, unclaimed session with code and returns the
// Failure to deliver. Losing the race to another outcome is
// connect_session_used, delivered nowhere.
func (s *Service) failSession(ctx context.Context, row models.ConnectSession, code string, cause error) error {
	return s.recordFailure(ctx, row, code, cause, "completed_at IS NULL")
}

// failClaimed ends a session this request claimed (completed_at set) whose
// grant could not be stored.
func (s *Service) failClaimed(ctx context.Context, row models.ConnectSession, code string, cause error) error {
	return s.recordFailure(ctx, row, code, cause, "completed_at IS NOT NULL")
}

func (s *Service) recordFailure(ctx context.Context, row models.ConnectSession, code string, cause error, claim string) error {
	app, err := s.tenancy.App(ctx, row.AppID)
	if err != nil {
		return errors.Join(cause, err)
	}
	now := s.now().UTC()
	ev := s.browserEvent(ctx, app, row, ActionSessionFail)
	ev.Outcome = models.OutcomeDenied
	if code == CodeInternal {
		ev.Outcome = models.OutcomeError
	}
	ev.ErrorCode = code
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&models.ConnectSession{}).
			Where("id = ? AND status = ? AND "+claim, row.ID, models.ConnectPending).
			Updates(map[string]any{"status": models.ConnectFailed, "error_code": code, "completed_at": now, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("connect: fail session: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return errLostRace
		}
		return s.audit.InTx(ctx, tx, ev)
	})
	if errors.Is(err, errLostRace) {
		return fail(CodeSessionUsed, errors.Join(cause, err))
	}
	if err != nil {
		return errors.Join(cause, err)
	}
	f := fail(code, cause)
	f.SessionID = row.ID
	f.Delivery = s.delivery(ctx, row)
	return f
}

// delivery returns the session's origin and return URL that are still
// registered on the app. A lookup failure delivers nowhere: fail closed.
func (s *Service) delivery(ctx context.Context, row models.ConnectSession) Delivery {
	if row.AllowedOrigin == "" && row.ReturnURL == "" {
		return Delivery{}
	}
	urls, err := s.tenancy.GetURLs(ctx, row.AppID)
	if err != nil {
		return Delivery{}
	}
	var d Delivery
	if row.AllowedOrigin != "" && slices.Contains(urls.Origins, row.AllowedOrigin) {
		d.TargetOrigin = row.AllowedOrigin
	}
	if row.ReturnURL != "" && slices.Contains(urls.ReturnURLs, row.ReturnURL) {
		d.ReturnURL = row.ReturnURL
	}
	return d
}

// browserEvent is the audit row of a step taken in the end user's browser.
func (s *Service) browserEvent(ctx context.Context, app models.App, row models.ConnectSession, action string) models.AuditEvent {
	actor := browserActor(row)
	ev := models.AuditEvent{
		OrganizationID: app.OrganizationID,
		AppID:          row.AppID,
		Action:         action,
		ActorKind:      actor.Kind,
		ActorID:        actor.ID,
		PrincipalKind:  row.PrincipalKind,
		Context:        audit.EncodeContext(map[string]string{"session_id": row.ID}),
		RequestID:      requestid.From(ctx),
	}
	if row.EndUserID != nil {
		ev.PrincipalID = *row.EndUserID
	}
	if row.AgentID != nil {
		ev.AgentID = *row.AgentID
	}
	return ev
}

// browserActor is who acts in the browser: the session's end user, or for
// a system session whoever the app sent, recorded as the system.
func browserActor(row models.ConnectSession) apikeys.Actor {
	if row.EndUserID != nil {
		return apikeys.Actor{Kind: audit.ActorEndUser, ID: *row.EndUserID}
	}
	return apikeys.Actor{Kind: audit.ActorSystem, ID: "connect:" + row.ID}
}

func decodeProviders(row models.ConnectSession) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(row.AllowedProviders), &out); err != nil {
		return nil, fmt.Errorf("connect: decode allowed providers: %w", err)
	}
	return out, nil
}

func decodeMetadata(row models.ConnectSession) (map[string]string, error) {
	if row.Metadata == "" {
		return nil, nil
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(row.Metadata), &out); err != nil {
		return nil, fmt.Errorf("connect: decode metadata: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// validBinding accepts a lowercase hex SHA-256.
func validBinding(b string) bool {
	if len(b) != 64 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// originOf returns scheme://host[:port] of an absolute URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
