package sdk_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

const testAgentID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"

func mustApp(t *testing.T, key string, opts ...sdk.Option) *sdk.App {
	t.Helper()
	app, err := sdk.NewApp(key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func mustAgent(t *testing.T, key string, opts ...sdk.Option) *sdk.Agent {
	t.Helper()
	ag, err := sdk.NewAgent(key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ag
}

func TestConstructorsCheckTheKeyWithoutRevealingIt(t *testing.T) {
	appKey, agentKey := newKey(wire.KeyKindApp), newKey(wire.KeyKindAgent)
	token := func(context.Context) (string, error) { return "jwt", nil }
	tests := []struct {
		name    string
		build   func() error
		wantErr string // "" means success
	}{
		{"app key builds an app", func() error { _, err := sdk.NewApp(appKey); return err }, ""},
		{"agent key builds an agent", func() error { _, err := sdk.NewAgent(agentKey); return err }, ""},
		{"agent key refused by NewApp", func() error { _, err := sdk.NewApp(agentKey); return err }, "use NewAgent"},
		{"app key refused by NewAgent", func() error { _, err := sdk.NewAgent(appKey); return err }, "use NewApp"},
		{"truncated key refused", func() error { _, err := sdk.NewApp(appKey[:len(appKey)-1]); return err }, "malformed API key"},
		{"surrounding whitespace refused", func() error { _, err := sdk.NewApp(appKey + "\n"); return err }, "whitespace"},
		{"relative base URL refused", func() error { _, err := sdk.NewApp(appKey, sdk.WithBaseURL("latchkey:8080")); return err }, "base URL"},
		{"base URL with credentials refused", func() error {
			_, err := sdk.NewApp(appKey, sdk.WithBaseURL("https://user:pw@latchkey.example"))
			return err
		}, "credentials"},
		{"caller over 200 characters refused", func() error {
			_, err := sdk.NewApp(appKey, sdk.WithCaller(strings.Repeat("é", 201)))
			return err
		}, "caller"},
		{"caller with trailing space refused", func() error { _, err := sdk.NewApp(appKey, sdk.WithCaller("bot ")); return err }, "caller"},
		{"user token refused for an agent key", func() error { _, err := sdk.NewAgent(agentKey, sdk.WithUserToken(token)); return err }, "WithUserToken"},
		{"user token accepted for an app key", func() error { _, err := sdk.NewApp(appKey, sdk.WithUserToken(token)); return err }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			assertNoSecret(t, err.Error(), appKey, agentKey)
		})
	}
}

// TestSignaturesReproduceTheProtocolVectors drives the public API with each
// vector's clock and nonce and expects the exact headers and body of
// docs/sdk-protocol.md appendix B.
func TestSignaturesReproduceTheProtocolVectors(t *testing.T) {
	f, err := os.Open("wire/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vectors, err := wire.LoadVectors(f)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]wire.Vector{}
	for _, v := range vectors {
		byName[v.Name] = v
	}
	calls := map[string]func(ctx context.Context, v wire.Vector, opts []sdk.Option) error{
		"app-get-with-query": func(ctx context.Context, v wire.Vector, opts []sdk.Option) error {
			_, err := mustApp(t, v.APIKey, opts...).ListGrants(ctx, sdk.ListGrantsOptions{Provider: "github", Status: wire.GrantActive, Limit: 10})
			return err
		},
		"app-post-proxy-user-token-caller": func(ctx context.Context, v wire.Vector, opts []sdk.Option) error {
			opts = append(opts, sdk.WithCaller(v.Caller), sdk.WithUserToken(func(context.Context) (string, error) { return v.UserToken, nil }))
			resp, err := mustApp(t, v.APIKey, opts...).Proxy(ctx, sdk.Request{
				Method: "GET", URL: "https://api.github.com/user/repos?per_page=5",
				Provider: "github", Account: "octocat",
				Headers: map[string]string{"Accept": "application/vnd.github+json"},
				Reason:  "résumé of repos for the weekly digest", Context: map[string]string{"run_id": "r-42"},
			})
			if err == nil {
				resp.Body.Close()
			}
			return err
		},
		"agent-delete-delegation": func(ctx context.Context, v wire.Vector, opts []sdk.Option) error {
			return mustAgent(t, v.APIKey, opts...).RevokeDelegation(ctx, "0b7e4f52-8c1d-4a9e-b3f6-2d5c7a9e1f04", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
		},
	}
	for name, do := range calls {
		t.Run(name, func(t *testing.T) {
			v, ok := byName[name]
			if !ok {
				t.Fatalf("vector %s missing", name)
			}
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				writeProxied(w, http.StatusOK, "application/json", "{}")
			}, v.APIKey)
			fake.now = func() time.Time { return time.Unix(v.Timestamp, 0) }
			nonce, _ := base64.RawURLEncoding.DecodeString(v.Nonce)
			opts := []sdk.Option{
				sdk.WithBaseURL(fake.URL()),
				sdk.WithClock(func() time.Time { return time.Unix(v.Timestamp, 0) }),
				sdk.WithRandForTest(bytes.NewReader(nonce)),
			}
			if err := do(context.Background(), v, opts); err != nil {
				t.Fatal(err)
			}
			reqs := fake.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Method != v.Method || got.Target != v.Target || string(got.Body) != v.Body {
				t.Errorf("sent %s %s %q\nwant %s %s %q", got.Method, got.Target, got.Body, v.Method, v.Target, v.Body)
			}
			if sig := got.Header.Get(wire.HeaderSignature); sig != "v1="+v.Signature {
				t.Errorf("signature %s, want v1=%s", sig, v.Signature)
			}
		})
	}
}

func TestEveryRequestIsSignedOverTheBytesSent(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	tests := []struct {
		name       string
		do         func(context.Context, *sdk.App) error
		wantMethod string
		wantTarget string
		wantBody   string
	}{
		{
			name: "GET with an escaped query",
			do: func(ctx context.Context, a *sdk.App) error {
				_, err := a.ListGrants(ctx, sdk.ListGrantsOptions{Provider: "git hub&x=1", Cursor: "c/+=="})
				return err
			},
			wantMethod: "GET",
			wantTarget: "/sdk/v1/grants?provider=git+hub%26x%3D1&cursor=c%2F%2B%3D%3D",
		},
		{
			name: "POST with a JSON body",
			do: func(ctx context.Context, a *sdk.App) error {
				resp, err := a.Proxy(ctx, sdk.Request{Method: "POST", URL: "https://slack.com/api/chat.postMessage", GrantID: "g-1", JSON: map[string]string{"text": "done"}})
				if err == nil {
					resp.Body.Close()
				}
				return err
			},
			wantMethod: "POST",
			wantTarget: "/sdk/v1/proxy",
			wantBody:   `{"method":"POST","url":"https://slack.com/api/chat.postMessage","grant_id":"g-1","json":{"text":"done"}}`,
		},
		{
			name: "DELETE with a query and an id needing escapes",
			do: func(ctx context.Context, a *sdk.App) error {
				_, err := a.RevokeAgentKey(ctx, "a/b", "lk_agent_x", true)
				return err
			},
			wantMethod: "DELETE",
			wantTarget: "/sdk/v1/agents/a%2Fb/keys/lk_agent_x?force=true",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				w.Header().Set(wire.HeaderProxied, "true")
				writeJSON(w, http.StatusOK, map[string]any{})
			}, appKey)
			if err := tt.do(context.Background(), mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))); err != nil {
				t.Fatal(err)
			}
			got := fake.requests()
			if len(got) != 1 {
				t.Fatalf("%d requests reached the server, want 1", len(got))
			}
			if got[0].Method != tt.wantMethod || got[0].Target != tt.wantTarget || string(got[0].Body) != tt.wantBody {
				t.Errorf("sent %s %s %s\nwant %s %s %s", got[0].Method, got[0].Target, got[0].Body, tt.wantMethod, tt.wantTarget, tt.wantBody)
			}
		})
	}
}

