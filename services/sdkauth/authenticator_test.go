package sdkauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
)

const userToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEyMyJ9.c2lnbmF0dXJlLW5vdC12YWxpZA"

func TestAuthenticateAcceptsEveryTestVector(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		vectors := loadVectors(t)
		app := e.app("vectors")
		var agentID string
		for _, v := range vectors {
			if v.Agent != "" {
				agentID = strings.ToLower(v.Agent)
			}
		}
		e.agentWithID(app.ID, agentID, "vector-agent")
		stored := map[string]bool{}
		for _, v := range vectors {
			if !stored[v.KeyID] {
				e.vectorKey(app.ID, agentID, v)
				stored[v.KeyID] = true
			}
		}
		for _, v := range vectors {
			t.Run(v.Name, func(t *testing.T) {
				e.clock.Set(time.Unix(v.Timestamp, 0))
				h := http.Header{}
				h.Set(wire.HeaderKeyID, v.KeyID)
				h.Set(wire.HeaderTimestamp, fmt.Sprint(v.Timestamp))
				h.Set(wire.HeaderNonce, v.Nonce)
				h.Set(wire.HeaderSignature, wire.SignatureHeaderValue(v.Signature))
				for name, val := range map[string]string{wire.HeaderUserToken: v.UserToken, wire.HeaderCaller: v.Caller, wire.HeaderAgent: v.Agent} {
					if val != "" {
						h.Set(name, val)
					}
				}
				sum := sha256.Sum256([]byte(v.Body))
				c, err := e.auth.Authenticate(context.Background(), v.Method, v.Target, h, sum[:])
				if err != nil {
					t.Fatalf("vector refused: %v", err)
				}
				kind, _ := wire.ParseKeyID(v.KeyID)
				want := Caller{
					OrganizationID: app.OrganizationID, AppID: app.ID, AppName: app.Name,
					KeyRowID: c.KeyRowID, KeyID: v.KeyID, KeyKind: string(kind),
					UserToken: v.UserToken, CallerLabel: v.Caller,
				}
				if kind == wire.KeyKindAgent || v.Agent != "" {
					want.AgentID, want.AgentName = agentID, "vector-agent"
					want.Impersonating = kind == wire.KeyKindApp
				}
				if c != want {
					t.Fatalf("caller\n got %+v\nwant %+v", c, want)
				}
			})
		}
	})
}

// world is the cast of most tests: app A with an app key, an agent with a
// key, and a disabled agent with a key; app B with an agent of its own.
type world struct {
	appA, appB models.App
	appKey     apikeys.Minted
	agent      agents.Created
	disabled   agents.Created
	foreign    agents.Created
}

