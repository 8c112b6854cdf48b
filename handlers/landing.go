package handlers

import (
	"net/http"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/views/pages/landing"
)

// landingPage is the signed-out front page.
func (s *Server) landingPage(c *echo.Context) error {
	health, err := s.reverse(routeHealthz)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, page{
		title: "Self-hosted credential vault",
		content: landing.Page(landing.ViewModel{
			HealthURL: templ.SafeURL(health),
			DocsURL:   templ.SafeURL(s.docsURL),
		}),
	})
}
