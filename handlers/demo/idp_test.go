package demo_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/handlers/demo"
)

// idTokenClaims are the claims the tests read from ID tokens.
type idTokenClaims struct {
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Groups        []string `json:"groups"`
	Sid           string   `json:"sid"`
}

func (e *env) provider() *oidc.Provider {
	e.t.Helper()
	p, err := oidc.NewProvider(oidc.ClientContext(e.t.Context(), e.srv.Client()), e.srv.Demo.Issuer())
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	return p
}

func (e *env) verifier(aud string) *oidc.IDTokenVerifier {
	return e.provider().Verifier(&oidc.Config{ClientID: aud, Now: e.clock.Now})
}

func TestIDPDiscoveryIsUsableByGoOIDC(t *testing.T) {
	e := newEnv(t)
	p := e.provider()
	ep := p.Endpoint()
	if ep.AuthURL != e.srv.Base+"/idp/authorize" || ep.TokenURL != e.srv.Base+"/idp/token" || p.UserInfoEndpoint() != e.srv.Base+"/idp/userinfo" {
		t.Errorf("endpoints: %+v userinfo %s", ep, p.UserInfoEndpoint())
	}
	var doc struct {
		Methods []string `json:"code_challenge_methods_supported"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
		JWKS    string   `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(doc.Methods, []string{"S256"}) || !slices.Equal(doc.Algs, []string{"RS256"}) || doc.JWKS != e.srv.Base+"/idp/jwks" {
		t.Errorf("discovery document: %+v", doc)
	}
}

func TestIDPAuthCodeFlowIssuesVerifiableIDTokens(t *testing.T) {
	for _, tc := range []struct {
		user       string
		wantName   string
		wantGroups []string
	}{
		{"ada", "Ada Lovelace", []string{"engineering", "admins"}},
		{"grace", "Grace Hopper", []string{"engineering"}},
		{"linus", "Linus Torvalds", []string{"ops"}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.idpConfig()
			verifier := oauth2.GenerateVerifier()
			// The identity provider has no consent step: the login post
			// redirects straight back.
			loc := e.srv.Authorize(t, cfg.AuthCodeURL("st-idp", oidc.Nonce("n-123"), oauth2.S256ChallengeOption(verifier)), tc.user, "")
			if loc.Query().Get("state") != "st-idp" || loc.Query().Get("iss") != e.srv.Demo.Issuer() {
				t.Fatalf("redirect: %s", loc.Redacted())
			}
			tok, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := e.verifier(idpClientID).Verify(e.t.Context(), raw)
			if err != nil {
				t.Fatalf("verify ID token: %v", err)
			}
			if idt.Subject != tc.user || idt.Nonce != "n-123" || !slices.Equal(idt.Audience, []string{idpClientID}) {
				t.Errorf("ID token sub=%q nonce=%q aud=%v", idt.Subject, idt.Nonce, idt.Audience)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			var c idTokenClaims
			if err := idt.Claims(&c); err != nil {
				t.Fatal(err)
			}
			if c.Email != tc.user+"@example.com" || !c.EmailVerified || c.Name != tc.wantName || !slices.Equal(c.Groups, tc.wantGroups) {
				t.Errorf("claims = %+v", c)
			}

			// The access token is a JWT for the client, carrying the same
			// identity claims, and works at userinfo.
			atClaims, err := e.verifier(idpClientID).Verify(e.t.Context(), tok.AccessToken)
			if err != nil {
				t.Fatalf("access token is not a JWT of this issuer for the client: %v", err)
			}
			if atClaims.Subject != tc.user {
				t.Errorf("access token sub = %q", atClaims.Subject)
			}
			ui, err := e.provider().UserInfo(e.ctx(), oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var uc idTokenClaims
			if err := ui.Claims(&uc); err != nil {
				t.Fatal(err)
			}
			if ui.Subject != tc.user || !slices.Equal(uc.Groups, tc.wantGroups) {
				t.Errorf("userinfo sub=%q groups=%v", ui.Subject, uc.Groups)
			}
		})
	}
}

func TestIDPRefreshRotatesAndReuseRevokesSession(t *testing.T) {
	e := newEnv(t)
	cfg := e.idpConfig()
	verifier := oauth2.GenerateVerifier()
	loc := e.srv.Authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ada", "")
	first, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.refresh(cfg, first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh token not rotated")
	}
	raw, _ := second.Extra("id_token").(string)
	if _, err := e.verifier(idpClientID).Verify(e.t.Context(), raw); err != nil {
		t.Fatalf("refreshed ID token: %v", err)
	}
	if _, err := e.refresh(cfg, first.RefreshToken); oauthErrorCode(t, err) != "invalid_grant" {
		t.Fatal("reuse must be invalid_grant")
	}
	if _, err := e.refresh(cfg, second.RefreshToken); oauthErrorCode(t, err) != "invalid_grant" {
		t.Fatal("reuse must revoke the current refresh token too")
	}
	// The session's access tokens no longer work at userinfo.
	if _, err := e.provider().UserInfo(e.ctx(), oauth2.StaticTokenSource(second)); err == nil {
		t.Fatal("userinfo accepted an access token of a revoked session")
	}
}

func TestIDPRefusesOtherClientsTokensAndCodes(t *testing.T) {
	e := newEnv(t)
	cfg := e.idpConfig()
	verifier := oauth2.GenerateVerifier()
	loc := e.srv.Authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "grace", "")

	other := e.idpConfig()
	other.ClientID, other.ClientSecret, other.RedirectURL = otherClientID, otherClientSecret, otherCallback
	_, err := other.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if oauthErrorCode(t, err) != "invalid_grant" {
		t.Fatal("another client redeemed the code")
	}
	// The rightful client still can: a foreign attempt does not burn it.
	tok, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange by the rightful client: %v", err)
	}
	if _, err := e.refresh(other, tok.RefreshToken); oauthErrorCode(t, err) != "invalid_grant" {
		t.Fatal("another client used the refresh token")
	}
	raw, _ := tok.Extra("id_token").(string)
	if _, err := e.verifier(otherClientID).Verify(e.t.Context(), raw); err == nil {
		t.Fatal("ID token verified for the wrong audience")
	}
}