func newWorld(e *env) world {
	w := world{appA: e.app("app-a"), appB: e.app("app-b")}
	w.appKey = e.mint(w.appA.ID, "")
	w.agent = e.agent(w.appA.ID, "research-bot")
	w.disabled = e.agent(w.appA.ID, "retired-bot")
	if err := e.db.Gorm.Model(&models.Agent{}).Where("id = ?", w.disabled.Agent.ID).
		Update("status", models.AgentDisabled).Error; err != nil {
		e.t.Fatal(err)
	}
	w.foreign = e.agent(w.appB.ID, "foreign-bot")
	return w
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestAuthenticateAccepts(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		deprecated := e.mint(w.appA.ID, "")
		setKeyStatus(t, db.Gorm, deprecated.KeyID, models.KeyDeprecated)

		tests := []struct {
			name    string
			request func() signedRequest
			want    func(c Caller) error
		}{
			{"app key acting as itself", func() signedRequest {
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, func(c Caller) error {
				if c.AppID != w.appA.ID || c.KeyID != w.appKey.KeyID || c.IsAgent() || c.KeyDeprecated {
					return fmt.Errorf("got %+v", c)
				}
				return nil
			}},
			{"deprecated key works and is flagged", func() signedRequest {
				return e.sign(deprecated.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, func(c Caller) error {
				if !c.KeyDeprecated {
					return errors.New("KeyDeprecated not set")
				}
				return nil
			}},
			{"agent key acts as its agent", func() signedRequest {
				return e.sign(w.agent.Key.APIKey, "POST", "/sdk/v1/proxy", []byte(`{"a":1}`), nil)
			}, func(c Caller) error {
				if c.AgentID != w.agent.Agent.ID || c.AgentName != "research-bot" || c.Impersonating || c.KeyKind != "agent" {
					return fmt.Errorf("got %+v", c)
				}
				return nil
			}},
			{"agent key may repeat its own agent in Latchkey-Agent", func() signedRequest {
				return e.sign(w.agent.Key.APIKey, "GET", "/sdk/v1/me", nil, header(wire.HeaderAgent, w.agent.Agent.ID))
			}, func(c Caller) error {
				if c.AgentID != w.agent.Agent.ID || c.Impersonating {
					return fmt.Errorf("got %+v", c)
				}
				return nil
			}},
			{"app key acts as its app's agent, upper-case UUID accepted", func() signedRequest {
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, header(wire.HeaderAgent, strings.ToUpper(w.agent.Agent.ID)))
			}, func(c Caller) error {
				if c.AgentID != w.agent.Agent.ID || !c.Impersonating || c.KeyID != w.appKey.KeyID {
					return fmt.Errorf("got %+v", c)
				}
				return nil
			}},
			{"app key with user token and caller label", func() signedRequest {
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/grants?provider=github", nil,
					header(wire.HeaderUserToken, userToken, wire.HeaderCaller, "digest-worker/1.4"))
			}, func(c Caller) error {
				if c.UserToken != userToken || c.CallerLabel != "digest-worker/1.4" {
					return fmt.Errorf("got %+v", c)
				}
				return nil
			}},
			{"timestamp exactly 300 s old is inside the window", func() signedRequest {
				e.clock.Advance(-300 * time.Second)
				defer e.clock.Advance(300 * time.Second)
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, nil},
			{"timestamp exactly 300 s ahead is inside the window", func() signedRequest {
				e.clock.Advance(300 * time.Second)
				defer e.clock.Advance(-300 * time.Second)
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, err := e.authenticate(e.auth, tt.request())
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.AppID != w.appA.ID || c.OrganizationID != w.appA.OrganizationID {
					t.Fatalf("caller of the wrong tenant: %+v", c)
				}
				if tt.want != nil {
					if err := tt.want(c); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	})
}

func TestAuthenticateRefuses(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		ctx := context.Background()
		unknownKey, err := wire.GenerateKey(wire.KeyKindApp, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The right key id with the wrong secret: only the signature differs.
		forged, err := wire.ParseKey(w.appKey.KeyID + "_" + strings.Repeat("A", 43))
		if err != nil {
			t.Fatal(err)
		}
		var secrets []string // values that must never reach an audit row

		tests := []struct {
			name      string
			request   func(t *testing.T) signedRequest
			wantCode  wire.ErrorCode
			wantAudit bool // a denied row for the key; unknown keys leave none
		}{
			{"missing signature header is malformed_auth", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
				r.header.Del(wire.HeaderSignature)
				return r
			}, wire.CodeMalformedAuth, false},
			{"repeated nonce header is malformed_auth", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
				r.header.Add(wire.HeaderNonce, "another-nonce-0000000000")
				return r
			}, wire.CodeMalformedAuth, false},
			{"signature without v1= is malformed_auth", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
				r.header.Set(wire.HeaderSignature, strings.TrimPrefix(r.header.Get(wire.HeaderSignature), "v1="))
				return r
			}, wire.CodeMalformedAuth, false},
			{"unknown key is invalid_key", func(t *testing.T) signedRequest {
				return e.sign(unknownKey, "GET", "/sdk/v1/me", nil, nil)
			}, wire.CodeInvalidKey, false},
			{"revoked key is key_revoked even when the timestamp is also stale", func(t *testing.T) signedRequest {
				k := e.mint(w.appA.ID, "")
				setKeyStatus(t, db.Gorm, k.KeyID, models.KeyRevoked)
				e.clock.Advance(-time.Hour)
				defer e.clock.Advance(time.Hour)
				return e.sign(k.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, wire.CodeKeyRevoked, true},
			{"timestamp 301 s in the past is out of range", func(t *testing.T) signedRequest {
				e.clock.Advance(-301 * time.Second)
				defer e.clock.Advance(301 * time.Second)
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, wire.CodeTimestampOutOfRange, true},
			{"timestamp 301 s in the future is out of range", func(t *testing.T) signedRequest {
				e.clock.Advance(301 * time.Second)
				defer e.clock.Advance(-301 * time.Second)
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, wire.CodeTimestampOutOfRange, true},
			{"signature by another secret is invalid_signature", func(t *testing.T) signedRequest {
				return e.sign(forged, "GET", "/sdk/v1/me", nil, nil)
			}, wire.CodeInvalidSignature, true},
			{"body altered after signing is invalid_signature", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "POST", "/sdk/v1/proxy", []byte(`{"url":"https://a.example"}`), nil)
				r.body = []byte(`{"url":"https://b.example"}`)
				return r
			}, wire.CodeInvalidSignature, true},
			{"query altered after signing is invalid_signature", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/grants?limit=10", nil, nil)
				r.target = "/sdk/v1/grants?limit=11"
				return r
			}, wire.CodeInvalidSignature, true},
			{"method altered after signing is invalid_signature", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/grants/g", nil, nil)
				r.method = "DELETE"
				return r
			}, wire.CodeInvalidSignature, true},
			{"user token added after signing is invalid_signature", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
				r.header.Set(wire.HeaderUserToken, userToken)
				return r
			}, wire.CodeInvalidSignature, true},
			{"agent header added after signing is invalid_signature", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
				r.header.Set(wire.HeaderAgent, w.agent.Agent.ID)
				return r
			}, wire.CodeInvalidSignature, true},
			{"replay with its timestamp moved is invalid_signature", func(t *testing.T) signedRequest {
				// The replay identity includes the timestamp; moving it to
				// dodge the nonce check breaks the signature instead.
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
				if _, err := e.authenticate(e.auth, r.clone()); err != nil {
					t.Fatalf("first use refused: %v", err)
				}
				ts, _ := strconv.ParseInt(r.header.Get(wire.HeaderTimestamp), 10, 64)
				r.header.Set(wire.HeaderTimestamp, strconv.FormatInt(ts+1, 10))
				return r
			}, wire.CodeInvalidSignature, true},
			{"replayed nonce is replayed_request", func(t *testing.T) signedRequest {
				r := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
				if _, err := e.authenticate(e.auth, r.clone()); err != nil {
					t.Fatalf("first use refused: %v", err)
				}
				return r
			}, wire.CodeReplayedRequest, true},
			{"agent key with a user token is agent_cannot_use_user_token", func(t *testing.T) signedRequest {
				return e.sign(w.agent.Key.APIKey, "GET", "/sdk/v1/grants", nil, header(wire.HeaderUserToken, userToken))
			}, wire.CodeAgentCannotUseUserToken, true},
			{"app key naming another app's agent is refused", func(t *testing.T) signedRequest {
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, header(wire.HeaderAgent, w.foreign.Agent.ID))
			}, wire.CodeInvalidRequest, true},
			{"app key naming an agent that does not exist is refused alike", func(t *testing.T) signedRequest {
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, header(wire.HeaderAgent, uuid.NewString()))
			}, wire.CodeInvalidRequest, true},
			{"app key naming a disabled agent is refused alike", func(t *testing.T) signedRequest {
				return e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, header(wire.HeaderAgent, w.disabled.Agent.ID))
			}, wire.CodeInvalidRequest, true},
			{"agent key naming another agent is refused", func(t *testing.T) signedRequest {
				return e.sign(w.agent.Key.APIKey, "GET", "/sdk/v1/me", nil, header(wire.HeaderAgent, w.disabled.Agent.ID))
			}, wire.CodeInvalidRequest, true},
			{"key of a disabled agent is forbidden", func(t *testing.T) signedRequest {
				return e.sign(w.disabled.Key.APIKey, "GET", "/sdk/v1/me", nil, nil)
			}, wire.CodeForbidden, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := tt.request(t)
				secrets = append(secrets, r.header.Get(wire.HeaderNonce),
					strings.TrimPrefix(r.header.Get(wire.HeaderSignature), "v1="))
				rid := uuid.NewString()
				sum := sha256.Sum256(r.body)
				c, err := e.auth.Authenticate(requestid.With(ctx, rid), r.method, r.target, r.header, sum[:])
				if err == nil {
					t.Fatalf("accepted as %+v", c)
				}
				if got := errs.CodeOf(err); got != tt.wantCode {
					t.Fatalf("code %q, want %q (%v)", got, tt.wantCode, err)
				}
				if c != (Caller{}) {
					t.Fatalf("a refusal returned a caller: %+v", c)
				}
				rows := e.auditRows("request_id = ?", rid)
				switch {
				case !tt.wantAudit && len(rows) != 0:
					t.Fatalf("audit rows for a request with no known key: %+v", rows)
				case tt.wantAudit && len(rows) != 1:
					t.Fatalf("want one audit row, got %d", len(rows))
				case tt.wantAudit:
					ev := rows[0]
					if ev.Outcome != models.OutcomeDenied || ev.ErrorCode != string(tt.wantCode) ||
						ev.Action != ActionAuthenticate || ev.AppID != w.appA.ID || ev.KeyID != r.header.Get(wire.HeaderKeyID) {
						t.Fatalf("audit row %+v", ev)
					}
					if strings.Contains(ev.Path, "?") {
						t.Fatalf("audit path carries a query: %q", ev.Path)
					}
				}
			})
		}

		t.Run("audit rows hold no signature, nonce, token or key", func(t *testing.T) {
			secrets = append(secrets, userToken, w.appKey.APIKey.Reveal(), w.agent.Key.APIKey.Reveal(),
				strings.Repeat("A", 43))
			var all []models.AuditEvent
			if err := db.Gorm.Find(&all).Error; err != nil {
				t.Fatal(err)
			}
			blob, _ := json.Marshal(all)
			for _, s := range secrets {
				if s != "" && strings.Contains(string(blob), s) {
					t.Fatalf("audit table contains a secret value %q", s)
				}
			}
			for _, ev := range all {
				if ev.Outcome == models.OutcomeSuccess && ev.Action == ActionAuthenticate {
					t.Fatalf("success row for an authentication: %+v", ev)
				}
			}
		})
	})
}