func TestBaseURLPathPrefixIsKeptAndSigned(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, nil, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()+"/latchkey/"))
	if _, err := app.Me(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fake.requests()[0].Target; got != "/latchkey/sdk/v1/me" {
		t.Fatalf("target %s", got)
	}
}

func TestUserTokenGetterIsCalledPerRequestAndSigned(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, nil, appKey)
	type userKey struct{}
	var calls atomic.Int32
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithUserToken(func(ctx context.Context) (string, error) {
		calls.Add(1)
		return ctx.Value(userKey{}).(string), nil
	}))
	for _, user := range []string{"jwt-for-ada", "jwt-for-grace", ""} {
		ctx := context.WithValue(context.Background(), userKey{}, user)
		if _, err := app.Me(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 3 {
		t.Errorf("getter called %d times, want once per request (3)", calls.Load())
	}
	reqs := fake.requests()
	for i, want := range []string{"jwt-for-ada", "jwt-for-grace", ""} {
		if got := reqs[i].Auth.UserToken; got != want {
			t.Errorf("request %d: signed user token %q, want %q", i, got, want)
		}
		if _, present := reqs[i].Header[wire.HeaderUserToken]; present != (want != "") {
			t.Errorf("request %d: header present = %v", i, present)
		}
	}
}

func TestUserTokenGetterErrorStopsTheCallBeforeSending(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, nil, appKey)
	boom := errors.New("session expired")
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithUserToken(func(context.Context) (string, error) { return "", boom }))
	if _, err := app.Me(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the getter's error", err)
	}
	if n := len(fake.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestIdentityHeadersAreSentAndSigned(t *testing.T) {
	appKey, agentKey := newKey(wire.KeyKindApp), newKey(wire.KeyKindAgent)
	token := func(context.Context) (string, error) { return "jwt-ada", nil }
	tests := []struct {
		name                        string
		me                          func(base string) error
		wantCaller, wantAgent, want string
	}{
		{
			name: "app with caller and user token",
			me: func(base string) error {
				_, err := mustApp(t, appKey, sdk.WithBaseURL(base), sdk.WithCaller("digest-worker/1.4"), sdk.WithUserToken(token)).Me(context.Background())
				return err
			},
			wantCaller: "digest-worker/1.4", want: "jwt-ada",
		},
		{
			name: "app acting as an agent sends Latchkey-Agent, keeps the caller, drops the user token",
			me: func(base string) error {
				app := mustApp(t, appKey, sdk.WithBaseURL(base), sdk.WithCaller("orchestrator"), sdk.WithUserToken(token))
				_, err := app.GetAgent(testAgentID).Me(context.Background())
				return err
			},
			wantCaller: "orchestrator", wantAgent: testAgentID,
		},
		{
			name: "agent key with caller",
			me: func(base string) error {
				_, err := mustAgent(t, agentKey, sdk.WithBaseURL(base), sdk.WithCaller("research-bot")).Me(context.Background())
				return err
			},
			wantCaller: "research-bot",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, nil, appKey, agentKey)
			if err := tt.me(fake.URL()); err != nil {
				t.Fatal(err)
			}
			a := fake.requests()[0].Auth
			if a.Caller != tt.wantCaller || a.Agent != tt.wantAgent || a.UserToken != tt.want {
				t.Errorf("signed caller=%q agent=%q user token=%q, want %q %q %q", a.Caller, a.Agent, a.UserToken, tt.wantCaller, tt.wantAgent, tt.want)
			}
		})
	}
}

