package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// SDKAgents is what the agent endpoints need from services/agents.
type SDKAgents interface {
	Create(ctx context.Context, in agents.CreateInput) (agents.Created, error)
	Get(ctx context.Context, appID, agentID string) (models.Agent, error)
	List(ctx context.Context, in agents.ListInput) (agents.Page, error)
}

// SDKKeys is what the agent key endpoints need from services/apikeys.
type SDKKeys interface {
	Mint(ctx context.Context, in apikeys.MintInput) (apikeys.Minted, error)
	List(ctx context.Context, appID, agentID string) ([]models.APIKey, error)
	ListForAgents(ctx context.Context, appID string, agentIDs []string) (map[string][]models.APIKey, error)
	Deprecate(ctx context.Context, ref apikeys.KeyRef, actor apikeys.Actor) (models.APIKey, error)
	Revoke(ctx context.Context, in apikeys.RevokeInput) (models.APIKey, error)
}

// maxKeyLabelRunes bounds an agent key's label.
const maxKeyLabelRunes = 100

var (
	errNoSuchAgent  = NewAPIError(wire.CodeNotFound, "This app has no agent with that id.")
	errNoSuchKey    = NewAPIError(wire.CodeNotFound, "This agent has no key with that id.")
	errSDKNotConfig = &APIError{Status: http.StatusInternalServerError, Code: wire.CodeInternal,
		Err: errors.New("handlers: the agent endpoints have no agents or keys service configured")}
)

// sdkCreateAgent answers POST /sdk/v1/agents: a new agent and its first
// key, whose api_key appears in this response only.
func (s *Server) sdkCreateAgent(c *echo.Context) error {
	caller, err := s.agentEndpoint(c)
	if err != nil {
		return err
	}
	var req wire.CreateAgentRequest
	if err := decodeSDKJSON(c, &req, false); err != nil {
		return err
	}
	ctx := c.Request().Context()
	created, err := s.agents.Create(ctx, agents.CreateInput{
		AppID: caller.AppID, Name: req.Name, DisplayName: req.DisplayName, Actor: keyActor(caller),
	})
	if err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return NewAPIError(wire.CodeConflict, "An agent with this name already exists in this app.").Wrap(err)
		}
		return err
	}
	key := mintedKeyJSON(created.Key)
	listed := key
	listed.APIKey = ""
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, wire.CreateAgentResponse{
		Agent: agentJSON(created.Agent, nil, listed),
		Key:   key,
	})
}

// sdkListAgents answers GET /sdk/v1/agents?limit=&cursor=, ordered by name.
func (s *Server) sdkListAgents(c *echo.Context) error {
	caller, err := s.agentEndpoint(c)
	if err != nil {
		return err
	}
	limit := 0
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > agents.MaxPageSize {
			return NewAPIError(wire.CodeInvalidRequest, "limit must be a whole number from 1 to "+strconv.Itoa(agents.MaxPageSize)+".")
		}
		limit = n
	}
	ctx := c.Request().Context()
	page, err := s.agents.List(ctx, agents.ListInput{AppID: caller.AppID, Cursor: c.QueryParam("cursor"), Limit: limit})
	if err != nil {
		return err
	}
	ids := make([]string, len(page.Agents))
	for i, ag := range page.Agents {
		ids[i] = ag.ID
	}
	keys, err := s.apiKeys.ListForAgents(ctx, caller.AppID, ids)
	if err != nil {
		return err
	}
	out := wire.AgentList{Agents: make([]wire.Agent, 0, len(page.Agents)), NextCursor: page.NextCursor}
	for _, ag := range page.Agents {
		out.Agents = append(out.Agents, agentJSON(ag, keys[ag.ID]))
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// sdkGetAgent answers GET /sdk/v1/agents/{agent_id}. Another app's agent
// is not found, exactly like one that never existed.
func (s *Server) sdkGetAgent(c *echo.Context) error {
	caller, err := s.agentEndpoint(c)
	if err != nil {
		return err
	}
	agentID, ok := pathUUID(c, "agent_id")
	if !ok {
		return errNoSuchAgent
	}
	ctx := c.Request().Context()
	ag, err := s.agents.Get(ctx, caller.AppID, agentID)
	if err != nil {
		return notFoundAs(err, errNoSuchAgent)
	}
	keys, err := s.apiKeys.List(ctx, caller.AppID, ag.ID)
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, agentJSON(ag, keys))
}

// sdkMintAgentKey answers POST /sdk/v1/agents/{agent_id}/keys with an
// optional {"label": "…"}: a new key, its api_key shown this once.
func (s *Server) sdkMintAgentKey(c *echo.Context) error {
	caller, err := s.agentEndpoint(c)
	if err != nil {
		return err
	}
	agentID, ok := pathUUID(c, "agent_id")
	if !ok {
		return errNoSuchAgent
	}
	var req wire.MintAgentKeyRequest
	if err := decodeSDKJSON(c, &req, true); err != nil {
		return err
	}
	if utf8.RuneCountInString(req.Label) > maxKeyLabelRunes || !utf8.ValidString(req.Label) {
		return errs.Invalid("label", "must be valid UTF-8 of at most %d characters", maxKeyLabelRunes)
	}
	minted, err := s.apiKeys.Mint(c.Request().Context(), apikeys.MintInput{
		AppID: caller.AppID, AgentID: agentID, Label: req.Label, Actor: keyActor(caller),
	})
	if err != nil {
		return notFoundAs(err, errNoSuchAgent)
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, mintedKeyJSON(minted))
}