func TestABadSignatureDoesNotUseUpTheNonce(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		good := e.sign(w.appKey.APIKey, "POST", "/sdk/v1/proxy", []byte(`{}`), nil)
		bad := good.clone()
		bad.body = []byte(`{"x":1}`)
		if _, err := e.authenticate(e.auth, bad); errs.CodeOf(err) != wire.CodeInvalidSignature {
			t.Fatalf("tampered request: %v", err)
		}
		if _, err := e.authenticate(e.auth, good); err != nil {
			t.Fatalf("the genuine request lost its nonce to a forgery: %v", err)
		}
	})
}

func TestKeyRowMovedToAnotherAppNeverAuthenticatesThere(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		if err := db.Gorm.Model(&models.APIKey{}).Where("key_id = ?", w.appKey.KeyID).
			Update("app_id", w.appB.ID).Error; err != nil {
			t.Fatal(err)
		}
		c, err := e.authenticate(e.auth, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil))
		if err == nil || c.AppID == w.appB.ID {
			t.Fatalf("a key row moved to app B produced a caller: %+v", c)
		}
		if got := errs.CodeOf(err); got != wire.CodeInternal {
			t.Fatalf("code %q, want internal (the signing key must not open under app B)", got)
		}
	})
}

func TestRevocationReachesAnotherReplicaWithinTheCacheTTL(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		other := e.replica(testutil.Reopen(t, db))
		second := e.mint(w.appA.ID, "")
		if _, err := e.authenticate(other, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.keys.Revoke(context.Background(), apikeys.RevokeInput{
			Key: apikeys.KeyRef{AppID: w.appA.ID, KeyID: w.appKey.KeyID}, Actor: seedActor,
		}); err != nil {
			t.Fatal(err)
		}
		// Within the TTL the other replica may still accept the key: that
		// is the documented bound, not a bug.
		e.clock.Advance(other.CacheTTL() - time.Second)
		if _, err := e.authenticate(other, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)); err != nil {
			t.Fatalf("inside the TTL: %v", err)
		}
		e.clock.Advance(time.Second)
		_, err := e.authenticate(other, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil))
		if got := errs.CodeOf(err); got != wire.CodeKeyRevoked {
			t.Fatalf("after the TTL: code %q, want key_revoked", got)
		}
		// Forget applies a local change at once.
		if _, err := e.authenticate(other, e.sign(second.APIKey, "GET", "/sdk/v1/me", nil, nil)); err != nil {
			t.Fatal(err)
		}
		setKeyStatus(t, db.Gorm, second.KeyID, models.KeyRevoked)
		other.Forget(second.KeyID)
		_, err = e.authenticate(other, e.sign(second.APIKey, "GET", "/sdk/v1/me", nil, nil))
		if got := errs.CodeOf(err); got != wire.CodeKeyRevoked {
			t.Fatalf("after Forget: code %q, want key_revoked", got)
		}
	})
}