func TestMalformedAgentIDIsReportedWithoutSending(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, nil, appKey)
	ag := mustApp(t, appKey, sdk.WithBaseURL(fake.URL())).GetAgent("research-bot")
	if _, err := ag.Me(context.Background()); err == nil || !strings.Contains(err.Error(), wire.HeaderAgent) {
		t.Fatalf("err = %v, want a Latchkey-Agent format error", err)
	}
	if len(fake.requests()) != 0 {
		t.Fatal("request sent")
	}
}

func TestDeprecatedKeyIsSurfacedOnce(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	deprecated := func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		w.Header().Set(wire.HeaderKeyDeprecated, "true")
		writeJSON(w, http.StatusOK, map[string]any{})
	}
	t.Run("callback once, across agent handles", func(t *testing.T) {
		fake := startFake(t, deprecated, appKey)
		var notified []string
		app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithDeprecationNotice(func(keyID string) { notified = append(notified, keyID) }))
		if app.KeyDeprecated() {
			t.Fatal("deprecated before any answer")
		}
		for range 2 {
			if _, err := app.Me(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := app.GetAgent(testAgentID).Me(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(notified) != 1 || notified[0] != app.KeyID() {
			t.Fatalf("notified %v, want [%s] once", notified, app.KeyID())
		}
		if !app.KeyDeprecated() {
			t.Fatal("KeyDeprecated false")
		}
	})
	t.Run("warning logged once without a callback", func(t *testing.T) {
		fake := startFake(t, deprecated, appKey)
		var logs bytes.Buffer
		app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		for range 3 {
			if _, err := app.Me(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if n := strings.Count(logs.String(), "deprecated"); n != 1 {
			t.Fatalf("logged %d deprecation warnings, want 1:\n%s", n, logs.String())
		}
		if !strings.Contains(logs.String(), app.KeyID()) {
			t.Errorf("warning does not name the key id: %s", logs.String())
		}
		assertNoSecret(t, logs.String(), appKey)
	})
	t.Run("also on an error answer", func(t *testing.T) {
		fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
			w.Header().Set(wire.HeaderKeyDeprecated, "true")
			writeError(w, wire.CodeForbidden, "no")
		}, appKey)
		app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithDeprecationNotice(func(string) {}))
		_, _ = app.Me(context.Background())
		if !app.KeyDeprecated() {
			t.Fatal("deprecation on an error answer was ignored")
		}
	})
}