// sdkDeprecateAgentKey answers POST …/keys/{key_id}/deprecate. The key keeps
// working; responses to it carry Latchkey-Key-Deprecated: true.
func (s *Server) sdkDeprecateAgentKey(c *echo.Context) error {
	caller, err := s.agentEndpoint(c)
	if err != nil {
		return err
	}
	agentID, ok := pathUUID(c, "agent_id")
	if !ok {
		return errNoSuchKey
	}
	var req struct{}
	if err := decodeSDKJSON(c, &req, true); err != nil {
		return err
	}
	ref := apikeys.KeyRef{AppID: caller.AppID, AgentID: agentID, KeyID: c.Param("key_id")}
	row, err := s.apiKeys.Deprecate(c.Request().Context(), ref, keyActor(caller))
	if err != nil {
		return notFoundAs(err, errNoSuchKey)
	}
	s.sdkAuth.Forget(row.KeyID)
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, keyJSON(row))
}

// sdkRevokeAgentKey answers DELETE …/keys/{key_id}[?force=true]. Revoking
// the agent's last usable key is a conflict unless force=true.
func (s *Server) sdkRevokeAgentKey(c *echo.Context) error {
	caller, err := s.agentEndpoint(c)
	if err != nil {
		return err
	}
	agentID, ok := pathUUID(c, "agent_id")
	if !ok {
		return errNoSuchKey
	}
	force := false
	switch c.QueryParam("force") {
	case "", "false":
	case "true":
		force = true
	default:
		return NewAPIError(wire.CodeInvalidRequest, "force must be true or false.")
	}
	if len(sdkBody(c)) > 0 {
		return NewAPIError(wire.CodeInvalidRequest, "DELETE takes no request body.")
	}
	row, err := s.apiKeys.Revoke(c.Request().Context(), apikeys.RevokeInput{
		Key:   apikeys.KeyRef{AppID: caller.AppID, AgentID: agentID, KeyID: c.Param("key_id")},
		Force: force, Actor: keyActor(caller),
	})
	if err != nil {
		if errors.Is(err, apikeys.ErrLastUsableKey) {
			return NewAPIError(wire.CodeConflict,
				"This is the agent's last usable key; revoking it leaves the agent unable to authenticate. "+
					"Mint a replacement first, or repeat the request with ?force=true.").Wrap(err)
		}
		return notFoundAs(err, errNoSuchKey)
	}
	s.sdkAuth.Forget(row.KeyID)
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, keyJSON(row))
}

// agentEndpoint is the common preamble of the agent endpoints. AppOnly on
// their routes has already refused agent callers.
func (s *Server) agentEndpoint(c *echo.Context) (sdkauth.Caller, error) {
	if s.agents == nil || s.apiKeys == nil {
		return sdkauth.Caller{}, errSDKNotConfig
	}
	return callerOf(c)
}

func keyActor(c sdkauth.Caller) apikeys.Actor {
	return apikeys.Actor{Kind: audit.ActorKey, ID: c.KeyID, Caller: c.CallerLabel}
}

// pathUUID reads a UUID path parameter in canonical lowercase form. A value
// that is not a UUID names nothing, so callers answer not_found.
func pathUUID(c *echo.Context, name string) (string, bool) {
	return ids.Canonical(c.Param(name))
}

// notFoundAs gives a service's not-found a message that names the missing
// thing; any other error passes through.
func notFoundAs(err error, nf *APIError) error {
	if errors.Is(err, errs.ErrNotFound) {
		return nf.Wrap(err)
	}
	return err
}

func agentJSON(ag models.Agent, keys []models.APIKey, extra ...wire.AgentKey) wire.Agent {
	out := wire.Agent{
		AgentID:     ag.ID,
		AppID:       ag.AppID,
		Name:        ag.Name,
		DisplayName: ag.DisplayName,
		CreatedAt:   ag.CreatedAt.UTC(),
		UpdatedAt:   ag.UpdatedAt.UTC(),
	}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyJSON(k))
	}
	out.Keys = append(out.Keys, extra...)
	return out
}

func keyJSON(k models.APIKey) wire.AgentKey {
	return wire.AgentKey{
		KeyID:        k.KeyID,
		Status:       wire.KeyStatus(k.Status),
		Label:        k.Label,
		CreatedAt:    k.CreatedAt.UTC(),
		DeprecatedAt: utcPtr(k.DeprecatedAt),
		RevokedAt:    utcPtr(k.RevokedAt),
		LastUsedAt:   utcPtr(k.LastUsedAt),
	}
}

// mintedKeyJSON is the one place an API key is put into a response.
func mintedKeyJSON(m apikeys.Minted) wire.AgentKey {
	return wire.AgentKey{
		KeyID:     m.KeyID,
		Status:    wire.KeyStatusActive,
		Label:     m.Label,
		CreatedAt: m.CreatedAt.UTC(),
		APIKey:    m.APIKey.Reveal(),
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
