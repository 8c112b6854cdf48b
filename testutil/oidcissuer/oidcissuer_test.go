package oidcissuer_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/testutil/oidcissuer"
)

func verifier(t *testing.T, iss *oidcissuer.Issuer) *oidc.IDTokenVerifier {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), iss.Client())
	p, err := oidc.NewProvider(ctx, iss.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return p.Verifier(&oidc.Config{ClientID: iss.Audience})
}

func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestMintedTokensVerifyWithGoOIDC(t *testing.T) {
	for name, opts := range map[string][]oidcissuer.Option{
		"http":           nil,
		"https":          {oidcissuer.WithTLS()},
		"keycloak path":  {oidcissuer.WithPath("/realms/demo")},
		"other audience": {oidcissuer.WithAudience("api://default")},
	} {
		t.Run(name, func(t *testing.T) {
			iss := oidcissuer.New(t, opts...)
			v := verifier(t, iss)
			tok, err := v.Verify(context.Background(), iss.Mint(t, map[string]any{"sub": "ada", "groups": []string{"eng"}}))
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Groups []string `json:"groups"`
			}
			if err := tok.Claims(&claims); err != nil || tok.Subject != "ada" || claims.Groups[0] != "eng" {
				t.Fatalf("claims: %+v %v", claims, err)
			}
			if _, err := v.Verify(context.Background(), iss.Mint(t, nil, oidcissuer.WithKey(iss.KeyOfType(jose.ES256)))); err != nil {
				t.Fatalf("EC token: %v", err)
			}
		})
	}
}

func TestRotationPublishesANewKid(t *testing.T) {
	iss := oidcissuer.New(t)
	old := iss.SigningKey()
	k := iss.Rotate(t, jose.ES384)
	if iss.SigningKey() != k || k.ID == old.ID {
		t.Fatal("rotation did not switch the signing key")
	}
	if h := header(t, iss.Mint(t, nil)); h["kid"] != k.ID || h["alg"] != "ES384" {
		t.Fatalf("header after rotation: %v", h)
	}
	if len(iss.Keys()) != 3 {
		t.Fatalf("%d keys published, want 3", len(iss.Keys()))
	}
	iss.RemoveKey(old.ID)
	for _, pk := range iss.Keys() {
		if pk.ID == old.ID {
			t.Fatal("removed key still published")
		}
	}
	if _, err := verifier(t, iss).Verify(context.Background(), iss.Mint(t, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestBrokenTokensAreBrokenTheIntendedWay(t *testing.T) {
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	iss := oidcissuer.New(t, oidcissuer.WithClock(func() time.Time { return clock }))

	none := iss.MintAlgNone(t, nil)
	if h := header(t, none); h["alg"] != "none" || !strings.HasSuffix(none, ".") {
		t.Fatalf("alg none token: %v", h)
	}

	// The confusion token must be a correct HS256 MAC under the public key
	// PEM, or the test that refuses it proves nothing.
	forged := iss.MintHS256WithPublicKey(t, nil)
	der, err := x509.MarshalPKIXPublicKey(iss.KeyOfType(jose.RS256).Public())
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(forged, '.')
	mac := hmac.New(sha256.New, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	mac.Write([]byte(forged[:i]))
	if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != forged[i+1:] {
		t.Fatal("HS256 token is not MACed with the public key PEM")
	}
	if h := header(t, forged); h["alg"] != "HS256" || h["kid"] != iss.KeyOfType(jose.RS256).ID {
		t.Fatalf("HS256 header: %v", h)
	}

	claims := func(tok string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if exp := claims(iss.MintExpired(t, nil))["exp"].(float64); int64(exp) != clock.Add(-time.Hour).Unix() {
		t.Fatalf("expired token exp %v", exp)
	}
	if nbf := claims(iss.MintNotYetValid(t, nil))["nbf"].(float64); int64(nbf) != clock.Add(time.Hour).Unix() {
		t.Fatalf("not-yet-valid nbf %v", nbf)
	}
	if aud := claims(iss.MintWrongAudience(t, nil))["aud"]; aud == iss.Audience {
		t.Fatal("wrong-audience token has the right audience")
	}
	if _, ok := claims(iss.Mint(t, map[string]any{"exp": nil}))["exp"]; ok {
		t.Fatal("a nil claim was not removed")
	}
	if h := header(t, iss.Mint(t, nil, oidcissuer.WithKeyID(""))); h["kid"] != nil {
		t.Fatalf("kid not omitted: %v", h)
	}
}

func TestSetDownAnswers503AndCountsFetches(t *testing.T) {
	iss := oidcissuer.New(t)
	iss.SetDown(true)
	if _, err := oidc.NewProvider(oidc.ClientContext(context.Background(), iss.Client()), iss.URL); err == nil {
		t.Fatal("discovery worked while down")
	}
	iss.SetDown(false)
	verifier(t, iss)
	if iss.DiscoveryFetches() != 2 {
		t.Fatalf("%d discovery fetches, want 2", iss.DiscoveryFetches())
	}
}
