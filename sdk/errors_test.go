package sdk_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

// sentinelsByCode lists every exported sentinel by hand, so a wire code
// added without one fails TestEveryErrorCodeMapsToItsSentinel.
func sentinelsByCode() map[wire.ErrorCode]error {
	return map[wire.ErrorCode]error{
		wire.CodeInvalidRequest:          sdk.ErrInvalidRequest,
		wire.CodeMalformedAuth:           sdk.ErrMalformedAuth,
		wire.CodeInvalidKey:              sdk.ErrInvalidKey,
		wire.CodeKeyRevoked:              sdk.ErrKeyRevoked,
		wire.CodeTimestampOutOfRange:     sdk.ErrTimestampOutOfRange,
		wire.CodeInvalidSignature:        sdk.ErrInvalidSignature,
		wire.CodeReplayedRequest:         sdk.ErrReplayedRequest,
		wire.CodeInvalidUserToken:        sdk.ErrInvalidUserToken,
		wire.CodeAgentCannotUseUserToken: sdk.ErrAgentCannotUseUserToken,
		wire.CodeForbidden:               sdk.ErrForbidden,
		wire.CodeNotFound:                sdk.ErrNotFound,
		wire.CodeMethodNotAllowed:        sdk.ErrMethodNotAllowed,
		wire.CodeConflict:                sdk.ErrConflict,
		wire.CodePayloadTooLarge:         sdk.ErrPayloadTooLarge,
		wire.CodeUnsupportedMediaType:    sdk.ErrUnsupportedMediaType,
		wire.CodeGrantNotFound:           sdk.ErrGrantNotFound,
		wire.CodeGrantRevoked:            sdk.ErrGrantRevoked,
		wire.CodeGrantExpired:            sdk.ErrGrantExpired,
		wire.CodeReauthRequired:          sdk.ErrReauthRequired,
		wire.CodeAmbiguousGrant:          sdk.ErrAmbiguousGrant,
		wire.CodeNoDelegatedGrant:        sdk.ErrNoDelegatedGrant,
		wire.CodePolicyDenied:            sdk.ErrPolicyDenied,
		wire.CodeHostNotAllowed:          sdk.ErrHostNotAllowed,
		wire.CodeProviderNotConfigured:   sdk.ErrProviderNotConfigured,
		wire.CodeRateLimited:             sdk.ErrRateLimited,
		wire.CodeUpstreamUnreachable:     sdk.ErrUpstreamUnreachable,
		wire.CodeUpstreamTimeout:         sdk.ErrUpstreamTimeout,
		wire.CodeConnectSessionExpired:   sdk.ErrConnectSessionExpired,
		wire.CodeConnectSessionUsed:      sdk.ErrConnectSessionUsed,
		wire.CodeInternal:                sdk.ErrInternal,
	}
}

func TestEveryErrorCodeMapsToItsSentinel(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	sentinels := sentinelsByCode()
	if len(sentinels) != len(wire.ErrorCodes()) {
		t.Fatalf("%d sentinels for %d wire codes", len(sentinels), len(wire.ErrorCodes()))
	}
	for _, code := range wire.ErrorCodes() {
		t.Run(string(code), func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				writeError(w, code, "refused: "+string(code))
			}, appKey)
			app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithRetry(sdk.RetryPolicy{MaxAttempts: 1}))
			// Through Proxy, the call where telling Latchkey's errors from
			// upstream answers matters most.
			resp, err := app.Proxy(context.Background(), sdk.Request{URL: "https://api.example.com/x", Provider: "demo"})
			if resp != nil {
				resp.Body.Close()
				t.Fatal("a Latchkey error came back as a response")
			}
			sentinel, ok := sentinels[code]
			if !ok {
				t.Fatalf("no sentinel for %s", code)
			}
			if !errors.Is(err, sentinel) || !errors.Is(err, sdk.CodeError(code)) {
				t.Fatalf("errors.Is(%v, %v) = false", err, sentinel)
			}
			for other, s := range sentinels {
				if other != code && errors.Is(err, s) {
					t.Errorf("also matches %s", other)
				}
			}
			var e *sdk.Error
			if !errors.As(err, &e) {
				t.Fatalf("errors.As(*sdk.Error) failed for %T", err)
			}
			if e.Code != code || e.Status != wire.HTTPStatus(code) || e.Message != "refused: "+string(code) || e.RequestID != "req-1" {
				t.Errorf("got %+v", e)
			}
			want := "latchkey: " + string(code) + ": refused: " + string(code) + " (request id req-1)"
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestAmbiguousGrantExposesTheAccounts(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		writeErrorDetails(w, wire.CodeAmbiguousGrant, "several github grants match", map[string]any{
			wire.DetailAccountIdentifiers: []string{"octocat", "hubot"},
		})
	}, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
	_, err := app.Token(context.Background(), sdk.TokenRequest{Provider: "github"})
	var amb *sdk.AmbiguousGrantError
	if !errors.As(err, &amb) {
		t.Fatalf("err = %T %v, want *AmbiguousGrantError", err, err)
	}
	if !slices.Equal(amb.Accounts, []string{"octocat", "hubot"}) {
		t.Errorf("accounts = %v", amb.Accounts)
	}
	var e *sdk.Error
	if !errors.Is(err, sdk.ErrAmbiguousGrant) || !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Errorf("ambiguous grant error does not unwrap to the *Error: %v", err)
	}
	if errors.Is(err, sdk.ErrGrantNotFound) {
		t.Error("matches grant_not_found too")
	}
}

