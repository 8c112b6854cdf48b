package egress

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHTTPClientSharesTheStrictDialCheckAndNeverFollowsRedirects(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(target.Close)

	t.Run("strict refuses loopback", func(t *testing.T) {
		e := New(Options{})
		t.Cleanup(e.Close)
		resp, err := e.HTTPClient(0).Get(target.URL + "/")
		if err == nil {
			resp.Body.Close()
			t.Fatal("a strict client reached a loopback server")
		}
		var refused *refusedAddrError
		if !errors.As(err, &refused) {
			t.Fatalf("want a dial-time refusal, got %v", err)
		}
	})

	t.Run("allow private reaches loopback without following redirects", func(t *testing.T) {
		e := New(Options{AllowPrivate: true})
		t.Cleanup(e.Close)
		c := e.HTTPClient(0)
		resp, err := c.Get(target.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("body %q", body)
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, target.URL+"/redirect", nil)
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("status %d: the redirect was followed", resp.StatusCode)
		}
	})
}
