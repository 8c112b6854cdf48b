package quirkyprovider_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/testutil/quirkyprovider"
)

const callback = "http://client.example/callback"

func config(p *quirkyprovider.Provider) *oauth2.Config {
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &oauth2.Config{ClientID: p.ClientID(), ClientSecret: p.ClientSecret(), Endpoint: ep, RedirectURL: callback}
}

func ctx(t *testing.T, p *quirkyprovider.Provider) context.Context {
	return context.WithValue(t.Context(), oauth2.HTTPClient, p.Client())
}

func refresh(t *testing.T, p *quirkyprovider.Provider, rt string) (*oauth2.Token, error) {
	return config(p).TokenSource(ctx(t, p), &oauth2.Token{RefreshToken: rt}).Token()
}

// rawRefresh posts a refresh request and returns status, headers and the
// decoded body (nil when it is not JSON).
func rawRefresh(t *testing.T, p *quirkyprovider.Provider, rt string) (*http.Response, map[string]any, string) {
	t.Helper()
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.TokenURL(), strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(p.ClientID(), p.ClientSecret())
	resp, err := p.Client().Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return resp, body, string(raw)
}

func errorCode(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want *oauth2.RetrieveError, got %v", err)
	}
	return re.ErrorCode
}

func apiStatus(t *testing.T, p *quirkyprovider.Provider, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, p.APIURL()+"/things", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestIssueInitialSeedsAWorkingTokenPair(t *testing.T) {
	p := quirkyprovider.New(t)
	tok := p.IssueInitial("octocat")
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Subject != "octocat" {
		t.Fatalf("tokens = %+v", tok)
	}
	if st, _ := apiStatus(t, p, tok.AccessToken); st != http.StatusOK {
		t.Fatalf("API with a fresh token: %d", st)
	}
	if st, www := apiStatus(t, p, ""); st != http.StatusUnauthorized || !strings.HasPrefix(www, "Bearer") {
		t.Fatalf("API without a token: %d %q", st, www)
	}
	if st, _ := apiStatus(t, p, "at_unknown"); st != http.StatusUnauthorized {
		t.Fatalf("API with an unknown token: %d", st)
	}
	if got := p.IssueInitial("").Subject; got != quirkyprovider.DefaultSubject {
		t.Errorf("default subject = %q", got)
	}
	if p.APICalls() != 3 {
		t.Errorf("APICalls = %d, want 3", p.APICalls())
	}
}

func TestRefreshRotationAndReuseDetection(t *testing.T) {
	for _, tc := range []struct {
		name            string
		rotate, detect  bool
		wantNewRT       bool
		wantOldRTWorks  bool
		wantFamilyAlive bool // after presenting the old token again
	}{
		{"rotation with reuse detection (default)", true, true, true, false, false},
		{"rotation without reuse detection", true, false, true, false, true},
		{"no rotation", false, true, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := quirkyprovider.New(t)
			p.SetRotation(tc.rotate)
			p.SetReuseDetection(tc.detect)
			first := p.IssueInitial("ada")

			second, err := refresh(t, p, first.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if rotated := second.RefreshToken != first.RefreshToken; rotated != tc.wantNewRT {
				t.Fatalf("rotated = %v, want %v", rotated, tc.wantNewRT)
			}
			_, err = refresh(t, p, first.RefreshToken)
			if tc.wantOldRTWorks {
				if err != nil {
					t.Fatalf("old refresh token: %v", err)
				}
				return
			}
			if errorCode(t, err) != "invalid_grant" {
				t.Fatalf("old refresh token: %v, want invalid_grant", err)
			}
			if alive := p.RefreshTokenValid(second.RefreshToken); alive != tc.wantFamilyAlive {
				t.Errorf("current refresh token valid = %v, want %v", alive, tc.wantFamilyAlive)
			}
			if alive := p.AccessTokenValid(second.AccessToken); alive != tc.wantFamilyAlive {
				t.Errorf("current access token valid = %v, want %v", alive, tc.wantFamilyAlive)
			}
			if p.ReuseDetected() != 1 {
				t.Errorf("ReuseDetected = %d, want 1", p.ReuseDetected())
			}
		})
	}
}

func TestOmittedRefreshTokenKeepsTheOldOneValid(t *testing.T) {
	p := quirkyprovider.New(t)
	p.SetOmitRefreshToken(true)
	tok := p.IssueInitial("ada")
	resp, body, _ := rawRefresh(t, p, tok.RefreshToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, body)
	}
	if _, has := body["refresh_token"]; has {
		t.Fatalf("response carries a refresh_token: %v", body)
	}
	if _, err := refresh(t, p, tok.RefreshToken); err != nil {
		t.Fatalf("the old refresh token must keep working: %v", err)
	}
}

func TestExpiresInShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode quirkyprovider.ExpiresIn
		want any // decoded JSON value; nil for absent
	}{
		{"number", quirkyprovider.ExpiresNumber, float64(3600)},
		{"string", quirkyprovider.ExpiresString, "3600"},
		{"missing", quirkyprovider.ExpiresMissing, nil},
		{"zero", quirkyprovider.ExpiresZero, float64(0)},
		{"negative", quirkyprovider.ExpiresNegative, float64(-3600)},
		{"ten years", quirkyprovider.ExpiresTenYears, float64(315360000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := quirkyprovider.New(t)
			p.SetExpiresIn(tc.mode)
			resp, body, raw := rawRefresh(t, p, p.IssueInitial("ada").RefreshToken)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("refresh: %d %s", resp.StatusCode, raw)
			}
			got, has := body["expires_in"]
			if tc.want == nil {
				if has {
					t.Fatalf("expires_in present: %s", raw)
				}
			} else if got != tc.want {
				t.Fatalf("expires_in = %#v, want %#v (%s)", got, tc.want, raw)
			}
			// Whatever the field says, the token really lives SetAccessTTL.
			if st, _ := apiStatus(t, p, body["access_token"].(string)); st != http.StatusOK {
				t.Errorf("new access token: %d", st)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name           string
		fault          quirkyprovider.Fault
		wantStatus     int
		wantError      string
		wantRetryAfter string
		wantWWWAuth    bool
	}{
		{"invalid_grant", quirkyprovider.InvalidGrant(), 400, "invalid_grant", "", false},
		{"invalid_client", quirkyprovider.InvalidClient(), 401, "invalid_client", "", true},
		{"429 with Retry-After seconds", quirkyprovider.RateLimited("30"), 429, "", "30", false},
		{"429 with Retry-After date", quirkyprovider.RateLimited("Wed, 21 Oct 2026 07:28:00 GMT"), 429, "", "Wed, 21 Oct 2026 07:28:00 GMT", false},
		{"500", quirkyprovider.ServerError(500), 500, "", "", false},
		{"502", quirkyprovider.ServerError(502), 502, "", "", false},
		{"503 with Retry-After", quirkyprovider.Fault{Status: 503, RetryAfter: "5"}, 503, "", "5", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := quirkyprovider.New(t)
			tok := p.IssueInitial("ada")
			p.SetFault(tc.fault)
			for range 2 { // persistent until cleared
				resp, body, raw := rawRefresh(t, p, tok.RefreshToken)
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.wantStatus, raw)
				}
				if tc.wantError != "" && body["error"] != tc.wantError {
					t.Errorf("error = %v, want %s", body["error"], tc.wantError)
				}
				if tc.wantError == "" && body != nil {
					t.Errorf("want a non-JSON body, got %s", raw)
				}
				if got := resp.Header.Get("Retry-After"); got != tc.wantRetryAfter {
					t.Errorf("Retry-After = %q, want %q", got, tc.wantRetryAfter)
				}
				if has := resp.Header.Get("WWW-Authenticate") != ""; has != tc.wantWWWAuth {
					t.Errorf("WWW-Authenticate present = %v", has)
				}
			}
			p.ClearFault()
			if _, err := refresh(t, p, tok.RefreshToken); err != nil {
				t.Fatalf("after ClearFault: %v (a fault must not consume the refresh token)", err)
			}
		})
	}
}

func TestFailNextFailsOnlyThatManyRequests(t *testing.T) {
	p := quirkyprovider.New(t)
	tok := p.IssueInitial("ada")
	p.FailNext(2, quirkyprovider.ServerError(503))
	for i := range 2 {
		if resp, _, _ := rawRefresh(t, p, tok.RefreshToken); resp.StatusCode != 503 {
			t.Fatalf("request %d: %d, want 503", i+1, resp.StatusCode)
		}
	}
	if resp, _, raw := rawRefresh(t, p, tok.RefreshToken); resp.StatusCode != 200 {
		t.Fatalf("third request: %d %s", resp.StatusCode, raw)
	}
	if got := p.TokenCallsFor("refresh_token"); got != 3 {
		t.Errorf("refresh calls = %d, want 3", got)
	}
}

