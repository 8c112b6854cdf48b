package sdk

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"

	"github.com/latchkey/latchkey/sdk/wire"
)

// ListGrantsOptions filters GET /sdk/v1/grants. Zero values mean "any" and,
// for Limit, the server's default page size.
type ListGrantsOptions struct {
	Provider string
	Status   wire.GrantStatus
	Limit    int
	Cursor   string // NextCursor of the previous page
}

// GrantPage is one page of grants; NextCursor is empty on the last page.
type GrantPage struct {
	Grants     []wire.Grant
	NextCursor string
}

func (c *client) listGrants(ctx context.Context, o ListGrantsOptions) (GrantPage, error) {
	if o.Limit < 0 {
		return GrantPage{}, errors.New("sdk: list grants: Limit must not be negative")
	}
	q := pageQuery("provider", o.Provider, "status", string(o.Status), "limit", limitParam(o.Limit), "cursor", o.Cursor)
	var out wire.GrantList
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: wire.PathGrants, query: q}, &out, false); err != nil {
		return GrantPage{}, err
	}
	return GrantPage{Grants: out.Grants, NextCursor: out.NextCursor}, nil
}

func (c *client) grants(ctx context.Context, o ListGrantsOptions) iter.Seq2[wire.Grant, error] {
	return paginate(o.Cursor, func(cursor string) ([]wire.Grant, string, error) {
		o.Cursor = cursor
		p, err := c.listGrants(ctx, o)
		return p.Grants, p.NextCursor, err
	})
}

// paginate walks cursor pages. A server that hands back the cursor it was
// given would loop forever, so that is reported as an error.
func paginate[T any](start string, fetch func(cursor string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		cursor := start
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == cursor {
				yield(zero, errors.New("sdk: server returned the same page cursor twice"))
				return
			}
			cursor = next
		}
	}
}

func limitParam(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func (c *client) getGrant(ctx context.Context, grantID string) (*wire.Grant, error) {
	id, err := segment("grant id", grantID)
	if err != nil {
		return nil, err
	}
	var out wire.Grant
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: wire.PathGrants + "/" + id}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *client) revokeGrant(ctx context.Context, grantID string) error {
	id, err := segment("grant id", grantID)
	if err != nil {
		return err
	}
	return c.doJSON(ctx, call{method: http.MethodDelete, path: wire.PathGrants + "/" + id}, nil, false)
}

func (c *client) revokeDelegation(ctx context.Context, grantID, agentID string) error {
	gid, err := segment("grant id", grantID)
	if err != nil {
		return err
	}
	aid, err := segment("agent id", agentID)
	if err != nil {
		return err
	}
	return c.doJSON(ctx, call{method: http.MethodDelete, path: wire.PathGrants + "/" + gid + "/delegations/" + aid}, nil, false)
}

func (c *client) me(ctx context.Context) (*wire.Me, error) {
	var out wire.Me
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: wire.PathMe}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *client) grantManagedSecret(ctx context.Context, secretID string, p wire.Principal) (*wire.Grant, error) {
	id, err := segment("managed secret id", secretID)
	if err != nil {
		return nil, err
	}
	body, err := jsonBody(wire.ManagedSecretGrantRequest{Principal: p})
	if err != nil {
		return nil, err
	}
	var out wire.Grant
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: wire.PathManagedSecrets + "/" + id + "/grants", body: body}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *client) getApproval(ctx context.Context, approvalID string) (*wire.Approval, error) {
	id, err := segment("approval id", approvalID)
	if err != nil {
		return nil, err
	}
	var out wire.ApprovalEnvelope
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: wire.PathApprovals + "/" + id}, &out, false); err != nil {
		return nil, err
	}
	return &out.Approval, nil
}

func (c *client) createConnectSession(ctx context.Context, r wire.ConnectSessionRequest) (*wire.ConnectSessionResponse, error) {
	body, err := jsonBody(r)
	if err != nil {
		return nil, err
	}
	var out wire.ConnectSessionResponse
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: wire.PathConnectSession, body: body}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *client) connectSessionStatus(ctx context.Context, sessionID string) (*wire.ConnectSessionStatus, error) {
	id, err := segment("session id", sessionID)
	if err != nil {
		return nil, err
	}
	var out wire.ConnectSessionStatus
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: wire.PathConnectSessions + "/" + id}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAgentsOptions pages GET /sdk/v1/agents.
type ListAgentsOptions struct {
	Limit  int
	Cursor string
}

// AgentPage is one page of agents; NextCursor is empty on the last page.
type AgentPage struct {
	Agents     []wire.Agent
	NextCursor string
}

