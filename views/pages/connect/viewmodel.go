// Package connect holds the pages of the Connect popup (DESIGN.md §5): the
// page that exchanges the session token, the provider picker, the consent
// screen and the result. They render inside their own compact Shell rather
// than the site layout: the popup is 500×700 and belongs to the app the
// user came from, not to Latchkey's own site.
package connect

import (
	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/sdk/wire"
)

// Meta is what the Shell needs to know about one page.
type Meta struct {
	Title string
	// StylesheetURL, ScriptURL and IconURL carry a content-hash query (see
	// the layouts package). ScriptURL is the popup's own script,
	// static/js/connect-popup.js: the CSP allows no inline script.
	StylesheetURL string
	ScriptURL     string
	IconURL       string
}

// PageTitle is the text of the <title> element.
func (m Meta) PageTitle() string {
	if m.Title == "" {
		return "Connect · Latchkey"
	}
	return m.Title + " · Connect · Latchkey"
}

// Brand is the app the end user is connecting an account for.
type Brand struct {
	// AppName is the app's display name.
	AppName string
	// Color is "#rrggbb"; empty uses Latchkey's brand colour.
	Color string
}

// defaultBrandColor is brand-600 of tailwind.config.js.
const defaultBrandColor = "#1f56d1"

// Fill is the colour of the app's badge.
func (b Brand) Fill() string {
	if b.Color == "" {
		return defaultBrandColor
	}
	return b.Color
}

// Initial is the letter on the app's badge.
func (b Brand) Initial() string {
	for _, r := range b.AppName {
		return string(r)
	}
	return "?"
}

// LoadingViewModel is the page the launcher opens. Its script reads the
// session token from the URL fragment and posts it to ExchangeURL.
type LoadingViewModel struct {
	ExchangeURL string
}

// Provider is one choice on the picker.
type Provider struct {
	Slug string
	Name string
	// Logo is a data: URI of the provider's SVG mark.
	Logo templ.SafeURL
	// ConsentURL opens the consent screen for this provider.
	ConsentURL templ.SafeURL
}

// PickerViewModel lists the providers the session allows.
type PickerViewModel struct {
	Brand     Brand
	EndUser   string
	Providers []Provider
}

// ConsentViewModel is the consent screen for one provider.
type ConsentViewModel struct {
	Brand        Brand
	ProviderSlug string
	ProviderName string
	ProviderLogo templ.SafeURL
	Scopes       []string
	// Agent is the display name of the agent that will be delegated the
	// grant, or empty.
	Agent string
	// EndUser is who is connecting (name or email), or empty for a
	// system connection.
	EndUser string
	// Action is where the decision is posted; CSRF goes with it.
	Action templ.SafeURL
	CSRF   string
	// BackURL returns to the picker when the session allows several
	// providers; empty otherwise.
	BackURL templ.SafeURL
}

// ResultViewModel is the last page: a success or a failure, and the data
// block the popup's script posts to the app.
type ResultViewModel struct {
	Success           bool
	ProviderName      string
	AccountIdentifier string
	ErrorCode         string
	ErrorDescription  string
	// Data is rendered as a JSON data block (<script type="application/json"
	// id="connect-result">), escaped by templ; the external script reads it.
	Data ResultData
}

// ResultData is read by static/js/connect-popup.js. TargetOrigin is the
// app's exact registered origin; when it is empty the script posts
// nothing.
type ResultData struct {
	TargetOrigin string  `json:"target_origin,omitempty"`
	Message      Message `json:"message"`
}

// Message is what the popup posts to window.opener, in the protocol of
// @alter-ai/connect 0.8: alter_connect_success with grants, or
// alter_connect_error with error and error_description.
type Message struct {
	Type             string  `json:"type"`
	Grants           []Grant `json:"grants,omitempty"`
	Error            string  `json:"error,omitempty"`
	ErrorDescription string  `json:"error_description,omitempty"`
}

// Message types.
const (
	MessageSuccess = "alter_connect_success"
	MessageError   = "alter_connect_error"
)

// Grant is one connected grant as the app receives it (the wire shape).
type Grant = wire.PopupGrant