func TestReplayIsRefusedAcrossReplicas(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		replicas := []*Authenticator{e.auth, e.replica(testutil.Reopen(t, db))}
		r := e.sign(w.appKey.APIKey, "POST", "/sdk/v1/proxy", []byte(`{"grant_id":"g"}`), nil)

		const n = 24
		var wg sync.WaitGroup
		results := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, results[i] = e.authenticate(replicas[i%2], r.clone())
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range results {
			switch code := errs.CodeOf(err); code {
			case "":
				ok++
			case wire.CodeReplayedRequest:
			default:
				t.Errorf("unexpected outcome %q: %v", code, err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d identical requests accepted, want exactly 1", ok, n)
		}
	})
}

// A replay repeats the signed timestamp, so the nonce store refuses a key
// id, timestamp and nonce it has seen; the same nonce signed at another
// second is another request (docs/sdk-protocol.md, "Replay refusal").
func TestReplayIdentityIsKeyTimestampAndNonce(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		store := NewNonceStore(db.Gorm)
		const key, other = "lk_app_aaaaaaaaaaaaaaaa", "lk_app_bbbbbbbbbbbbbbbb"
		ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix()
		for _, c := range []struct {
			name      string
			key       string
			ts        int64
			wantFresh bool
		}{
			{"first use", key, ts, true},
			{"same key, timestamp and nonce is a replay", key, ts, false},
			{"same nonce one second later", key, ts + 1, true},
			{"same nonce and timestamp with another key", other, ts, true},
			{"the later one replayed", key, ts + 1, false},
		} {
			fresh, err := store.Use(ctx, c.key, "nonce-0123456789abcdef", c.ts)
			if err != nil || fresh != c.wantFresh {
				t.Fatalf("%s: fresh=%v err=%v, want fresh=%v", c.name, fresh, err, c.wantFresh)
			}
		}
	})
}