func TestClientAuthentication(t *testing.T) {
	p := quirkyprovider.New(t, quirkyprovider.WithClient("app", "s3cret"))
	tok := p.IssueInitial("ada")
	for _, tc := range []struct {
		name     string
		style    oauth2.AuthStyle
		secret   string
		wantErr  string
		wantAuth string
	}{
		{"basic", oauth2.AuthStyleInHeader, "s3cret", "", "basic"},
		{"body", oauth2.AuthStyleInParams, "s3cret", "", "post"},
		{"wrong secret", oauth2.AuthStyleInHeader, "nope", "invalid_client", "basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.SetRotation(false)
			cfg := config(p)
			cfg.ClientSecret = tc.secret
			cfg.Endpoint.AuthStyle = tc.style
			_, err := cfg.TokenSource(ctx(t, p), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if tc.wantErr != "" && errorCode(t, err) != tc.wantErr {
				t.Fatalf("want %s, got %v", tc.wantErr, err)
			}
			reqs := p.TokenRequests()
			last := reqs[len(reqs)-1]
			if last.ClientAuth != tc.wantAuth || last.GrantType != "refresh_token" {
				t.Errorf("recorded %+v", last)
			}
			if last.Form.Has("client_secret") {
				t.Error("recorded form keeps client_secret")
			}
		})
	}
}

func TestGatedTokenEndpointShowsWhyRefreshMustBeSingleFlight(t *testing.T) {
	p := quirkyprovider.New(t)
	tok := p.IssueInitial("ada")
	gate := make(chan struct{})
	p.SetTokenGate(gate)

	const herd = 5
	type result struct {
		status int
		body   map[string]any
	}
	results := make(chan result, herd)
	var wg sync.WaitGroup
	for range herd {
		wg.Go(func() {
			resp, body, _ := rawRefresh(t, p, tok.RefreshToken)
			results <- result{resp.StatusCode, body}
		})
	}
	waitCtx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := p.AwaitBlocked(waitCtx, herd); err != nil {
		t.Fatal(err)
	}
	if p.TokenCalls() != herd || p.TokenCallsFor("refresh_token") != herd {
		t.Fatalf("calls = %d (refresh %d), want %d counted while blocked", p.TokenCalls(), p.TokenCallsFor("refresh_token"), herd)
	}

	// Release one: it rotates the token.
	gate <- struct{}{}
	first := <-results
	if first.status != http.StatusOK {
		t.Fatalf("first released request: %d %v", first.status, first.body)
	}
	// Release the rest: each presents the rotated-out token — reuse.
	close(gate)
	wg.Wait()
	close(results)
	for r := range results {
		if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
			t.Errorf("late request: %d %v, want invalid_grant", r.status, r.body)
		}
	}
	if p.ReuseDetected() != herd-1 {
		t.Errorf("ReuseDetected = %d, want %d", p.ReuseDetected(), herd-1)
	}
	// ... and the winner's new tokens died with the family.
	if p.RefreshTokenValid(first.body["refresh_token"].(string)) {
		t.Error("the family should be revoked after reuse")
	}
	if p.Blocked() != 0 {
		t.Errorf("Blocked = %d after release", p.Blocked())
	}
}

func TestSlowTokenEndpointRespectsClientTimeout(t *testing.T) {
	p := quirkyprovider.New(t)
	tok := p.IssueInitial("ada")
	p.SetTokenDelay(time.Minute)
	c := p.Client()
	c.Timeout = 50 * time.Millisecond
	cctx := context.WithValue(t.Context(), oauth2.HTTPClient, c)
	start := time.Now()
	_, err := config(p).TokenSource(cctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err == nil {
		t.Fatal("want a timeout")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("the delay did not end when the client gave up")
	}
	p.SetTokenDelay(0)
	if _, err := refresh(t, p, tok.RefreshToken); err != nil {
		t.Fatalf("after the delay is removed: %v", err)
	}
}

func TestCloseReleasesBlockedRequests(t *testing.T) {
	p := quirkyprovider.New(t)
	tok := p.IssueInitial("ada")
	p.SetTokenGate(make(chan struct{})) // never released
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = refresh(t, p, tok.RefreshToken)
	}()
	waitCtx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := p.AwaitBlocked(waitCtx, 1); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a blocked request")
	}
	<-done
	p.Close() // idempotent
}

func TestRevocationEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		pick func(quirkyprovider.Tokens) string
	}{
		{"refresh token", func(t quirkyprovider.Tokens) string { return t.RefreshToken }},
		{"access token", func(t quirkyprovider.Tokens) string { return t.AccessToken }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := quirkyprovider.New(t)
			tok := p.IssueInitial("ada")
			keep := p.IssueInitial("grace")
			v := url.Values{"token": {tc.pick(tok)}}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.RevokeURL(), strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(p.ClientID(), p.ClientSecret())
			resp, err := p.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke: %d", resp.StatusCode)
			}
			if !p.WasRevoked(tc.pick(tok)) || len(p.Revoked()) != 1 || p.RevokeCalls() != 1 {
				t.Fatalf("revocation not recorded: %v", p.Revoked())
			}
			if st, _ := apiStatus(t, p, tok.AccessToken); st != http.StatusUnauthorized {
				t.Errorf("API after revocation: %d", st)
			}
			if _, err := refresh(t, p, tok.RefreshToken); errorCode(t, err) != "invalid_grant" {
				t.Errorf("refresh after revocation: %v", err)
			}
			if st, _ := apiStatus(t, p, keep.AccessToken); st != http.StatusOK {
				t.Errorf("another user's token was revoked: %d", st)
			}
		})
	}
}

