package handlers

import (
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/sdk/wire"
)

// sdkCreateConnectSession answers POST /sdk/oauth/connect/session (app
// keys): a Connect session whose token appears in this response only.
func (s *Server) sdkCreateConnectSession(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	var req wire.ConnectSessionRequest
	if err := decodeSDKJSON(c, &req, false); err != nil {
		return err
	}
	res, err := s.connect.Mint(c.Request().Context(), caller, req)
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, res)
}

// sdkGetConnectSession answers GET /sdk/v1/connect/sessions/{session_id}
// (app keys): the poll of a session's outcome.
func (s *Server) sdkGetConnectSession(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	st, err := s.connect.Status(c.Request().Context(), caller, c.Param("session_id"))
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}
