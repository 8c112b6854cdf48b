package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/services/secrets"
)

// SDKGrants lists, reads and revokes grants (services/grants).
type SDKGrants interface {
	List(ctx context.Context, in grants.ListInput) (wire.GrantList, error)
	Get(ctx context.Context, caller sdkauth.Caller, endUser *grants.EndUser, id string) (wire.Grant, error)
	Revoke(ctx context.Context, caller sdkauth.Caller, id string) (wire.Grant, error)
	RevokeDelegation(ctx context.Context, caller sdkauth.Caller, grantID, agentID string) error
}

// SDKIdentity verifies end-user JWTs (services/identity).
type SDKIdentity interface {
	Verify(ctx context.Context, appID, rawJWT string) (identity.EndUser, error)
}

// SDKSecrets binds managed secrets to principals (services/secrets).
type SDKSecrets interface {
	Grant(ctx context.Context, in secrets.GrantInput) (secrets.Granted, error)
}

// endUserOf verifies the caller's user token, if any, into the end user
// grant visibility is computed for.
func (s *Server) endUserOf(ctx context.Context, caller sdkauth.Caller) (*grants.EndUser, error) {
	if caller.UserToken == "" {
		return nil, nil
	}
	u, err := s.identity.Verify(ctx, caller.AppID, caller.UserToken)
	if err != nil {
		return nil, err
	}
	return &grants.EndUser{ID: u.ID, AppID: u.AppID, Subject: u.Subject, Groups: u.Groups, Status: u.Status}, nil
}

// sdkListGrants answers GET /sdk/v1/grants?provider=&status=&cursor=&limit=.
func (s *Server) sdkListGrants(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	endUser, err := s.endUserOf(ctx, caller)
	if err != nil {
		return err
	}
	q := c.Request().URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > grants.MaxListLimit {
			return NewAPIError(wire.CodeInvalidRequest, "limit must be a number between 1 and "+strconv.Itoa(grants.MaxListLimit)+".")
		}
	}
	list, err := s.grants.List(ctx, grants.ListInput{Caller: caller, EndUser: endUser,
		Provider: q.Get("provider"), Status: q.Get("status"), Cursor: q.Get("cursor"), Limit: limit})
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list)
}

// sdkGetGrant answers GET /sdk/v1/grants/{grant_id}.
func (s *Server) sdkGetGrant(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	endUser, err := s.endUserOf(ctx, caller)
	if err != nil {
		return err
	}
	id := grantParam(c)
	g, err := s.grants.Get(ctx, caller, endUser, id)
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g)
}

// sdkRevokeGrant answers DELETE /sdk/v1/grants/{grant_id} (app keys).
func (s *Server) sdkRevokeGrant(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	id := grantParam(c)
	g, err := s.grants.Revoke(c.Request().Context(), caller, id)
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g)
}

// sdkRevokeDelegation answers DELETE /sdk/v1/grants/{grant_id}/delegations/{agent_id}:
// the app, or the agent itself for its own delegation.
func (s *Server) sdkRevokeDelegation(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	grantID := grantParam(c)
	if err := s.grants.RevokeDelegation(c.Request().Context(), caller, grantID, c.Param("agent_id")); err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// sdkGrantManagedSecret answers POST /sdk/v1/managed-secrets/{id}/grants
// (app keys): bind a managed secret to a principal.
func (s *Server) sdkGrantManagedSecret(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	var req wire.ManagedSecretGrantRequest
	if err := decodeSDKJSON(c, &req, false); err != nil {
		return err
	}
	principal := string(req.Principal.Kind)
	if req.Principal.Kind != wire.PrincipalKind("system") {
		principal += ":" + req.Principal.ID
	}
	ctx := c.Request().Context()
	granted, err := s.secrets.Grant(ctx, secrets.GrantInput{AppID: caller.AppID, SecretID: c.Param("secret_id"),
		Principal: principal, Actor: keyActor(caller)})
	if err != nil {
		return err
	}
	if ev := sdkAuditEvent(c); ev != nil {
		ev.GrantID = granted.GrantID
	}
	g, err := s.grants.Get(ctx, caller, nil, granted.GrantID)
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	status := http.StatusOK
	if granted.Created {
		status = http.StatusCreated
	}
	return c.JSON(status, g)
}

// grantParam is the path's grant id, also recorded on the call's audit row
// (bounded: it is whatever the caller sent) so that refusals name it too.
func grantParam(c *echo.Context) string {
	id := c.Param("grant_id")
	if ev := sdkAuditEvent(c); ev != nil {
		ev.GrantID = truncate(id, 64)
	}
	return id
}
