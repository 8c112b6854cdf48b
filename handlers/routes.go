package handlers

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/oauth"
)

// Route names are the stable handles for reverse routing and tests; a path
// can change without touching the code that links to it.
const (
	routeLanding = "landing"
	routeHealthz = "healthz"
	routeReadyz  = "readyz"
	routeStatic  = "static"

	// HEAD twins exist for what probes, proxies and curl -I ask about; pages
	// get no automatic HEAD, so a HEAD never runs a handler's side effects.
	routeHealthzHead = "healthz_head"
	routeReadyzHead  = "readyz_head"
	routeStaticHead  = "static_head"

	// Signed SDK API (DESIGN.md §4.6).
	routeSDKMe                 = "sdk_me"
	routeSDKAgentsCreate       = "sdk_agents_create"
	routeSDKAgentsList         = "sdk_agents_list"
	routeSDKAgentsGet          = "sdk_agents_get"
	routeSDKAgentKeysMint      = "sdk_agent_keys_mint"
	routeSDKAgentKeysDeprecate = "sdk_agent_keys_deprecate"
	routeSDKAgentKeysRevoke    = "sdk_agent_keys_revoke"
	routeSDKNotFound           = "sdk_not_found"
	routeDemo                  = "demo"
	routeSDKProxy              = "sdk_proxy"
	routeSDKToken              = "sdk_token"
	routeSDKGrantsList         = "sdk_grants_list"
	routeSDKGrantsGet          = "sdk_grants_get"
	routeSDKGrantsRevoke       = "sdk_grants_revoke"
	routeSDKDelegationRevoke   = "sdk_delegation_revoke"
	routeSDKSecretGrant        = "sdk_managed_secret_grant"
	routeSDKConnectCreate      = "sdk_connect_session_create"
	routeSDKConnectGet         = "sdk_connect_session_get"

	// The Connect popup (browser, unsigned; DESIGN.md §5).
	routeConnectPopup    = "connect_popup"
	routeConnectExchange = "connect_exchange"
	routeConnectPicker   = "connect_picker"
	routeConnectConsent  = "connect_consent"
	routeConnectDecide   = "connect_decide"
	routeConnectCallback = "connect_callback"
)

// Audit actions of SDK calls, one per endpoint.
const (
	actionSDKMe                 = "sdk.me"
	actionSDKAgentsCreate       = "sdk.agents.create"
	actionSDKAgentsList         = "sdk.agents.list"
	actionSDKAgentsGet          = "sdk.agents.get"
	actionSDKAgentKeysMint      = "sdk.agents.keys.mint"
	actionSDKAgentKeysDeprecate = "sdk.agents.keys.deprecate"
	actionSDKAgentKeysRevoke    = "sdk.agents.keys.revoke"
	actionSDKNotFound           = "sdk.not_found"
	actionSDKProxy              = "sdk.proxy"
	actionSDKToken              = "sdk.token"
	actionSDKGrantsList         = "sdk.grants.list"
	actionSDKGrantsGet          = "sdk.grants.get"
	actionSDKGrantsRevoke       = "sdk.grants.revoke"
	actionSDKDelegationRevoke   = "sdk.delegations.revoke"
	actionSDKSecretGrant        = "sdk.managed_secrets.grant"
	actionSDKConnectCreate      = "sdk.connect.sessions.create"
	actionSDKConnectGet         = "sdk.connect.sessions.get"
)

// sdkPrefix is where the signed SDK API lives. Unknown paths and methods
// under it are authenticated too (then answered not_found or
// method_not_allowed), so nothing under the prefix answers an unsigned
// request with anything but 401.
const sdkPrefix = "/sdk/v1"

