package handlers

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v5"
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
)

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
	for _, r := range routes {
		if _, err := s.echo.AddRoute(r); err != nil {
			return fmt.Errorf("register route %s %s: %w", r.Method, r.Path, err)
		}
	}
	return nil
}