func TestRevocationRequiresClientAuthentication(t *testing.T) {
	p := quirkyprovider.New(t)
	tok := p.IssueInitial("ada")
	v := url.Values{"token": {tok.RefreshToken}}
	resp, err := p.Client().PostForm(p.RevokeURL(), v)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || p.WasRevoked(tok.RefreshToken) {
		t.Fatalf("unauthenticated revocation: %d, recorded %v", resp.StatusCode, p.Revoked())
	}
}

func TestAPIAnswers401ForExpiredTokens(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	p := quirkyprovider.New(t, quirkyprovider.WithClock(clock), quirkyprovider.WithAccessTTL(time.Minute))
	tok := p.IssueInitial("ada")
	if !tok.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Errorf("ExpiresAt = %v", tok.ExpiresAt)
	}
	advance(time.Minute)
	st, www := apiStatus(t, p, tok.AccessToken)
	if st != http.StatusUnauthorized || !strings.Contains(www, `error="invalid_token"`) || !strings.Contains(www, "expired") {
		t.Fatalf("expired token: %d %q", st, www)
	}
	fresh, err := refresh(t, p, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if st, _ := apiStatus(t, p, fresh.AccessToken); st != http.StatusOK {
		t.Fatalf("refreshed token: %d", st)
	}

	// ExpireAccessTokens forces the "upstream says 401" case without a clock.
	p.ExpireAccessTokens()
	if st, _ := apiStatus(t, p, fresh.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("after ExpireAccessTokens: %d", st)
	}
}

func TestProviderSideRevocationOfAFamily(t *testing.T) {
	p := quirkyprovider.New(t)
	tok := p.IssueInitial("ada")
	p.RevokeFamilyOf(tok.AccessToken)
	if _, err := refresh(t, p, tok.RefreshToken); errorCode(t, err) != "invalid_grant" {
		t.Fatalf("refresh after the user disconnected: %v", err)
	}
}

func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	p := quirkyprovider.New(t)
	p.SetExpiresIn(quirkyprovider.ExpiresString) // the quirks apply to the code exchange too
	cfg := config(p)
	verifier := oauth2.GenerateVerifier()
	noFollow := p.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "octocat")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect: %s", loc.Redacted())
	}
	code := loc.Query().Get("code")

	if _, err := cfg.Exchange(ctx(t, p), code, oauth2.VerifierOption(oauth2.GenerateVerifier())); errorCode(t, err) != "invalid_grant" {
		t.Fatalf("wrong verifier: %v", err)
	}
	// The failed attempt burned the code.
	if _, err := cfg.Exchange(ctx(t, p), code, oauth2.VerifierOption(verifier)); errorCode(t, err) != "invalid_grant" {
		t.Fatalf("code reuse: %v", err)
	}

	resp, err = noFollow.Get(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "octocat")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ = url.Parse(resp.Header.Get("Location"))
	tok, err := cfg.Exchange(ctx(t, p), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange (expires_in as a string): %v", err)
	}
	if tok.Expiry.IsZero() {
		t.Error("x/oauth2 should read a string expires_in")
	}
	uresp, err := oauth2.NewClient(ctx(t, p), oauth2.StaticTokenSource(tok)).Get(p.UserinfoURL())
	if err != nil {
		t.Fatal(err)
	}
	defer uresp.Body.Close()
	var who map[string]string
	if err := json.NewDecoder(uresp.Body).Decode(&who); err != nil {
		t.Fatal(err)
	}
	if who["id"] != "octocat" {
		t.Errorf("userinfo = %v", who)
	}
	if p.TokenCallsFor("authorization_code") != 3 || p.TokenCallsFor("refresh_token") != 0 || p.TokenCalls() != 3 {
		t.Errorf("calls: code %d refresh %d total %d", p.TokenCallsFor("authorization_code"), p.TokenCallsFor("refresh_token"), p.TokenCalls())
	}
}

func TestTLSProvider(t *testing.T) {
	p := quirkyprovider.New(t, quirkyprovider.WithTLS())
	if !strings.HasPrefix(p.URL(), "https://") {
		t.Fatalf("URL = %s", p.URL())
	}
	if _, err := refresh(t, p, p.IssueInitial("ada").RefreshToken); err != nil {
		t.Fatalf("refresh over TLS: %v", err)
	}
}
