package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

func TestConnectPollsUntilCompleted(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	var polls atomic.Int32
	f := startFake(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == wire.PathConnectSession:
			var req wire.ConnectSessionRequest
			if err := json.Unmarshal(s.Body, &req); err != nil || req.AllowedProviders[0] != "github" {
				t.Errorf("session request: %s", s.Body)
			}
			json.NewEncoder(w).Encode(wire.ConnectSessionResponse{SessionID: "s-1", SessionToken: "tok",
				ConnectURL: "http://lk.test/sdk/oauth/connect#session=tok", ExpiresAt: time.Now().Add(time.Minute)})
		case r.Method == http.MethodGet && r.URL.Path == wire.PathConnectSessions+"/s-1":
			st := wire.ConnectSessionStatus{SessionID: "s-1", Status: wire.ConnectPending}
			if polls.Add(1) >= 3 {
				st.Status = wire.ConnectCompleted
				st.Grants = []wire.Grant{{GrantID: "g-1", Provider: "github", AccountIdentifier: "octocat"}}
			}
			json.NewEncoder(w).Encode(st)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
	}, appKey)
	app, err := sdk.NewApp(appKey, sdk.WithBaseURL(f.URL()))
	if err != nil {
		t.Fatal(err)
	}
	var opened string
	grants, err := app.Connect(context.Background(), sdk.ConnectOptions{
		Session:      wire.ConnectSessionRequest{AllowedProviders: []string{"github"}},
		Open:         func(u string) error { opened = u; return nil },
		PollInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(opened, "#session=tok") {
		t.Fatalf("Open got %q", opened)
	}
	if len(grants) != 1 || grants[0].GrantID != "g-1" || polls.Load() != 3 {
		t.Fatalf("grants %+v after %d polls", grants, polls.Load())
	}
}

func TestConnectReportsDenial(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	f := startFake(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		if r.Method == http.MethodPost {
			json.NewEncoder(w).Encode(wire.ConnectSessionResponse{SessionID: "s-2", ConnectURL: "u"})
			return
		}
		json.NewEncoder(w).Encode(wire.ConnectSessionStatus{SessionID: "s-2", Status: wire.ConnectFailed,
			ErrorCode: "access_denied", ErrorDescription: "the user said no"})
	}, appKey)
	app, _ := sdk.NewApp(appKey, sdk.WithBaseURL(f.URL()))
	_, err := app.Connect(context.Background(), sdk.ConnectOptions{PollInterval: time.Millisecond})
	var fe *sdk.ConnectFailedError
	if !errors.As(err, &fe) || fe.ErrorCode != "access_denied" || fe.Status != wire.ConnectFailed {
		t.Fatalf("got %v", err)
	}
}

func TestConnectStopsWithContext(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	f := startFake(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		if r.Method == http.MethodPost {
			json.NewEncoder(w).Encode(wire.ConnectSessionResponse{SessionID: "s-3", ConnectURL: "u"})
			return
		}
		json.NewEncoder(w).Encode(wire.ConnectSessionStatus{SessionID: "s-3", Status: wire.ConnectPending})
	}, appKey)
	app, _ := sdk.NewApp(appKey, sdk.WithBaseURL(f.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := app.Connect(ctx, sdk.ConnectOptions{PollInterval: 5 * time.Millisecond}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}
