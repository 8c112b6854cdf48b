// Package demohost is the demo's "host app": a page with a Connect button,
// the way an app embedding Latchkey would build one. Its backend mints the
// Connect session with the app's key through the Go SDK, exactly as a real
// app backend would, and the page opens the popup with Latchkey's own
// launcher (static/js/connect.js). It is plain net/http, mounted under
// /demo/host by `latchkey serve --demo`; it is never part of a production
// deployment.
package demohost

import (
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

//go:embed assets/host.js page.html
var files embed.FS

// Options configure the host app.
type Options struct {
	// LatchkeyURL is Latchkey's public URL; the backend calls it and the
	// page opens the popup from it.
	LatchkeyURL string
	// App is the demo app's SDK client, built with sdk.WithUserToken for
	// the signed-in demo user so each session is bound to that user.
	App       *sdk.App
	Provider  string // the provider to connect
	AgentID   string // the agent the user is asked to delegate to
	AgentName string
	// ReturnURL is the redirect-flow landing page (registered on the app).
	ReturnURL string
}

// Host serves the host app.
type Host struct {
	o    Options
	page *template.Template
	js   []byte
}

// New builds the host app.
func New(o Options) (*Host, error) {
	page, err := template.ParseFS(files, "page.html")
	if err != nil {
		return nil, err
	}
	js, err := files.ReadFile("assets/host.js")
	if err != nil {
		return nil, err
	}
	return &Host{o: o, page: page, js: js}, nil
}

// Handler serves /, /connected, /session and /host.js relative to its mount.
func (h *Host) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /connected", h.index)
	mux.HandleFunc("POST /session", h.session)
	mux.HandleFunc("GET /host.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(h.js)
	})
	return mux
}

func (h *Host) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Scripts only from Latchkey's own origin (this page and connect.js).
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	_ = h.page.Execute(w, map[string]string{
		"LatchkeyURL": h.o.LatchkeyURL,
		"Provider":    h.o.Provider,
		"AgentName":   h.o.AgentName,
	})
}

// session is the app backend: mint a Connect session for the signed-in user
// and hand the page only the session token.
func (h *Host) session(w http.ResponseWriter, r *http.Request) {
	// Same-origin only: the page posts here with fetch.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := h.o.App.CreateConnectSession(ctx, wire.ConnectSessionRequest{
		AllowedProviders: []string{h.o.Provider},
		AllowedOrigin:    h.o.LatchkeyURL,
		ReturnURL:        h.o.ReturnURL,
		AgentID:          h.o.AgentID,
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(map[string]string{"error": "could not create a Connect session"})
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"session_token": res.SessionToken})
}
