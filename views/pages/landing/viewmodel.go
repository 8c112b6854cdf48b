// Package landing is the signed-out front page.
package landing

import "github.com/a-h/templ"

// ViewModel holds what the landing page displays. Links are already resolved
// by the handler so the view decides nothing.
type ViewModel struct {
	HealthURL templ.SafeURL
	DocsURL   templ.SafeURL
}