// MintedKey is a newly minted agent key. APIKey is the key itself, shown
// this once and never again; it prints redacted under every fmt verb and in
// slog, so call APIKey.Reveal() only where it must be displayed or stored.
// Key describes it, with Key.APIKey cleared so the plain text lives in one
// place only.
type MintedKey struct {
	Key    wire.AgentKey
	APIKey wire.APIKey
}

// CreatedAgent is a new agent and its first key.
type CreatedAgent struct {
	Agent wire.Agent
	Key   MintedKey
}

func (c *client) createAgent(ctx context.Context, r wire.CreateAgentRequest) (*CreatedAgent, error) {
	if r.Name == "" {
		return nil, errors.New("sdk: create agent: Name is required")
	}
	body, err := jsonBody(r)
	if err != nil {
		return nil, err
	}
	var out wire.CreateAgentResponse
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: wire.PathAgents, body: body}, &out, false); err != nil {
		return nil, err
	}
	key, err := mintedKey(out.Key)
	if err != nil {
		return nil, fmt.Errorf("sdk: create agent: %w", err)
	}
	return &CreatedAgent{Agent: out.Agent, Key: key}, nil
}

// mintedKey moves the one-time key text into a redacting wire.APIKey.
func mintedKey(k wire.AgentKey) (MintedKey, error) {
	key, err := wire.ParseKey(k.APIKey)
	k.APIKey = ""
	if err != nil {
		return MintedKey{}, fmt.Errorf("server returned no well-formed API key: %w", err)
	}
	if key.Kind() != wire.KeyKindAgent {
		return MintedKey{}, errors.New("server returned a key that is not an agent key")
	}
	return MintedKey{Key: k, APIKey: key}, nil
}

func (c *client) listAgents(ctx context.Context, o ListAgentsOptions) (AgentPage, error) {
	if o.Limit < 0 {
		return AgentPage{}, errors.New("sdk: list agents: Limit must not be negative")
	}
	q := pageQuery("limit", limitParam(o.Limit), "cursor", o.Cursor)
	var out wire.AgentList
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: wire.PathAgents, query: q}, &out, false); err != nil {
		return AgentPage{}, err
	}
	return AgentPage{Agents: out.Agents, NextCursor: out.NextCursor}, nil
}

func (c *client) agents(ctx context.Context, o ListAgentsOptions) iter.Seq2[wire.Agent, error] {
	return paginate(o.Cursor, func(cursor string) ([]wire.Agent, string, error) {
		o.Cursor = cursor
		p, err := c.listAgents(ctx, o)
		return p.Agents, p.NextCursor, err
	})
}

func (c *client) getAgentInfo(ctx context.Context, agentID string) (*wire.Agent, error) {
	id, err := segment("agent id", agentID)
	if err != nil {
		return nil, err
	}
	var out wire.Agent
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: wire.PathAgents + "/" + id}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

func agentKeyPath(agentID, keyID string) (string, error) {
	aid, err := segment("agent id", agentID)
	if err != nil {
		return "", err
	}
	kid, err := segment("key id", keyID)
	if err != nil {
		return "", err
	}
	return wire.PathAgents + "/" + aid + "/keys/" + kid, nil
}

func (c *client) mintAgentKey(ctx context.Context, agentID string, r wire.MintAgentKeyRequest) (*MintedKey, error) {
	id, err := segment("agent id", agentID)
	if err != nil {
		return nil, err
	}
	body, err := jsonBody(r)
	if err != nil {
		return nil, err
	}
	var out wire.AgentKey
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: wire.PathAgents + "/" + id + "/keys", body: body}, &out, false); err != nil {
		return nil, err
	}
	key, err := mintedKey(out)
	if err != nil {
		return nil, fmt.Errorf("sdk: mint agent key: %w", err)
	}
	return &key, nil
}

func (c *client) deprecateAgentKey(ctx context.Context, agentID, keyID string) (*wire.AgentKey, error) {
	p, err := agentKeyPath(agentID, keyID)
	if err != nil {
		return nil, err
	}
	// An empty JSON object rather than no body: the endpoint is a JSON POST.
	var out wire.AgentKey
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: p + "/deprecate", body: []byte("{}")}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *client) revokeAgentKey(ctx context.Context, agentID, keyID string, force bool) (*wire.AgentKey, error) {
	p, err := agentKeyPath(agentID, keyID)
	if err != nil {
		return nil, err
	}
	q := ""
	if force {
		q = "force=true"
	}
	var out wire.AgentKey
	if err := c.doJSON(ctx, call{method: http.MethodDelete, path: p, query: q}, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}