func TestMintTokenVerifiesAgainstDiscovery(t *testing.T) {
	e := newEnv(t)
	const aud = "latchkey-demo-app"
	tok, err := e.srv.Demo.MintToken("grace", aud, 10*time.Minute)
	if err != nil {
		t.Fatalf("MintToken: %v", err)
	}
	idt, err := e.verifier(aud).Verify(e.t.Context(), tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var c idTokenClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "grace" || idt.Issuer != e.srv.Base+"/idp" || c.Email != "grace@example.com" ||
		c.Name != "Grace Hopper" || !slices.Equal(c.Groups, []string{"engineering"}) {
		t.Errorf("minted claims: sub=%q iss=%q %+v", idt.Subject, idt.Issuer, c)
	}
	if got := idt.Expiry.Sub(e.clock.Now()); got != 10*time.Minute {
		t.Errorf("exp - now = %v, want 10m", got)
	}
	if _, err := e.verifier("another-audience").Verify(e.t.Context(), tok); err == nil {
		t.Error("a minted token verified for another audience")
	}
	e.clock.Advance(10*time.Minute + time.Second)
	if _, err := e.verifier(aud).Verify(e.t.Context(), tok); err == nil {
		t.Error("a minted token verified after its ttl")
	}
	// A minted token is not an access token: userinfo refuses it.
	resp, _ := e.call(http.MethodGet, "/idp/userinfo", tok, "", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo with a minted ID-style token: %d, want 401", resp.StatusCode)
	}
}

func TestMintTokenRejectsBadArguments(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, sub, aud string
		ttl            time.Duration
		wantUnknown    bool
	}{
		{"unknown user", "mallory", "aud", time.Minute, true},
		{"empty audience", "ada", "", time.Minute, false},
		{"zero ttl", "ada", "aud", 0, false},
		{"negative ttl", "ada", "aud", -time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.srv.Demo.MintToken(tc.sub, tc.aud, tc.ttl)
			if err == nil {
				t.Fatal("want an error")
			}
			if got := errors.Is(err, demo.ErrUnknownUser); got != tc.wantUnknown {
				t.Errorf("errors.Is(ErrUnknownUser) = %v", got)
			}
		})
	}
}

func TestSigningKeyPersistsAcrossRestarts(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := demo.EncodeSigningKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := demo.ParseSigningKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(key) {
		t.Fatal("PEM round trip changed the key")
	}

	// A token minted before a "restart" verifies against the JWKS after it
	// when the key is kept.
	first := newEnv(t, func(o *demo.Options) { o.SigningKey = key })
	tok, err := first.srv.Demo.MintToken("ada", "aud", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second := newEnv(t, func(o *demo.Options) { o.SigningKey = back })
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	resp, err := second.srv.Client().Get(second.srv.Base + "/idp/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].Alg != "RS256" || set.Keys[0].Use != "sig" {
		t.Fatalf("JWKS = %+v", set)
	}
	ks := oidc.NewRemoteKeySet(oidc.ClientContext(t.Context(), second.srv.Client()), second.srv.Base+"/idp/jwks")
	if _, err := ks.VerifySignature(t.Context(), tok); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	if second.srv.Demo.SigningKey() != back {
		t.Error("SigningKey should return the key in use")
	}
}

func TestGeneratedSigningKeyIsExposedForPersistence(t *testing.T) {
	e := newEnv(t, func(o *demo.Options) { o.SigningKey = nil })
	if k := e.srv.Demo.SigningKey(); k == nil || k.N.BitLen() < 2048 {
		t.Fatal("want a generated RSA key of at least 2048 bits")
	}
}
