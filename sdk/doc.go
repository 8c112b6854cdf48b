// Package sdk is the Go client for Latchkey, a credential vault and OAuth
// broker: apps and agents call third-party APIs through Latchkey, which
// injects the end user's (or the app's) credential, enforces policy and
// audits every call. The client speaks the signed wire protocol of
// docs/sdk-protocol.md and imports nothing but the standard library and
// package wire.
//
// # Quick start
//
//	app, err := sdk.NewApp(os.Getenv("LATCHKEY_API_KEY"),
//		sdk.WithBaseURL("https://latchkey.example.com"),
//		sdk.WithCaller("digest-worker/1.4"))
//	if err != nil {
//		return err
//	}
//	resp, err := app.Proxy(ctx, sdk.Request{
//		Method:   "GET",
//		URL:      "https://api.github.com/user/repos?per_page=5",
//		Provider: "github",
//		Account:  "octocat",
//		Reason:   "list repos for the weekly digest",
//	})
//	if err != nil {
//		return err // Latchkey refused: see "Errors" below
//	}
//	defer resp.Body.Close()
//	// resp is GitHub's response, whatever its status.
//
// An agent uses its own key with NewAgent, or an app acts for one of its
// agents with App.GetAgent(agentID); either way only grants bound or
// delegated to that agent are reachable. A backend acting for a signed-in
// end user passes the user's IdP token with WithUserToken, whose function is
// called per request with the call's context.
//
// # Proxy answers
//
// Proxy returns the upstream's *http.Response when Latchkey relayed one
// (Latchkey-Proxied: true): an upstream 404 or 500 is a response, not an
// error, and redirects are returned, never followed. A call held by policy
// for a human decision returns *ApprovalPendingError. Anything else is
// Latchkey's own refusal, returned as an error.
//
// # Errors
//
// Latchkey's errors are *Error values carrying the stable code, the HTTP
// status, a message and the request id to quote. Each code has a sentinel
// for errors.Is:
//
//	switch {
//	case errors.Is(err, sdk.ErrReauthRequired):
//		// ask the user to reconnect
//	case errors.As(err, &ambiguous): // *sdk.AmbiguousGrantError
//		// retry with Account set to one of ambiguous.Accounts
//	}
//
// No error, String method or log line of this package contains the API key,
// a signature or a user token.
//
// # Retries and keys
//
// Every attempt is signed afresh (new nonce and timestamp). The client
// retries only what cannot run twice — see RetryPolicy — and never a proxied
// upstream answer. When Latchkey reports the key as deprecated the client
// says so once (WithDeprecationNotice, or a warning on WithLogger's logger).
package sdk
