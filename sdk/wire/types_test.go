package wire

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func wireTypes() []any {
	return []any{
		ProxyRequest{}, TokenRequest{}, TokenResponse{}, Injection{}, Grant{}, GrantList{},
		Principal{}, ManagedSecretGrantRequest{}, Me{}, EndUser{}, ConnectSessionRequest{},
		ConnectSessionResponse{}, ConnectSessionStatus{}, ApprovalEnvelope{}, Approval{},
		ApprovalResult{}, Agent{}, AgentKey{}, CreateAgentRequest{}, CreateAgentResponse{},
		AgentList{}, MintAgentKeyRequest{}, ErrorBody{}, ErrorDetail{}, Vector{},
	}
}

func TestWireTypesUseSnakeCaseJSON(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	for _, v := range wireTypes() {
		typ := reflect.TypeOf(v)
		t.Run(typ.Name(), func(t *testing.T) {
			for i := range typ.NumField() {
				f := typ.Field(i)
				tag, ok := f.Tag.Lookup("json")
				if !ok {
					t.Errorf("%s has no json tag", f.Name)
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !snake.MatchString(name) {
					t.Errorf("%s json name %q is not snake_case", f.Name, name)
				}
			}
		})
	}
}

func TestProxyRequestDecodesTheDesignExample(t *testing.T) {
	// The example body from DESIGN.md §4.6.
	const body = `{"method": "GET", "url": "https://api.github.com/user/repos?per_page=5",
	 "grant_id": "g-1", "provider": "github", "account": "octocat",
	 "headers": {"Accept": "application/vnd.github+json"},
	 "json": {"a": [1, 2]}, "body_base64": "aGk=",
	 "reason": "list repos for the weekly digest", "context": {"run_id": "r-42"},
	 "timeout_ms": 30000}`
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var p ProxyRequest
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	want := ProxyRequest{
		Method: "GET", URL: "https://api.github.com/user/repos?per_page=5", GrantID: "g-1",
		Provider: "github", Account: "octocat", Headers: map[string]string{"Accept": "application/vnd.github+json"},
		JSON: json.RawMessage(`{"a": [1, 2]}`), BodyBase64: "aGk=", Reason: "list repos for the weekly digest",
		Context: map[string]string{"run_id": "r-42"}, TimeoutMS: 30000,
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v", p)
	}
}

func TestWireTypesRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"grant", Grant{
			GrantID: "g-1", Provider: "github", ProviderName: "GitHub", AccountIdentifier: "octocat",
			Principal: Principal{Kind: PrincipalUser, ID: "u-123"}, Status: GrantActive,
			Scopes: []string{"repo"}, CreatedAt: at, UpdatedAt: at,
		}, `{"grant_id":"g-1","provider":"github","provider_name":"GitHub","account_identifier":"octocat","principal":{"kind":"user","id":"u-123"},"status":"active","scopes":["repo"],"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`},
		{"me for an app key acting as an agent", Me{
			Kind: KeyKindAgent, AppID: "a-1", AppName: "Digest", AgentID: "ag-1", AgentName: "research-bot",
			KeyID: "lk_app_k4v2m8q1x7c3z9p0", KeyStatus: KeyStatusDeprecated,
		}, `{"kind":"agent","app_id":"a-1","app_name":"Digest","agent_id":"ag-1","agent_name":"research-bot","key_id":"lk_app_k4v2m8q1x7c3z9p0","key_status":"deprecated"}`},
		{"held call", ApprovalEnvelope{Approval: Approval{
			ApprovalID: "ap-1", Status: ApprovalPending, ApprovalURL: "https://lk.example/wallet/approvals/ap-1", ExpiresAt: at,
		}}, `{"approval":{"approval_id":"ap-1","status":"pending","approval_url":"https://lk.example/wallet/approvals/ap-1","expires_at":"2026-01-01T00:00:00Z"}}`},
		{"token response", TokenResponse{
			AccessToken: "gho_x", TokenType: "bearer", ExpiresAt: &at, GrantID: "g-1",
			Injection: Injection{In: "header", Name: "Authorization", Format: "Bearer {token}"},
		}, `{"access_token":"gho_x","token_type":"bearer","expires_at":"2026-01-01T00:00:00Z","grant_id":"g-1","injection":{"in":"header","name":"Authorization","format":"Bearer {token}"}}`},
		{"connect session request", ConnectSessionRequest{
			AllowedProviders: []string{"github"}, AllowedOrigin: "https://app.example.com",
			EndUser:  &EndUser{ID: "u-123", Email: "ada@example.com", DisplayName: "Ada"},
			Metadata: map[string]string{"plan": "pro"},
		}, `{"allowed_providers":["github"],"allowed_origin":"https://app.example.com","end_user":{"id":"u-123","email":"ada@example.com","display_name":"Ada"},"metadata":{"plan":"pro"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
			back := reflect.New(reflect.TypeOf(tt.in))
			if err := json.Unmarshal(b, back.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Elem().Interface(), tt.in) {
				t.Fatalf("round trip changed the value: %+v", back.Elem().Interface())
			}
		})
	}
}
