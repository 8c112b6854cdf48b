package grants_test

import (
	"context"
	"slices"
	"testing"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/testutil"
)

// names maps listed grants back to scene names, sorted for comparison.
func (s *scene) names(gs []wire.Grant) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, s.name(g.GrantID))
	}
	slices.Sort(out)
	return out
}

func sorted(names ...string) []string {
	slices.Sort(names)
	return names
}

func TestListShowsWhatTheCallerCanReach(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		allOfApp := sorted("aliceGH", "aliceWork", "systemGH", "bobGH", "carolGH", "engLinear", "aliceNotion", "aliceJira",
			"aliceAsana", "aliceGitlab", "aliceFigma", "engFigma", "aliceStripe", "engStripe", "botOpenAI", "botRevoked")
		tests := []struct {
			name     string
			caller   sdkauth.Caller
			user     string
			provider string
			status   string
			want     []string
			wantCode wire.ErrorCode
		}{
			{name: "app key alone sees every grant of its app", caller: s.appKey(), want: allOfApp},
			{name: "user sees own and group grants", caller: s.appKey(), user: "alice", want: sorted("aliceGH", "aliceWork", "engLinear",
				"aliceNotion", "aliceJira", "aliceAsana", "aliceGitlab", "aliceFigma", "engFigma", "aliceStripe", "engStripe")},
			{name: "user outside groups sees only own grants", caller: s.appKey(), user: "bob", want: sorted("bobGH")},
			{name: "agent sees bound grants and live delegations", caller: s.agentKey(s.ids["bot"]), want: sorted("botOpenAI", "botRevoked", "aliceGH")},
			{name: "agent whose only delegation is of an unusable grant sees nothing", caller: s.agentKey(s.ids["bot2"]), want: []string{}},
			{name: "agent with an end user sees only that user's delegations", caller: s.impersonating(s.ids["bot"]), user: "bob", want: sorted("botOpenAI", "botRevoked")},
			{name: "provider filter", caller: s.appKey(), user: "alice", provider: "github", want: sorted("aliceGH", "aliceWork")},
			{name: "status filter", caller: s.appKey(), status: models.GrantRevoked, want: sorted("aliceAsana", "botRevoked")},
			{name: "unknown status is invalid_request", caller: s.appKey(), status: "paused", wantCode: wire.CodeInvalidRequest},
			{name: "disabled user is forbidden", caller: s.appKey(), user: "carol", wantCode: wire.CodeForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := grants.ListInput{Caller: tt.caller, Provider: tt.provider, Status: tt.status}
				if tt.user != "" {
					in.EndUser = s.users[tt.user]
				}
				got, err := s.svc.List(context.Background(), in)
				if tt.wantCode != "" {
					if errs.CodeOf(err) != tt.wantCode {
						t.Fatalf("got %v, want %s", err, tt.wantCode)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if names := s.names(got.Grants); !slices.Equal(names, tt.want) {
					t.Fatalf("listed %v\nwant   %v", names, tt.want)
				}
				if got.NextCursor != "" {
					t.Fatalf("one page expected, got cursor %q", got.NextCursor)
				}
			})
		}
	})
}

func TestListPagesInStableIDOrder(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		ctx := context.Background()
		all, err := s.svc.List(ctx, grants.ListInput{Caller: s.appKey(), Limit: grants.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		var paged []wire.Grant
		cursor, pages := "", 0
		for {
			page, err := s.svc.List(ctx, grants.ListInput{Caller: s.appKey(), Cursor: cursor, Limit: 5})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Grants) > 5 {
				t.Fatalf("page of %d, limit 5", len(page.Grants))
			}
			paged = append(paged, page.Grants...)
			pages++
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if pages != 4 { // 16 grants
			t.Fatalf("%d pages, want 4", pages)
		}
		ids := func(gs []wire.Grant) []string {
			out := make([]string, len(gs))
			for i, g := range gs {
				out[i] = g.GrantID
			}
			return out
		}
		if !slices.Equal(ids(paged), ids(all.Grants)) || !slices.IsSorted(ids(paged)) {
			t.Fatalf("pages differ from the full listing or are not in id order")
		}
		for _, bad := range []string{"nonsense", "g1.!!!", "g1.bm90LWEtdXVpZA"} {
			if _, err := s.svc.List(ctx, grants.ListInput{Caller: s.appKey(), Cursor: bad}); errs.CodeOf(err) != wire.CodeInvalidRequest {
				t.Fatalf("cursor %q: %v, want invalid_request", bad, err)
			}
		}
	})
}

func TestGrantsRenderForTheWire(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		ctx := context.Background()
		tests := []struct {
			grant string
			want  wire.Principal
		}{
			{"aliceGH", wire.Principal{Kind: wire.PrincipalUser, ID: "alice"}}, // the subject, not Latchkey's id
			{"engLinear", wire.Principal{Kind: wire.PrincipalGroup, ID: "eng"}},
			{"systemGH", wire.Principal{Kind: wire.PrincipalSystem}},
			{"botOpenAI", wire.Principal{Kind: wire.PrincipalAgent, ID: s.ids["bot"]}},
		}
		for _, tt := range tests {
			g, err := s.svc.Get(ctx, s.appKey(), nil, s.ids[tt.grant])
			if err != nil {
				t.Fatal(err)
			}
			if g.Principal != tt.want {
				t.Errorf("%s: principal %+v, want %+v", tt.grant, g.Principal, tt.want)
			}
			if g.Status != wire.GrantActive || !slices.Equal(g.Scopes, []string{"read", "write"}) || g.Metadata["plan"] != "pro" {
				t.Errorf("%s: rendered %+v", tt.grant, g)
			}
		}
		g, err := s.svc.Get(ctx, s.appKey(), nil, s.ids["aliceStripe"])
		if err != nil {
			t.Fatal(err)
		}
		if g.Provider != "secret:stripe" || g.ProviderName != "stripe" {
			t.Errorf("managed secret grant rendered as %q / %q", g.Provider, g.ProviderName)
		}
	})
}

func TestGetAppliesResolutionVisibility(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		tests := []struct {
			name     string
			caller   sdkauth.Caller
			user     string
			grant    string
			wantCode wire.ErrorCode
		}{
			{name: "app key gets any grant of its app", caller: s.appKey(), grant: "botRevoked"},
			{name: "user gets own revoked grant (status is not visibility)", caller: s.appKey(), user: "alice", grant: "aliceAsana"},
			{name: "user gets a group grant", caller: s.appKey(), user: "dave", grant: "engStripe"},
			{name: "user does not get another user's grant", caller: s.appKey(), user: "alice", grant: "bobGH", wantCode: wire.CodeGrantNotFound},
			{name: "agent gets a delegated grant", caller: s.agentKey(s.ids["bot"]), grant: "aliceGH"},
			{name: "agent does not get an undelegated grant", caller: s.agentKey(s.ids["bot"]), grant: "aliceWork", wantCode: wire.CodeNoDelegatedGrant},
			{name: "another app's grant is grant_not_found", caller: s.appKey(), grant: "otherGH", wantCode: wire.CodeGrantNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var u *grants.EndUser
				if tt.user != "" {
					u = s.users[tt.user]
				}
				g, err := s.svc.Get(context.Background(), tt.caller, u, s.ids[tt.grant])
				if tt.wantCode != "" {
					if errs.CodeOf(err) != tt.wantCode {
						t.Fatalf("got %v, want %s", err, tt.wantCode)
					}
					return
				}
				if err != nil || g.GrantID != s.ids[tt.grant] {
					t.Fatalf("got %v %v", g.GrantID, err)
				}
			})
		}
	})
}
