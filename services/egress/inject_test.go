package egress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseInjection(t *testing.T) {
	tests := []struct {
		name     string
		template string
		want     Injection
		wantErr  bool
	}{
		{name: "bearer header", template: "header:Authorization:Bearer {secret}",
			want: Injection{Kind: InjectHeader, Name: "Authorization", Value: "Bearer {secret}"}},
		{name: "custom header", template: "header:X-Api-Key:{secret}",
			want: Injection{Kind: InjectHeader, Name: "X-Api-Key", Value: "{secret}"}},
		{name: "value may contain colons", template: "header:X-Auth:token:{secret}:v1",
			want: Injection{Kind: InjectHeader, Name: "X-Auth", Value: "token:{secret}:v1"}},
		{name: "query parameter", template: "query:api_key:{secret}",
			want: Injection{Kind: InjectQuery, Name: "api_key", Value: "{secret}"}},
		{name: "basic with a fixed user", template: "basic:svc-user:{secret}",
			want: Injection{Kind: InjectBasic, Username: "svc-user", Password: "{secret}"}},
		{name: "basic with the secret as user", template: "basic:{secret}:",
			want: Injection{Kind: InjectBasic, Username: "{secret}", Password: ""}},
		{name: "basic password may contain colons", template: "basic:api:x:{secret}",
			want: Injection{Kind: InjectBasic, Username: "api", Password: "x:{secret}"}},

		{name: "no kind", template: "Authorization", wantErr: true},
		{name: "unknown kind", template: "cookie:session:{secret}", wantErr: true},
		{name: "missing value", template: "header:X-Api-Key", wantErr: true},
		{name: "no placeholder", template: "header:X-Api-Key:sk_live_abc", wantErr: true},
		{name: "two placeholders", template: "header:X-Api-Key:{secret}{secret}", wantErr: true},
		{name: "placeholder in user and password", template: "basic:{secret}:{secret}", wantErr: true},
		{name: "header name with space", template: "header:X Api:{secret}", wantErr: true},
		{name: "empty header name", template: "header::{secret}", wantErr: true},
		{name: "CR LF in value", template: "header:X-Api-Key:{secret}\r\nX-Evil: 1", wantErr: true},
		{name: "LF in value", template: "header:X-Api-Key:{secret}\n", wantErr: true},
		{name: "NUL in query value", template: "query:k:{secret}\x00", wantErr: true},
		{name: "LF in query name", template: "query:a\nb:{secret}", wantErr: true},
		{name: "empty query name", template: "query::{secret}", wantErr: true},
		{name: "CR in basic user", template: "basic:a\rb:{secret}", wantErr: true},
		{name: "Host header", template: "header:Host:{secret}", wantErr: true},
		{name: "hop-by-hop header", template: "header:Connection:{secret}", wantErr: true},
		{name: "Transfer-Encoding", template: "header:transfer-encoding:{secret}", wantErr: true},
		{name: "Content-Length", template: "header:Content-Length:{secret}", wantErr: true},
		{name: "Latchkey header", template: "header:Latchkey-Grant-Id:{secret}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInjection(tt.template)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseInjection(%q) = %+v, want an error", tt.template, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseInjection(%q): %v", tt.template, err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.template {
				t.Fatalf("String() = %q, want %q", got.String(), tt.template)
			}
		})
	}
}

func TestParseInjectionNeverEchoesTheTemplate(t *testing.T) {
	// An operator who pasted the real key where {secret} belongs.
	const pasted = "sk_live_51HxyzVerySecret"
	for _, tmpl := range []string{
		"header:X-Api-Key:" + pasted,
		"header:X-Api-Key:" + pasted + "\r\n",
		pasted,
		pasted + ":x",
		"query:api_key:" + pasted,
		"basic:" + pasted + ":" + pasted,
	} {
		_, err := ParseInjection(tmpl)
		if err == nil {
			t.Fatalf("ParseInjection accepted a template without {secret}")
		}
		if strings.Contains(err.Error(), pasted) {
			t.Fatalf("error %q echoes the template", err)
		}
	}
}

func TestSecretRedactsItself(t *testing.T) {
	const raw = "tok-very-secret"
	call := Call{Method: "GET", URL: "https://api.example.com/", Secret: raw}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	logger.Info("call", "secret", call.Secret, "call", call)
	textLogger := slog.New(slog.NewTextHandler(&logBuf, nil))
	textLogger.Info("call", "secret", call.Secret, "call", call)
	js, _ := json.Marshal(call)
	for name, out := range map[string]string{
		"%v":   fmt.Sprintf("%v", call),
		"%+v":  fmt.Sprintf("%+v", call),
		"%#v":  fmt.Sprintf("%#v", call),
		"%s":   fmt.Sprintf("%s", call.Secret),
		"json": string(js),
		"slog": logBuf.String(),
	} {
		if strings.Contains(out, raw) {
			t.Errorf("%s output contains the secret: %s", name, out)
		}
	}
}