func TestSweepRemovesOnlyExpiredNonces(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		store := NewNonceStore(db.Gorm)
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		retention := int64(NonceRetention / time.Second)
		// Request timestamps relative to now: rows expire at ts + retention.
		ages := map[string]int64{
			"expired-long-ago-00": retention + 3600,
			"expired-a-second-0":  retention + 1,
			"expires-right-now-0": retention,
			"still-in-window-00":  300,
			"from-the-future-00":  -200,
		}
		for nonce, age := range ages {
			fresh, err := store.Use(ctx, "lk_app_aaaaaaaaaaaaaaaa", nonce, now.Unix()-age)
			if err != nil || !fresh {
				t.Fatalf("use %s: %v %v", nonce, fresh, err)
			}
		}
		n, err := store.Sweep(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("swept %d rows, want 2", n)
		}
		var left []string
		if err := db.Gorm.Model(&models.RequestNonce{}).Order("nonce").Pluck("nonce", &left).Error; err != nil {
			t.Fatal(err)
		}
		want := []string{"expires-right-now-0", "from-the-future-00", "still-in-window-00"}
		if fmt.Sprint(left) != fmt.Sprint(want) {
			t.Fatalf("left %v, want %v", left, want)
		}
		// A kept nonce still refuses a replay: the same key, timestamp and
		// nonce.
		if fresh, err := store.Use(ctx, "lk_app_aaaaaaaaaaaaaaaa", "still-in-window-00", now.Unix()-300); err != nil || fresh {
			t.Fatalf("replay of a kept nonce: fresh=%v err=%v", fresh, err)
		}
	})
}

