package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

// The examples talk to newFakeLatchkey (fake_test.go), an httptest server
// standing in for Latchkey: it verifies every request's signature, timestamp
// and nonce with package wire exactly as the server does, and answers
// 401 invalid_signature otherwise — so these examples fail if the SDK ever
// signs wrongly.

func ExampleNewApp() {
	apiKey := newKey(wire.KeyKindApp) // normally os.Getenv("LATCHKEY_API_KEY")
	latchkey := newFakeLatchkey(func(w http.ResponseWriter, _ *http.Request, s seenRequest) {
		writeJSON(w, http.StatusOK, wire.Me{Kind: wire.KeyKindApp, AppName: "Weekly digest", KeyID: s.Auth.KeyID, KeyStatus: wire.KeyStatusActive})
	}, apiKey)
	defer latchkey.srv.Close()

	app, err := sdk.NewApp(apiKey, sdk.WithBaseURL(latchkey.URL()), sdk.WithCaller("digest-worker/1.4"))
	if err != nil {
		fmt.Println(err)
		return
	}
	me, err := app.Me(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(me.Kind, me.AppName, me.KeyStatus)
	// Output: app Weekly digest active
}

func ExampleApp_Proxy() {
	apiKey := newKey(wire.KeyKindApp)
	latchkey := newFakeLatchkey(func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		// Latchkey relays the upstream's answer, here a 404 from GitHub.
		writeProxied(w, http.StatusNotFound, "application/json", `{"message":"Not Found"}`)
	}, apiKey)
	defer latchkey.srv.Close()

	app, _ := sdk.NewApp(apiKey, sdk.WithBaseURL(latchkey.URL()))
	resp, err := app.Proxy(context.Background(), sdk.Request{
		Method:   "GET",
		URL:      "https://api.github.com/repos/octocat/missing",
		Provider: "github",
		Account:  "octocat",
		Headers:  map[string]string{"Accept": "application/vnd.github+json"},
		Reason:   "check the repo exists",
		Context:  map[string]string{"run_id": "r-42"},
		Timeout:  10 * time.Second,
	})
	if err != nil {
		fmt.Println("latchkey refused:", err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// An upstream 404 is an answer, not an error.
	fmt.Println(resp.StatusCode, string(body))
	// Output: 404 {"message":"Not Found"}
}

func ExampleApp_GetAgent() {
	apiKey := newKey(wire.KeyKindApp)
	const agentID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
	latchkey := newFakeLatchkey(func(w http.ResponseWriter, _ *http.Request, s seenRequest) {
		writeJSON(w, http.StatusOK, wire.Me{Kind: wire.KeyKindAgent, AgentID: s.Auth.AgentID(), AgentName: "research-bot"})
	}, apiKey)
	defer latchkey.srv.Close()

	app, _ := sdk.NewApp(apiKey, sdk.WithBaseURL(latchkey.URL()))
	bot := app.GetAgent(agentID) // signed with the app key, acting as the agent
	me, err := bot.Me(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(me.Kind, me.AgentName, me.AgentID == agentID)
	// Output: agent research-bot true
}

func ExampleError() {
	apiKey := newKey(wire.KeyKindApp)
	latchkey := newFakeLatchkey(func(w http.ResponseWriter, r *http.Request, _ seenRequest) {
		w.Header().Set(wire.HeaderRequestID, "req-7")
		writeErrorDetails(w, wire.CodeAmbiguousGrant, "2 github grants match", map[string]any{
			wire.DetailAccountIdentifiers: []string{"octocat", "hubot"},
		})
	}, apiKey)
	defer latchkey.srv.Close()

	app, _ := sdk.NewApp(apiKey, sdk.WithBaseURL(latchkey.URL()))
	_, err := app.Proxy(context.Background(), sdk.Request{URL: "https://api.github.com/user", Provider: "github"})

	var ambiguous *sdk.AmbiguousGrantError
	var lkErr *sdk.Error
	switch {
	case errors.Is(err, sdk.ErrReauthRequired):
		fmt.Println("ask the user to reconnect")
	case errors.As(err, &ambiguous):
		fmt.Println("pick an account:", ambiguous.Accounts)
	}
	if errors.As(err, &lkErr) {
		fmt.Println(lkErr.Status, lkErr.Code, lkErr.RequestID)
	}
	fmt.Println(err)
	// Output:
	// pick an account: [octocat hubot]
	// 409 ambiguous_grant req-7
	// latchkey: ambiguous_grant: 2 github grants match (request id req-7)
}

func ExampleApprovalPendingError() {
	apiKey := newKey(wire.KeyKindApp)
	latchkey := newFakeLatchkey(func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		writeJSON(w, http.StatusAccepted, wire.ApprovalEnvelope{Approval: wire.Approval{
			ApprovalID: "ap-1", Status: wire.ApprovalPending, ApprovalURL: "https://latchkey.example/wallet/approvals/ap-1",
			ExpiresAt: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		}})
	}, apiKey)
	defer latchkey.srv.Close()

	app, _ := sdk.NewApp(apiKey, sdk.WithBaseURL(latchkey.URL()))
	_, err := app.Proxy(context.Background(), sdk.Request{
		Method: "POST", URL: "https://slack.com/api/chat.postMessage", Provider: "slack",
		JSON: map[string]string{"channel": "C123", "text": "release shipped"}, Reason: "announce the release",
	})
	var pending *sdk.ApprovalPendingError
	if errors.As(err, &pending) {
		// Latchkey runs the call itself once approved: poll, do not resend.
		fmt.Println(pending.ApprovalID, pending.ApprovalURL, pending.ExpiresAt.Format(time.RFC3339))
	}
	// Output: ap-1 https://latchkey.example/wallet/approvals/ap-1 2026-01-01T12:00:00Z
}

func ExampleApp_Grants() {
	apiKey := newKey(wire.KeyKindApp)
	latchkey := newFakeLatchkey(func(w http.ResponseWriter, r *http.Request, _ seenRequest) {
		if r.URL.Query().Get("cursor") == "" {
			writeJSON(w, http.StatusOK, wire.GrantList{Grants: []wire.Grant{{Provider: "github", AccountIdentifier: "octocat"}}, NextCursor: "2"})
			return
		}
		writeJSON(w, http.StatusOK, wire.GrantList{Grants: []wire.Grant{{Provider: "github", AccountIdentifier: "hubot"}}})
	}, apiKey)
	defer latchkey.srv.Close()

	app, _ := sdk.NewApp(apiKey, sdk.WithBaseURL(latchkey.URL()))
	for g, err := range app.Grants(context.Background(), sdk.ListGrantsOptions{Provider: "github", Status: wire.GrantActive}) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(g.Provider, g.AccountIdentifier)
	}
	// Output:
	// github octocat
	// github hubot
}
