package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/bearer"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// slugRE is the shape of a provider slug (catalog ids and custom ones).
var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Mint creates a Connect session for the calling app (DESIGN.md §4.6). The
// end user comes from the caller's Latchkey-User-Token (verified against
// the app's IdP), else from the app-asserted end_user, else the session
// makes a system grant. The returned token is shown this once; only its
// SHA-256 is stored.
func (s *Service) Mint(ctx context.Context, caller sdkauth.Caller, req wire.ConnectSessionRequest) (wire.ConnectSessionResponse, error) {
	if caller.AppID == "" || caller.IsAgent() {
		return wire.ConnectSessionResponse{}, fmt.Errorf("connect: mint by %q: %w", caller.KeyKind, errs.ErrForbidden)
	}
	if err := checkRequest(req); err != nil {
		return wire.ConnectSessionResponse{}, err
	}
	appID := caller.AppID

	urls, err := s.tenancy.GetURLs(ctx, appID)
	if err != nil {
		return wire.ConnectSessionResponse{}, err
	}
	var v errs.Validation
	if req.AllowedOrigin != "" && !slices.Contains(urls.Origins, req.AllowedOrigin) {
		v.Add("allowed_origin", "is not an origin registered for this app (exact match, e.g. https://app.example.com)")
	}
	if req.ReturnURL != "" && !slices.Contains(urls.ReturnURLs, req.ReturnURL) {
		v.Add("return_url", "is not a return URL registered for this app (exact match)")
	}
	if err := v.Err(); err != nil {
		return wire.ConnectSessionResponse{}, err
	}

	providers, err := s.allowedProviders(ctx, appID, req.AllowedProviders)
	if err != nil {
		return wire.ConnectSessionResponse{}, err
	}

	var agent *models.Agent
	if req.AgentID != "" {
		ag, err := s.agents.Get(ctx, appID, strings.ToLower(req.AgentID))
		if errors.Is(err, errs.ErrNotFound) {
			return wire.ConnectSessionResponse{}, errs.Coded(wire.CodeNotFound, "This app has no agent with that agent_id.")
		}
		if err != nil {
			return wire.ConnectSessionResponse{}, err
		}
		if ag.Status != models.AgentActive {
			return wire.ConnectSessionResponse{}, errs.Invalid("agent_id", "names a disabled agent")
		}
		agent = &ag
	}

	endUser, err := s.endUser(ctx, caller, req.EndUser)
	if err != nil {
		return wire.ConnectSessionResponse{}, err
	}
	if agent != nil && endUser == nil {
		// A delegation is an end user's consent for an agent; a system
		// session has nobody who could give it.
		return wire.ConnectSessionResponse{}, errs.Invalid("agent_id",
			"needs an end user: send Latchkey-User-Token or end_user with it")
	}

	token, err := s.newToken()
	if err != nil {
		return wire.ConnectSessionResponse{}, err
	}
	now := s.now().UTC()
	provJSON, err := json.Marshal(providers)
	if err != nil {
		return wire.ConnectSessionResponse{}, fmt.Errorf("connect: encode providers: %w", err)
	}
	meta := req.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return wire.ConnectSessionResponse{}, fmt.Errorf("connect: encode metadata: %w", err)
	}
	row := models.ConnectSession{
		ID:               uuid.NewString(),
		AppID:            appID,
		TokenHash:        bearer.Hash(token),
		PrincipalKind:    models.PrincipalSystem,
		AllowedProviders: string(provJSON),
		AllowedOrigin:    req.AllowedOrigin,
		ReturnURL:        req.ReturnURL,
		Metadata:         string(metaJSON),
		Status:           models.ConnectPending,
		ResultGrants:     "[]",
		ExpiresAt:        now.Add(s.lifetime),
		CreatedAt:        now,
		UpdatedAt:        now,
	}
	if endUser != nil {
		row.PrincipalKind = models.PrincipalUser
		row.EndUserID = &endUser.ID
	}
	if agent != nil {
		row.AgentID = &agent.ID
	}
	ev := models.AuditEvent{
		OrganizationID: caller.OrganizationID,
		AppID:          appID,
		Action:         ActionSessionCreate,
		ActorKind:      audit.ActorKey,
		ActorID:        caller.KeyID,
		KeyID:          caller.KeyID,
		Caller:         caller.CallerLabel,
		PrincipalKind:  row.PrincipalKind,
		RequestID:      requestid.From(ctx),
		Context: audit.EncodeContext(map[string]string{
			"session_id": row.ID,
			"providers":  strings.Join(providers, ","),
		}),
	}
	if endUser != nil {
		ev.PrincipalID = endUser.ID
	}
	if agent != nil {
		ev.AgentID = agent.ID
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("connect: create session: %w", err)
		}
		return s.audit.InTx(ctx, tx, ev)
	})
	if err != nil {
		return wire.ConnectSessionResponse{}, err
	}
	return wire.ConnectSessionResponse{
		SessionID:    row.ID,
		SessionToken: token,
		ConnectURL:   s.public + wire.PathConnectPopup + "#session=" + token,
		ExpiresAt:    row.ExpiresAt,
	}, nil
}