func TestAnswersWithoutLatchkeysErrorShape(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter)
		wantStatus int
		wantCode   wire.ErrorCode
		wantIs     error
	}{
		{
			name: "an HTML gateway error is summarised by status, body left out",
			answer: func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = w.Write([]byte("<html>nginx secret-ish page</html>"))
			},
			wantStatus: http.StatusBadGateway,
		},
		{
			name: "a code newer than this SDK keeps its code and status",
			answer: func(w http.ResponseWriter) {
				writeJSON(w, http.StatusForbidden, wire.ErrorBody{Error: wire.ErrorDetail{Code: "quota_exhausted", Message: "monthly quota"}})
			},
			wantStatus: http.StatusForbidden,
			wantCode:   "quota_exhausted",
			wantIs:     sdk.CodeError("quota_exhausted"),
		},
		{
			name: "details may be absent",
			answer: func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"error":{"code":"grant_not_found","message":"no grant","request_id":"r-9"}}`))
			},
			wantStatus: http.StatusNotFound,
			wantCode:   wire.CodeGrantNotFound,
			wantIs:     sdk.ErrGrantNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) { tt.answer(w) }, appKey)
			app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
			_, err := app.GetGrant(context.Background(), "g-1")
			var e *sdk.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %T %v", err, err)
			}
			if e.Status != tt.wantStatus || e.Code != tt.wantCode {
				t.Errorf("status %d code %q, want %d %q", e.Status, e.Code, tt.wantStatus, tt.wantCode)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("not Is %v", tt.wantIs)
			}
			if strings.Contains(err.Error(), "nginx") {
				t.Errorf("foreign body text reached the error: %s", err)
			}
		})
	}
}

func TestErrorRetryableFollowsTheProtocol(t *testing.T) {
	tests := []struct {
		name string
		err  sdk.Error
		want bool
	}{
		{"rate limited", sdk.Error{Code: wire.CodeRateLimited, Status: 429}, true},
		{"upstream timeout", sdk.Error{Code: wire.CodeUpstreamTimeout, Status: 504}, true},
		{"internal", sdk.Error{Code: wire.CodeInternal, Status: 500}, true},
		{"policy denied", sdk.Error{Code: wire.CodePolicyDenied, Status: 403}, false},
		{"clock skew", sdk.Error{Code: wire.CodeTimestampOutOfRange, Status: 401}, false},
		{"gateway 503 without a code", sdk.Error{Status: 503}, true},
		{"unknown 4xx without a code", sdk.Error{Status: 418}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Retryable(); got != tt.want {
				t.Errorf("Retryable() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestApprovalPendingErrorMessage(t *testing.T) {
	e := &sdk.ApprovalPendingError{ApprovalID: "ap-1", ApprovalURL: "https://lk.example/approvals/ap-1",
		ExpiresAt: time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC), RequestID: "r-1"}
	want := "latchkey: call held for approval ap-1 (approve at https://lk.example/approvals/ap-1), expires 2026-01-01T01:00:00Z (request id r-1)"
	if e.Error() != want {
		t.Fatalf("Error() = %q", e.Error())
	}
}