// TestNothingPrintsTheKeyOrTokens collects every string the SDK produces on
// its error paths and from fmt, and looks for the key, its secret, the
// signing key, signatures and the user token in them.
func TestNothingPrintsTheKeyOrTokens(t *testing.T) {
	appKey, agentKey := newKey(wire.KeyKindApp), newKey(wire.KeyKindAgent)
	const userToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEyMyJ9.c2VjcmV0LXNpZ25hdHVyZQ"
	var signatures []string
	fake := startFake(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		signatures = append(signatures, strings.TrimPrefix(s.Header.Get(wire.HeaderSignature), "v1="))
		switch r.URL.Path {
		case wire.PathMe:
			writeError(w, wire.CodeInvalidUserToken, "user token failed verification")
		case wire.PathAgents + "/" + testAgentID + "/keys":
			writeJSON(w, http.StatusCreated, wire.AgentKey{KeyID: "lk_agent_x", Status: wire.KeyStatusActive, APIKey: agentKey})
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("<html>down</html>"))
		}
	}, appKey, agentKey)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithLogger(logger), sdk.WithRetry(sdk.RetryPolicy{MaxAttempts: 2}),
		sdk.WithSleepForTest(func(context.Context, time.Duration) error { return nil }),
		sdk.WithUserToken(func(context.Context) (string, error) { return userToken, nil }))
	agent := mustAgent(t, agentKey, sdk.WithBaseURL("http://127.0.0.1:1"), sdk.WithRetry(sdk.RetryPolicy{MaxAttempts: 1}))
	ctx := context.Background()

	var out []string
	addErr := func(err error) {
		if err == nil {
			t.Error("expected an error")
			return
		}
		out = append(out, err.Error(), fmt.Sprintf("%+v %#v", err, err))
	}
	_, err := app.Me(ctx)
	addErr(err)
	_, err = app.ListGrants(ctx, sdk.ListGrantsOptions{})
	addErr(err)
	_, err = agent.Me(ctx)
	addErr(err)
	_, err = sdk.NewApp(agentKey)
	addErr(err)
	_, err = sdk.NewAgent(appKey)
	addErr(err)
	_, err = sdk.NewApp(" " + appKey)
	addErr(err)
	minted, err := app.MintAgentKey(ctx, testAgentID, wire.MintAgentKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if minted.APIKey.Reveal() != agentKey {
		t.Fatal("minted key lost")
	}
	logger.Info("minted", "key", minted.APIKey, "minted", minted)
	out = append(out,
		fmt.Sprint(app), fmt.Sprintf("%v %+v %#v %s", app, *app, app, app),
		fmt.Sprint(agent), fmt.Sprintf("%v %+v %#v", agent, *agent, app.GetAgent(testAgentID)),
		fmt.Sprintf("%v %+v %#v %s", minted, *minted, minted, minted.APIKey),
		logs.String(),
	)
	secrets := []string{appKey, agentKey, userToken}
	for _, k := range []string{appKey, agentKey} {
		parsed, _ := wire.ParseKey(k)
		secrets = append(secrets, k[strings.LastIndex(k, "_")+1:], fmt.Sprintf("%x", parsed.SigningKey()))
	}
	secrets = append(secrets, signatures...)
	for _, s := range out {
		assertNoSecret(t, s, secrets...)
	}
}

func assertNoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("output contains a secret (%d characters):\n%s", len(secret), s)
		}
	}
}

func TestRedirectsAreReturnedNotFollowed(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		w.Header().Set("Location", "/login")
		writeProxied(w, http.StatusFound, "", "")
	}, appKey)
	// Even a caller's client that follows redirects must not follow this one.
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithHTTPClient(&http.Client{}))
	resp, err := app.Proxy(context.Background(), sdk.Request{URL: "https://api.example.com/x", Provider: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
		t.Fatalf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := len(fake.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestStringShowsOnlyTheKeyID(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	app := mustApp(t, appKey)
	want := "sdk.App{" + app.KeyID() + "}"
	if got := app.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if got := app.GetAgent(testAgentID).String(); got != "sdk.Agent{"+app.KeyID()+" as "+testAgentID+"}" {
		t.Fatalf("agent handle String() = %q", got)
	}
	if !strings.HasPrefix(app.KeyID(), "lk_app_") || strconv.Itoa(len(app.KeyID())) != "23" {
		t.Fatalf("KeyID() = %q", app.KeyID())
	}
}