// checkRequest validates the shape of a mint request; registration and
// existence checks come after.
func checkRequest(req wire.ConnectSessionRequest) error {
	var v errs.Validation
	if len(req.AllowedProviders) > MaxProviders {
		v.Add("allowed_providers", "may name at most %d providers", MaxProviders)
	}
	for _, p := range req.AllowedProviders {
		if len(p) > maxSlugLen || !slugRE.MatchString(p) {
			v.Add("allowed_providers", "must be provider slugs (lower-case letters, digits, . _ -)")
			break
		}
	}
	if len(req.AllowedOrigin) > maxURLLen {
		v.Add("allowed_origin", "is too long")
	}
	if len(req.ReturnURL) > maxURLLen {
		v.Add("return_url", "is too long")
	}
	if req.AgentID != "" {
		if _, err := uuid.Parse(req.AgentID); err != nil {
			v.Add("agent_id", "must be an agent id (UUID)")
		}
	}
	if len(req.Metadata) > MaxMetadataKeys {
		v.Add("metadata", "may hold at most %d entries", MaxMetadataKeys)
	}
	for k, val := range req.Metadata {
		if k == "" || len(k) > maxMetadataKey || len(val) > maxMetadataValue || !utf8.ValidString(k) || !utf8.ValidString(val) {
			v.Add("metadata", "keys must be 1-%d bytes and values at most %d bytes of UTF-8", maxMetadataKey, maxMetadataValue)
			break
		}
	}
	return v.Err()
}

// allowedProviders resolves the session's providers: the requested ones,
// each of which must have an active provider config on the app, or every
// active config when none are requested. The order is the request's, or
// alphabetical.
func (s *Service) allowedProviders(ctx context.Context, appID string, requested []string) ([]string, error) {
	var configs []models.ProviderConfig
	if err := s.db.WithContext(ctx).Select("provider").
		Where("app_id = ? AND status = ?", appID, models.ProviderConfigActive).
		Order("provider").Find(&configs).Error; err != nil {
		return nil, fmt.Errorf("connect: load provider configs: %w", err)
	}
	active := make([]string, 0, len(configs))
	for _, c := range configs {
		active = append(active, c.Provider)
	}
	if len(requested) == 0 {
		if len(active) == 0 {
			return nil, errs.Coded(wire.CodeProviderNotConfigured, "This app has no active provider configuration to connect.")
		}
		return active, nil
	}
	out := make([]string, 0, len(requested))
	for _, p := range requested {
		if slices.Contains(out, p) {
			continue
		}
		if !slices.Contains(active, p) {
			return nil, &errs.CodedError{Code: wire.CodeProviderNotConfigured,
				Message: fmt.Sprintf("The provider %q is not configured (or not active) for this app.", p),
				Details: map[string]any{"provider": p}}
		}
		out = append(out, p)
	}
	return out, nil
}