func TestUnknownKeyIDsAreNotCached(t *testing.T) {
	db := testutil.NewDB(t, database.SQLite)
	e := newEnv(t, db)
	for range 200 {
		k, err := wire.GenerateKey(wire.KeyKindApp, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.authenticate(e.auth, e.sign(k, "GET", "/sdk/v1/me", nil, nil)); errs.CodeOf(err) != wire.CodeInvalidKey {
			t.Fatalf("unknown key: %v", err)
		}
	}
	e.auth.mu.RLock()
	n := len(e.auth.keys)
	e.auth.mu.RUnlock()
	if n != 0 {
		t.Fatalf("%d unknown key ids cached", n)
	}
}

func TestUnverifiedRefusalsAreAuditedAtABoundedRate(t *testing.T) {
	db := testutil.NewDB(t, database.SQLite)
	e := newEnv(t, db)
	w := newWorld(e)
	forged, err := wire.ParseKey(w.appKey.KeyID + "_" + strings.Repeat("B", 43))
	if err != nil {
		t.Fatal(err)
	}
	for range maxUnverifiedDenialsPerMinute + 15 {
		if _, err := e.authenticate(e.auth, e.sign(forged, "GET", "/sdk/v1/me", nil, nil)); errs.CodeOf(err) != wire.CodeInvalidSignature {
			t.Fatal(err)
		}
	}
	if got := len(e.auditRows("action = ?", ActionAuthenticate)); got != maxUnverifiedDenialsPerMinute {
		t.Fatalf("%d rows in one minute, want %d", got, maxUnverifiedDenialsPerMinute)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.authenticate(e.auth, e.sign(forged, "GET", "/sdk/v1/me", nil, nil)); errs.CodeOf(err) != wire.CodeInvalidSignature {
		t.Fatal(err)
	}
	rows := e.auditRows("action = ?", ActionAuthenticate)
	last := rows[len(rows)-1]
	if !strings.HasPrefix(last.Reason, "15 further refusals") {
		t.Fatalf("the next row does not account for the suppressed ones: %q", last.Reason)
	}
}

func TestFlushUsageRecordsLastUseOffThePath(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		lastUsed := func() *time.Time {
			var k models.APIKey
			if err := db.Gorm.Where("key_id = ?", w.appKey.KeyID).Take(&k).Error; err != nil {
				t.Fatal(err)
			}
			return k.LastUsedAt
		}
		if _, err := e.authenticate(e.auth, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)); err != nil {
			t.Fatal(err)
		}
		if lastUsed() != nil {
			t.Fatal("last_used_at written on the request path")
		}
		if err := e.auth.FlushUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := lastUsed()
		if got == nil || !got.Equal(e.clock.Now()) {
			t.Fatalf("last_used_at = %v, want %v", got, e.clock.Now())
		}
		// Another replica that flushes an older use must not move it back.
		older := e.replica(db)
		e.clock.Advance(-time.Minute)
		if _, err := e.authenticate(older, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)); err != nil {
			t.Fatal(err)
		}
		if err := older.FlushUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
		if again := lastUsed(); !again.Equal(*got) {
			t.Fatalf("last_used_at moved back to %v", again)
		}
	})
}

