package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/database"
	managed "github.com/latchkey/latchkey/services/secrets"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/testserver"
)

// BenchmarkProxy is the in-process twin of `make bench`'s Latchkey target:
// every call signed by the SDK, authenticated, resolved, proxied and
// audited. Run it with -cpuprofile to see where a proxied call's time goes.
func BenchmarkProxy(b *testing.B) {
	for _, d := range testutil.Dialects(b) {
		b.Run(d, func(b *testing.B) { benchmarkProxy(b, d) })
	}
}

func benchmarkProxy(b *testing.B, dialect string) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ok":true}`))
	}))
	defer upstream.Close()
	core := testserver.NewCore(b, dialect, testserver.Options{Env: map[string]string{"LATCHKEY_ALLOW_PRIVATE_UPSTREAMS": "true"}})
	srv := testserver.Start(b, core)
	seed := testserver.NewSeed(b, core)
	app, key := seed.App("")
	ctx := context.Background()
	actor := apikeys.Actor{Kind: "system", ID: "bench"}
	secID, err := core.Secrets.Create(ctx, managed.CreateInput{AppID: app.ID, Name: "upstream", Value: "v",
		Injection: "header:Authorization:Bearer {secret}", AllowedHosts: []string{strings.TrimPrefix(upstream.URL, "http://")}, Actor: actor})
	if err != nil {
		b.Fatal(err)
	}
	g, err := core.Secrets.Grant(ctx, managed.GrantInput{AppID: app.ID, SecretID: secID, Principal: "system", Actor: actor})
	if err != nil {
		b.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	client, err := sdk.NewApp(key.APIKey.Reveal(), sdk.WithBaseURL(srv.URL), sdk.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Proxy(ctx, sdk.Request{URL: upstream.URL + "/x", GrantID: g.GrantID})
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	_ = database.SQLite
}