// sdkRoutes lists every signed SDK endpoint; registerRoutes puts each
// behind authenticateSDK. Add new SDK endpoints here.
func (s *Server) sdkRoutes() []sdkRoute {
	agent := wire.PathAgents + "/:agent_id"
	key := agent + "/keys/:key_id"
	grant := wire.PathGrants + "/:grant_id"
	routes := []sdkRoute{
		{Method: http.MethodGet, Path: wire.PathMe, Name: routeSDKMe, Action: actionSDKMe, Handler: s.sdkMe},

		// Agents and their keys: app keys only.
		{Method: http.MethodPost, Path: wire.PathAgents, Name: routeSDKAgentsCreate, Action: actionSDKAgentsCreate, AppOnly: true, Handler: s.sdkCreateAgent},
		{Method: http.MethodGet, Path: wire.PathAgents, Name: routeSDKAgentsList, Action: actionSDKAgentsList, AppOnly: true, Handler: s.sdkListAgents},
		{Method: http.MethodGet, Path: agent, Name: routeSDKAgentsGet, Action: actionSDKAgentsGet, AppOnly: true, Handler: s.sdkGetAgent},
		{Method: http.MethodPost, Path: agent + "/keys", Name: routeSDKAgentKeysMint, Action: actionSDKAgentKeysMint, AppOnly: true, Handler: s.sdkMintAgentKey},
		{Method: http.MethodPost, Path: key + "/deprecate", Name: routeSDKAgentKeysDeprecate, Action: actionSDKAgentKeysDeprecate, AppOnly: true, Handler: s.sdkDeprecateAgentKey},
		{Method: http.MethodDelete, Path: key, Name: routeSDKAgentKeysRevoke, Action: actionSDKAgentKeysRevoke, AppOnly: true, Handler: s.sdkRevokeAgentKey},
	}
	if s.grants != nil && s.identity != nil && s.secrets != nil && s.proxy != nil {
		routes = append(routes, []sdkRoute{
			// Calls with a credential, and the grants behind them.
			{Method: http.MethodPost, Path: wire.PathProxy, Name: routeSDKProxy, Action: actionSDKProxy, Handler: s.sdkProxy},
			{Method: http.MethodPost, Path: wire.PathToken, Name: routeSDKToken, Action: actionSDKToken, Handler: s.sdkToken},
			{Method: http.MethodGet, Path: wire.PathGrants, Name: routeSDKGrantsList, Action: actionSDKGrantsList, Handler: s.sdkListGrants},
			{Method: http.MethodGet, Path: grant, Name: routeSDKGrantsGet, Action: actionSDKGrantsGet, Handler: s.sdkGetGrant},
			{Method: http.MethodDelete, Path: grant, Name: routeSDKGrantsRevoke, Action: actionSDKGrantsRevoke, AppOnly: true, Handler: s.sdkRevokeGrant},
			{Method: http.MethodDelete, Path: grant + "/delegations/:agent_id", Name: routeSDKDelegationRevoke, Action: actionSDKDelegationRevoke, Handler: s.sdkRevokeDelegation},
			{Method: http.MethodPost, Path: wire.PathManagedSecrets + "/:secret_id/grants", Name: routeSDKSecretGrant, Action: actionSDKSecretGrant, AppOnly: true, Handler: s.sdkGrantManagedSecret},
		}...)
	}
	if s.connect != nil {
		routes = append(routes, []sdkRoute{
			// Connect sessions: app keys only (DESIGN.md §4.6).
			{Method: http.MethodPost, Path: wire.PathConnectSession, Name: routeSDKConnectCreate, Action: actionSDKConnectCreate, AppOnly: true, Handler: s.sdkCreateConnectSession},
			{Method: http.MethodGet, Path: wire.PathConnectSessions + "/:session_id", Name: routeSDKConnectGet, Action: actionSDKConnectGet, AppOnly: true, Handler: s.sdkGetConnectSession},
		}...)
	}
	return routes
}

// registerRoutes is the one place every route is declared, so the whole HTTP
// surface can be read top to bottom here.
func (s *Server) registerRoutes() error {
	routes := []echo.Route{
		// Probes.
		{Method: http.MethodGet, Path: "/healthz", Name: routeHealthz, Handler: s.healthz},
		{Method: http.MethodHead, Path: "/healthz", Name: routeHealthzHead, Handler: s.healthz},
		{Method: http.MethodGet, Path: "/readyz", Name: routeReadyz, Handler: s.readyz},
		{Method: http.MethodHead, Path: "/readyz", Name: routeReadyzHead, Handler: s.readyz},

		// Assets.
		{Method: http.MethodGet, Path: staticPrefix + "*", Name: routeStatic, Handler: s.serveStatic},
		{Method: http.MethodHead, Path: staticPrefix + "*", Name: routeStaticHead, Handler: s.serveStatic},

		// Pages.
		{Method: http.MethodGet, Path: "/", Name: routeLanding, Handler: s.landingPage},
	}
	if s.connect != nil {
		routes = append(routes,
			// The Connect popup, in the order a browser walks it. Unsigned:
			// the session token, then the binding cookie, authorize them.
			echo.Route{Method: http.MethodGet, Path: wire.PathConnectPopup, Name: routeConnectPopup, Handler: s.connectPopup},
			echo.Route{Method: http.MethodPost, Path: connectExchangePath, Name: routeConnectExchange, Handler: s.connectExchange},
			echo.Route{Method: http.MethodGet, Path: connectSessionPath, Name: routeConnectPicker, Handler: s.connectPicker},
			echo.Route{Method: http.MethodGet, Path: connectProviderPath, Name: routeConnectConsent, Handler: s.connectConsent},
			echo.Route{Method: http.MethodPost, Path: connectProviderPath, Name: routeConnectDecide, Handler: s.connectDecide},
			echo.Route{Method: http.MethodGet, Path: oauth.CallbackPath, Name: routeConnectCallback, Handler: s.connectCallback},
		)
	}
	// The SDK API exists only when the server can authenticate and audit
	// it; without those (tools, page tests) its paths are simply unknown.
	if s.sdkAuth != nil && s.audit != nil {
		for _, r := range s.sdkRoutes() {
			routes = append(routes, echo.Route{
				Method: r.Method, Path: r.Path, Name: r.Name, Handler: r.Handler,
				Middlewares: []echo.MiddlewareFunc{s.authenticateSDK(r)},
			})
		}
		notFound := sdkRoute{Action: actionSDKNotFound}
		routes = append(routes, echo.Route{
			Method: echo.RouteNotFound, Path: sdkPrefix + "/*", Name: routeSDKNotFound,
			Handler:     s.sdkNotFound,
			Middlewares: []echo.MiddlewareFunc{s.authenticateSDK(notFound)},
		})
	}

	if s.demo != nil {
		routes = append(routes, echo.Route{Method: echo.RouteAny, Path: "/demo/*", Name: routeDemo,
			Handler: echo.WrapHandler(http.StripPrefix("/demo", s.demo))})
	}

	for _, r := range routes {
		if _, err := s.echo.AddRoute(r); err != nil {
			return fmt.Errorf("register route %s %s: %w", r.Method, r.Path, err)
		}
	}
	return nil
}