// BenchmarkAuthenticate measures the hot path on SQLite: a cached key, one
// HMAC, one nonce INSERT. "serial" is one request at a time; "concurrent"
// has 16 requests in flight per CPU, as a busy server does, which lets the
// nonce store group its INSERTs.
func BenchmarkAuthenticate(b *testing.B) {
	db := testutil.NewDB(b, database.SQLite)
	e := newEnv(b, db)
	app := e.app("bench")
	key := e.mint(app.ID, "")
	e.clock.Set(time.Now())
	body := []byte(`{"method":"GET","url":"https://api.github.com/user","provider":"github"}`)
	sum := sha256.Sum256(body)
	signingKey := key.APIKey.SigningKey()
	ctx := context.Background()
	authenticate := func(b *testing.B) {
		// Signing is the client's cost, but it is small next to the nonce
		// INSERT and gives every iteration its own nonce.
		p := wire.SignatureParams{KeyID: key.KeyID, Timestamp: e.clock.Now().Unix(), Method: "POST",
			Target: "/sdk/v1/proxy", BodySHA256: sum[:], Caller: "bench"}
		p.Nonce, _ = wire.NewNonce(nil)
		h := http.Header{}
		h.Set(wire.HeaderKeyID, p.KeyID)
		h.Set(wire.HeaderTimestamp, fmt.Sprint(p.Timestamp))
		h.Set(wire.HeaderNonce, p.Nonce)
		h.Set(wire.HeaderCaller, "bench")
		h.Set(wire.HeaderSignature, wire.SignatureHeaderValue(wire.Sign(signingKey, wire.StringToSign(p))))
		if _, err := e.auth.Authenticate(ctx, "POST", "/sdk/v1/proxy", h, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			authenticate(b)
		}
	})
	b.Run("concurrent", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				authenticate(b)
			}
		})
	})
}

func BenchmarkNonceUse(b *testing.B) {
	for _, d := range testutil.Dialects(b) {
		b.Run(d, func(b *testing.B) {
			db := testutil.NewDB(b, d)
			store := NewNonceStore(db.Gorm)
			ctx := context.Background()
			now := time.Now().Unix()
			// A server has many requests in flight; so does this benchmark.
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n, _ := wire.NewNonce(nil)
					if _, err := store.Use(ctx, "lk_app_aaaaaaaaaaaaaaaa", n, now); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func TestRunSweepsNoncesAndFlushesUsageWhenStopped(t *testing.T) {
	db := testutil.NewDB(t, database.SQLite)
	e := newEnv(t, db)
	w := newWorld(e)
	a := New(db.Gorm, e.vault, e.audit, e.clock.Now, WithSweepInterval(5*time.Millisecond))
	stale := e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)
	if _, err := e.authenticate(a, stale); err != nil {
		t.Fatal(err)
	}
	// Step past the stale request's retention, then use the key again.
	e.clock.Advance(NonceRetention + time.Second)
	if _, err := e.authenticate(a, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int64
		if err := db.Gorm.Model(&models.RequestNonce{}).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nonces left; the expired one was not swept", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	var k models.APIKey
	if err := db.Gorm.Where("key_id = ?", w.appKey.KeyID).Take(&k).Error; err != nil {
		t.Fatal(err)
	}
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(e.clock.Now()) {
		t.Fatalf("last_used_at %v after Run stopped, want %v", k.LastUsedAt, e.clock.Now())
	}
}

// gatedOpener holds the first Open until released, so a test can revoke a
// key while a load of it is in flight.
type gatedOpener struct {
	Opener
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gatedOpener) Open(ctx context.Context, b vault.Binding, ct []byte) ([]byte, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.Opener.Open(ctx, b, ct)
}

// A load that read the key row before a local revocation must not put the
// stale, active entry back into the cache after Forget.
func TestForgetWinsOverALoadInFlight(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		w := newWorld(e)
		g := &gatedOpener{Opener: vault.New(db.Gorm, e.keeper), entered: make(chan struct{}), release: make(chan struct{})}
		auth := New(db.Gorm, g, audit.New(db.Gorm, e.clock.Now), e.clock.Now)

		first := make(chan error, 1)
		go func() {
			_, err := e.authenticate(auth, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil))
			first <- err
		}()
		<-g.entered // the row (still active) has been read
		setKeyStatus(t, db.Gorm, w.appKey.KeyID, models.KeyRevoked)
		auth.Forget(w.appKey.KeyID)
		close(g.release)
		<-first // raced the revocation: either answer is acceptable for it

		_, err := e.authenticate(auth, e.sign(w.appKey.APIKey, "GET", "/sdk/v1/me", nil, nil))
		if got := errs.CodeOf(err); got != wire.CodeKeyRevoked {
			t.Fatalf("after Forget: code %q, want key_revoked (a stale entry was cached)", got)
		}
	})
}
