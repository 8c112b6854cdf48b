// Package demotest serves handlers/demo on an httptest server, mounted
// under /demo the way the HTTP edge mounts it, and plays the browser on its
// login and consent pages. Tests of the demo itself and of Latchkey's OAuth
// flows against it share it.
package demotest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/testutil/htmlform"
)

// Server is a running demo. The embedded httptest server's URL is the
// root; the demo lives under Base.
type Server struct {
	*httptest.Server
	Demo *demo.Server
	// Base is URL + "/demo", the demo's BaseURL.
	Base string
}

// Start serves a demo built from opts until the test ends. It sets
// opts.BaseURL to the server's /demo: the address is known only here.
func Start(t testing.TB, opts demo.Options) *Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	opts.BaseURL = "http://" + srv.Listener.Addr().String() + "/demo"
	d, err := demo.New(opts)
	if err != nil {
		t.Fatalf("demo.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/demo/", http.StripPrefix("/demo", d.Handler()))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return &Server{Server: srv, Demo: d, Base: opts.BaseURL}
}

// CustomDefinition points a custom Latchkey provider at the demo
// calendar, as `latchkey serve --demo` configures it.
func (s *Server) CustomDefinition() *catalog.CustomDefinition {
	ep := s.Demo.OAuthEndpoints()
	return &catalog.CustomDefinition{
		Name: "Demo Calendar", AuthorizeURL: ep.AuthorizeURL, TokenURL: ep.TokenURL,
		UserinfoURL: ep.UserinfoURL, IDField: "id", DisplayField: "email", RevokeURL: ep.RevokeURL,
		APIHosts: []string{ep.APIHost},
	}
}

// Browser is a fresh cookie-keeping client that does not follow
// redirects, so the test sees where the server sends it.
func Browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Get fetches u with c and returns the response and its body.
func Get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Submit posts f with c as if its button with data-testid testid were
// clicked, and returns the response and its body. The demo's forms post to
// absolute paths.
func (s *Server) Submit(t testing.TB, c *http.Client, f htmlform.Form, testid string) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(s.URL+f.Action, f.Values(t, testid))
	if err != nil {
		t.Fatalf("POST %s: %v", f.Action, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Authorize walks the pages of one authorization in a fresh browser: the
// login page as user, then (OAuth provider) the consent decision,
// "approve" or "deny" ("" for the identity provider, which asks none). It
// returns the redirect the server answered with.
func (s *Server) Authorize(t testing.TB, authURL, user, decision string) *url.URL {
	t.Helper()
	c := Browser(t)
	resp, body := Get(t, c, authURL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: status %d\n%s", resp.StatusCode, body)
	}
	resp, body = s.Submit(t, c, htmlform.Parse(t, body), "demo-user-"+user)
	if decision != "" {
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("consent page: status %d\n%s", resp.StatusCode, body)
		}
		resp, body = s.Submit(t, c, htmlform.Parse(t, body), "demo-"+decision)
	}
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("want a 303 back to the client, got %d\n%s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	return loc
}
