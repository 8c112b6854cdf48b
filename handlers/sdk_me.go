package handlers

import (
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/sdk/wire"
)

// sdkMe answers GET /sdk/v1/me: who the signing key is, and whom it acts as.
func (s *Server) sdkMe(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	me := wire.Me{
		Kind:      wire.KeyKindApp,
		AppID:     caller.AppID,
		AppName:   caller.AppName,
		KeyID:     caller.KeyID,
		KeyStatus: wire.KeyStatusActive,
	}
	if caller.KeyDeprecated {
		me.KeyStatus = wire.KeyStatusDeprecated
	}
	if caller.IsAgent() {
		me.Kind, me.AgentID, me.AgentName = wire.KeyKindAgent, caller.AgentID, caller.AgentName
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, me)
}
