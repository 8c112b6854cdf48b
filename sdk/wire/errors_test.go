package wire

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// wantStatus is DESIGN.md §4.5 (plus the codes this package adds), written
// out independently of the switch in HTTPStatus.
func wantStatus() map[ErrorCode]int {
	return map[ErrorCode]int{
		"invalid_request":             400,
		"malformed_auth":              401,
		"invalid_key":                 401,
		"key_revoked":                 401,
		"timestamp_out_of_range":      401,
		"invalid_signature":           401,
		"replayed_request":            401,
		"invalid_user_token":          401,
		"agent_cannot_use_user_token": 400,
		"forbidden":                   403,
		"not_found":                   404,
		"method_not_allowed":          405,
		"conflict":                    409,
		"payload_too_large":           413,
		"unsupported_media_type":      415,
		"grant_not_found":             404,
		"grant_revoked":               403,
		"grant_expired":               403,
		"reauth_required":             403,
		"ambiguous_grant":             409,
		"no_delegated_grant":          403,
		"policy_denied":               403,
		"host_not_allowed":            403,
		"provider_not_configured":     404,
		"rate_limited":                429,
		"upstream_unreachable":        502,
		"upstream_timeout":            504,
		"connect_session_expired":     410,
		"connect_session_used":        409,
		"internal":                    500,
	}
}

func TestEveryErrorCodeHasItsStatus(t *testing.T) {
	want := wantStatus()
	codes := ErrorCodes()
	if len(codes) != len(want) {
		t.Fatalf("ErrorCodes() has %d codes, the expected table %d", len(codes), len(want))
	}
	seen := make(map[ErrorCode]bool)
	for _, c := range codes {
		t.Run(string(c), func(t *testing.T) {
			if seen[c] {
				t.Fatal("listed twice")
			}
			seen[c] = true
			if !c.Known() {
				t.Fatal("not Known()")
			}
			w, ok := want[c]
			if !ok {
				t.Fatal("not in the expected table")
			}
			if got := HTTPStatus(c); got != w {
				t.Fatalf("HTTPStatus = %d, want %d", got, w)
			}
		})
	}
}

func TestUnknownErrorCodeMapsToInternal(t *testing.T) {
	for _, c := range []ErrorCode{"", "approval_pending", "Invalid_Request", "nope"} {
		if c.Known() {
			t.Errorf("%q reported as known", c)
		}
		if HTTPStatus(c) != http.StatusInternalServerError {
			t.Errorf("HTTPStatus(%q) = %d, want 500", c, HTTPStatus(c))
		}
	}
}

// TestProtocolDocListsEveryCode keeps docs/sdk-protocol.md's table of codes
// in step with the code, since third-party clients are written from the doc.
func TestProtocolDocListsEveryCode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sdk-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\|\\s*`([a-z_]+)`\\s*\\|\\s*(\\d{3})\\s*\\|").FindAllStringSubmatch(string(doc), -1)
	inDoc := make(map[ErrorCode]int)
	for _, r := range rows {
		status, _ := strconv.Atoi(r[2])
		inDoc[ErrorCode(r[1])] = status
	}
	for _, c := range ErrorCodes() {
		if got, ok := inDoc[c]; !ok {
			t.Errorf("%s missing from the doc's code table", c)
		} else if got != HTTPStatus(c) {
			t.Errorf("%s: doc says %d, code says %d", c, got, HTTPStatus(c))
		}
	}
	for c := range inDoc {
		if !c.Known() {
			t.Errorf("doc lists %s, which the code does not define", c)
		}
	}
}

func TestErrorBodyJSONShape(t *testing.T) {
	tests := []struct {
		name string
		body ErrorBody
		want string
	}{
		{
			"with details",
			ErrorBody{Error: ErrorDetail{
				Code: CodeAmbiguousGrant, Message: "several github grants match", RequestID: "req_1",
				Details: map[string]any{DetailAccountIdentifiers: []string{"octocat", "hubot"}},
			}},
			`{"error":{"code":"ambiguous_grant","message":"several github grants match","request_id":"req_1","details":{"account_identifiers":["octocat","hubot"]}}}`,
		},
		{
			"without details",
			ErrorBody{Error: ErrorDetail{Code: CodeInternal, Message: "internal error", RequestID: "req_2"}},
			`{"error":{"code":"internal","message":"internal error","request_id":"req_2"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
			var back ErrorBody
			if err := json.Unmarshal(b, &back); err != nil || back.Error.Code != tt.body.Error.Code {
				t.Fatalf("does not decode back: %v", err)
			}
		})
	}
}