// endUser decides whose grant the session makes: the verified user of the
// token, the app-asserted user, or nobody (a system grant).
func (s *Service) endUser(ctx context.Context, caller sdkauth.Caller, asserted *wire.EndUser) (*identity.EndUser, error) {
	var u identity.EndUser
	var err error
	switch {
	case caller.UserToken != "" && asserted != nil:
		return nil, errs.Invalid("end_user", "must not be sent with Latchkey-User-Token: the token already names the end user")
	case caller.UserToken != "":
		u, err = s.identity.Verify(ctx, caller.AppID, caller.UserToken)
	case asserted != nil:
		u, err = s.identity.AssertEndUser(ctx, caller.AppID, asserted.ID, asserted.Email, asserted.DisplayName)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if u.Status != "" && u.Status != models.EndUserActive {
		return nil, errs.Coded(wire.CodeForbidden, "This end user is disabled.")
	}
	return &u, nil
}

// Status reports a session of the calling app (GET
// /sdk/v1/connect/sessions/{id}). A session of another app is not found.
func (s *Service) Status(ctx context.Context, caller sdkauth.Caller, id string) (wire.ConnectSessionStatus, error) {
	if caller.AppID == "" || caller.IsAgent() {
		return wire.ConnectSessionStatus{}, fmt.Errorf("connect: status by %q: %w", caller.KeyKind, errs.ErrForbidden)
	}
	row, err := s.load(ctx, caller.AppID, id)
	if errors.Is(err, errs.ErrNotFound) {
		return wire.ConnectSessionStatus{}, &errs.CodedError{Code: wire.CodeNotFound,
			Message: "This app has no Connect session with that id.", Cause: err}
	}
	if err != nil {
		return wire.ConnectSessionStatus{}, err
	}
	out := wire.ConnectSessionStatus{SessionID: row.ID, ExpiresAt: row.ExpiresAt.UTC()}
	switch state := s.state(row); state {
	case models.ConnectCompleted:
		out.Status = wire.ConnectCompleted
		gs, err := s.resultGrants(ctx, row)
		if err != nil {
			return wire.ConnectSessionStatus{}, err
		}
		out.Grants = gs
	case models.ConnectFailed:
		out.Status = wire.ConnectFailed
		out.ErrorCode = row.ErrorCode
		out.ErrorDescription = Describe(row.ErrorCode)
	case models.ConnectExpired:
		out.Status = wire.ConnectExpired
		out.ErrorCode = CodeSessionExpired
		out.ErrorDescription = Describe(CodeSessionExpired)
	default:
		out.Status = wire.ConnectPending
	}
	return out, nil
}

// load returns a session of the app, or not found.
func (s *Service) load(ctx context.Context, appID, id string) (models.ConnectSession, error) {
	var row models.ConnectSession
	if _, err := uuid.Parse(id); err != nil {
		return row, fmt.Errorf("connect session: %w", errs.ErrNotFound)
	}
	q := s.db.WithContext(ctx).Where("id = ?", strings.ToLower(id))
	if appID != "" {
		q = q.Where("app_id = ?", appID)
	}
	err := q.Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, fmt.Errorf("connect session: %w", errs.ErrNotFound)
	}
	if err != nil {
		return row, fmt.Errorf("connect: load session: %w", err)
	}
	return row, nil
}

// state is the session's status as callers see it: a pending session past
// its expiry is expired, whether or not a writer has recorded that yet.
func (s *Service) state(row models.ConnectSession) string {
	if row.Status == models.ConnectPending && !s.now().Before(row.ExpiresAt) {
		return models.ConnectExpired
	}
	return row.Status
}

// resultGrants renders the grants a completed session produced.
func (s *Service) resultGrants(ctx context.Context, row models.ConnectSession) ([]wire.Grant, error) {
	var ids []string
	if err := json.Unmarshal([]byte(row.ResultGrants), &ids); err != nil {
		return nil, fmt.Errorf("connect: decode result grants: %w", err)
	}
	if len(ids) == 0 {
		return []wire.Grant{}, nil
	}
	var rows []models.Grant
	if err := s.db.WithContext(ctx).Where("app_id = ? AND id IN ?", row.AppID, ids).Order("created_at").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("connect: load result grants: %w", err)
	}
	subject := ""
	if row.EndUserID != nil {
		var u models.EndUser
		err := s.db.WithContext(ctx).Select("subject").Where("id = ? AND app_id = ?", *row.EndUserID, row.AppID).Take(&u).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("connect: load end user: %w", err)
		}
		subject = u.Subject
	}
	out := make([]wire.Grant, 0, len(rows))
	for _, g := range rows {
		w := grants.ToWire(g, subject)
		w.ProviderName = s.providerName(ctx, row.AppID, g.Provider)
		out = append(out, w)
	}
	return out, nil
}

// providerName is the display name of an app's provider, or its slug when
// the configuration cannot be read (the name is cosmetic).
func (s *Service) providerName(ctx context.Context, appID, provider string) string {
	cfg, err := s.oauth.Client(ctx, appID, provider)
	if err != nil || cfg.Provider.Name == "" {
		return provider
	}
	return cfg.Provider.Name
}
