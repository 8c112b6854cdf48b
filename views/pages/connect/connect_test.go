package connect_test

import (
	"strings"
	"testing"

	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/testutil/templtest"
	"github.com/latchkey/latchkey/views/pages/connect"
)

// hostile is what a provider or an app could put in a name or an account
// identifier to break out of the page or the data block.
const hostile = `</script><script>alert(1)</script><img src=x onerror=alert(2)>`

func TestPagesEscapeWhatTheyShow(t *testing.T) {
	grant := connect.Grant{GrantID: "g-1", Provider: "demo", ProviderName: hostile, AccountIdentifier: hostile,
		Scopes: []string{hostile}, Status: "active", Operation: "creation"}
	tests := []struct {
		name    string
		c       templ.Component
		want    []string
		notWant []string
	}{
		{
			name: "result data block is JSON that cannot close its script element",
			c: connect.Result(connect.ResultViewModel{Success: true, ProviderName: hostile, AccountIdentifier: hostile,
				Data: connect.ResultData{TargetOrigin: "https://app.example.test",
					Message: connect.Message{Type: connect.MessageSuccess, Grants: []connect.Grant{grant}}}}),
			want:    []string{`<script id="connect-result" type="application/json">`, `data-testid="connect-success"`, `\u003c/script\u003e`},
			notWant: []string{"<script>alert", "<img src=x"},
		},
		{
			name: "error page shows the code and no target origin when none is given",
			c: connect.Result(connect.ResultViewModel{ErrorCode: "access_denied", ErrorDescription: "No.",
				Data: connect.ResultData{Message: connect.Message{Type: connect.MessageError, Error: "access_denied", ErrorDescription: "No."}}}),
			want:    []string{`data-testid="connect-error"`, `data-testid="connect-error-code"`, ">access_denied<", `"type":"alter_connect_error"`},
			notWant: []string{"target_origin", `"*"`},
		},
		{
			name: "consent names the agent and escapes provider text",
			c: connect.Consent(connect.ConsentViewModel{Brand: connect.Brand{AppName: hostile}, ProviderName: hostile,
				Scopes: []string{hostile}, Agent: "Research Bot", Action: "/sdk/oauth/connect/s/x/providers/demo", CSRF: "tok"}),
			want:    []string{`data-testid="connect-consent"`, `data-testid="connect-agent"`, "Research Bot", `name="csrf" value="tok"`, `fill="#1f56d1"`},
			notWant: []string{"<script>alert", "<img src=x"},
		},
		{
			name:    "consent without an agent says nothing about one",
			c:       connect.Consent(connect.ConsentViewModel{Brand: connect.Brand{AppName: "App", Color: "#112233"}, ProviderName: "GitHub"}),
			want:    []string{`fill="#112233"`, "The provider's basic access"},
			notWant: []string{`data-testid="connect-agent"`, `data-testid="connect-back"`},
		},
		{
			name: "picker has one button per provider",
			c: connect.Picker(connect.PickerViewModel{Brand: connect.Brand{AppName: "App"}, Providers: []connect.Provider{
				{Slug: "github", Name: "GitHub", Logo: "data:image/svg+xml;base64,AA==", ConsentURL: "/a"},
				{Slug: "slack", Name: "Slack", Logo: "data:image/svg+xml;base64,AA==", ConsentURL: "/b"},
			}}),
			want: []string{`data-testid="connect-picker"`, `data-testid="connect-provider-github"`, `data-testid="connect-provider-slack"`,
				`src="data:image/svg+xml;base64,AA=="`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			templtest.Check(t, templtest.Render(t, tt.c), tt.want, tt.notWant)
		})
	}
}

func TestShellLoadsOnlyItsOwnScript(t *testing.T) {
	got := templtest.Render(t, connect.Shell(connect.Meta{Title: "Consent", StylesheetURL: "/static/css/app.css?v=1",
		ScriptURL: "/static/js/connect-popup.js?v=1", IconURL: "/static/img/favicon.svg?v=1"}, connect.Loading(connect.LoadingViewModel{ExchangeURL: "/sdk/oauth/connect/exchange"})))
	templtest.Check(t, got, []string{`<script src="/static/js/connect-popup.js?v=1" defer></script>`, `data-exchange-url="/sdk/oauth/connect/exchange"`,
		`data-testid="connect-loading"`, `<title>Consent · Connect · Latchkey</title>`}, nil)
	if strings.Count(got, "<script") != 1 || strings.Contains(got, "htmx") {
		t.Errorf("the popup loads more than its own script:\n%s", got)
	}
}
