// Package oidcissuer is a real OpenID Connect issuer on a loopback port for
// tests: a discovery document, a JWKS endpoint with RSA, EC and Ed25519 keys,
// key rotation, and minting of valid and deliberately broken JWTs (expired,
// wrong audience, alg none, HS256 keyed with the RSA public key, …).
//
// It is imported only by tests, from any package:
//
//	iss := oidcissuer.New(t)
//	tok := iss.Mint(t, map[string]any{"sub": "ada", "groups": []string{"eng"}})
//
// Signing goes through go-jose, so valid tokens are exactly what a real IdP
// would send; the attack tokens are assembled by hand because no honest
// library will produce them.
package oidcissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultAudience is the aud Mint puts in tokens unless told otherwise.
const DefaultAudience = "latchkey-test"

// DefaultSubject is the sub Mint puts in tokens unless told otherwise.
const DefaultSubject = "user-1"

// Key is one signing key of the issuer.
type Key struct {
	ID      string
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
}

// Public returns the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.Private.Public() }

// Issuer is a running OIDC issuer. It is safe for concurrent use.
type Issuer struct {
	// URL is the issuer identifier: the server's base URL plus the path
	// given by WithPath. Tokens carry it as iss.
	URL string
	// Audience is the aud Mint uses by default.
	Audience string

	srv *httptest.Server
	now func() time.Time

	mu        sync.Mutex
	published []*Key // in the JWKS, in order
	signer    *Key   // Mint's default key
	down      bool
	nextKid   int

	discoveryFetches atomic.Int64
	jwksFetches      atomic.Int64
}

type config struct {
	path     string
	audience string
	now      func() time.Time
	tls      bool
}

// Option configures New.
type Option func(*config)

// WithPath serves the issuer under a path, e.g. "/realms/demo" for a
// Keycloak-shaped issuer URL.
func WithPath(p string) Option {
	return func(c *config) { c.path = "/" + strings.Trim(p, "/") }
}

// WithAudience sets the default aud of minted tokens.
func WithAudience(aud string) Option { return func(c *config) { c.audience = aud } }

// WithClock sets the clock used for iat, exp and nbf of minted tokens.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithTLS serves https with httptest's self-signed certificate; use
// Issuer.Client() as the HTTP client, it trusts that certificate.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// New starts an issuer with one RSA key (RS256, the default signer) and one
// EC P-256 key (ES256) published. It stops when the test ends.
func New(t testing.TB, opts ...Option) *Issuer {
	t.Helper()
	c := config{audience: DefaultAudience, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	iss := &Issuer{Audience: c.audience, now: c.now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+c.path+"/.well-known/openid-configuration", iss.serveDiscovery)
	mux.HandleFunc("GET "+c.path+"/jwks", iss.serveJWKS)
	if c.tls {
		iss.srv = httptest.NewTLSServer(mux)
	} else {
		iss.srv = httptest.NewServer(mux)
	}
	t.Cleanup(iss.srv.Close)
	iss.URL = iss.srv.URL + c.path

	iss.signer = iss.AddKey(t, jose.RS256)
	iss.AddKey(t, jose.ES256)
	return iss
}

// Client returns an HTTP client that reaches the issuer (and trusts its
// certificate when WithTLS is used).
func (i *Issuer) Client() *http.Client { return i.srv.Client() }

// Close stops the server early (it also stops when the test ends).
func (i *Issuer) Close() { i.srv.Close() }

// SetDown makes discovery and JWKS answer 503 (true) or serve again (false),
// to simulate an issuer outage.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.down = down
}

// DiscoveryFetches counts requests for the discovery document.
func (i *Issuer) DiscoveryFetches() int64 { return i.discoveryFetches.Load() }

// JWKSFetches counts requests for the key set.
func (i *Issuer) JWKSFetches() int64 { return i.jwksFetches.Load() }

// SigningKey returns Mint's current default key.
func (i *Issuer) SigningKey() *Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.signer
}

// Keys returns the published keys, oldest first.
func (i *Issuer) Keys() []*Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]*Key(nil), i.published...)
}

// KeyOfType returns the first published key for alg's key type (RSA for
// RS*/PS*, EC for ES*, Ed25519 for EdDSA), or nil.
func (i *Issuer) KeyOfType(alg jose.SignatureAlgorithm) *Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range i.published {
		if sameKeyType(k.Alg, alg) {
			return k
		}
	}
	return nil
}

// AddKey generates a key for alg and publishes it in the JWKS under a new
// kid. The default signing key does not change.
func (i *Issuer) AddKey(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	k := i.NewUnpublishedKey(t, alg)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.published = append(i.published, k)
	return k
}

// Rotate publishes a new key for alg and makes it Mint's default, the way
// an IdP rotates: the old keys stay published until RemoveKey.
func (i *Issuer) Rotate(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	k := i.AddKey(t, alg)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.signer = k
	return k
}

// RemoveKey withdraws a key from the JWKS.
func (i *Issuer) RemoveKey(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := i.published[:0]
	for _, k := range i.published {
		if k.ID != kid {
			out = append(out, k)
		}
	}
	i.published = out
}

// NewUnpublishedKey generates a key for alg with a fresh kid that is not in
// the JWKS (tokens it signs must never verify).
func (i *Issuer) NewUnpublishedKey(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
		kind string
	)
	switch {
	case strings.HasPrefix(string(alg), "RS"), strings.HasPrefix(string(alg), "PS"):
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		kind = "rsa"
	case alg == jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		kind = "ec"
	case alg == jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		kind = "ec"
	case alg == jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		kind = "ec"
	case alg == jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		kind = "ed"
	default:
		t.Fatalf("oidcissuer: no key type for alg %q", alg)
	}
	if err != nil {
		t.Fatalf("oidcissuer: generate %s key: %v", alg, err)
	}
	i.mu.Lock()
	i.nextKid++
	kid := fmt.Sprintf("%s-%d", kind, i.nextKid)
	i.mu.Unlock()
	return &Key{ID: kid, Alg: alg, Private: priv}
}

func sameKeyType(a, b jose.SignatureAlgorithm) bool {
	family := func(x jose.SignatureAlgorithm) string {
		s := string(x)
		switch {
		case strings.HasPrefix(s, "RS"), strings.HasPrefix(s, "PS"):
			return "rsa"
		case strings.HasPrefix(s, "ES"):
			return "ec-" + s
		}
		return s
	}
	return family(a) == family(b)
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	i.discoveryFetches.Add(1)
	if i.isDown() {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{
		"issuer":                                i.URL,
		"authorization_endpoint":                i.URL + "/authorize",
		"token_endpoint":                        i.URL + "/token",
		"jwks_uri":                              i.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.jwksFetches.Add(1)
	if i.isDown() {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	var set jose.JSONWebKeySet
	for _, k := range i.Keys() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"})
	}
	writeJSON(w, set)
}

func (i *Issuer) isDown() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.down
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// mintOptions select how Mint signs.
type mintOptions struct {
	key    *Key
	alg    jose.SignatureAlgorithm
	kid    *string
	header map[string]any
}

// MintOption tunes one Mint call.
type MintOption func(*mintOptions)

// WithKey signs with k instead of the default signing key.
func WithKey(k *Key) MintOption { return func(o *mintOptions) { o.key = k } }

// WithAlg signs with alg (it must suit the key, e.g. PS256 with an RSA key).
func WithAlg(alg jose.SignatureAlgorithm) MintOption { return func(o *mintOptions) { o.alg = alg } }

// WithKeyID puts kid in the header instead of the signing key's id; ""
// omits the kid header.
func WithKeyID(kid string) MintOption { return func(o *mintOptions) { o.kid = &kid } }

// WithHeader adds a protected header field.
func WithHeader(name string, v any) MintOption {
	return func(o *mintOptions) {
		if o.header == nil {
			o.header = map[string]any{}
		}
		o.header[name] = v
	}
}

// Claims returns the default claims Mint starts from: iss, aud, sub, iat
// and exp one hour ahead.
func (i *Issuer) Claims() map[string]any {
	now := i.now()
	return map[string]any{
		"iss": i.URL,
		"aud": i.Audience,
		"sub": DefaultSubject,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// merge lays claims over the defaults; a nil value removes a default claim.
func (i *Issuer) merge(claims map[string]any) map[string]any {
	out := i.Claims()
	for k, v := range claims {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// Mint returns a compact JWT with the default claims overlaid by claims,
// signed by the default key (or per opts).
func (i *Issuer) Mint(t testing.TB, claims map[string]any, opts ...MintOption) string {
	t.Helper()
	o := mintOptions{key: i.SigningKey()}
	for _, fn := range opts {
		fn(&o)
	}
	alg := o.alg
	if alg == "" {
		alg = o.key.Alg
	}
	so := (&jose.SignerOptions{}).WithType("JWT")
	for k, v := range o.header {
		so = so.WithHeader(jose.HeaderKey(k), v)
	}
	var signingKey any = jose.JSONWebKey{Key: o.key.Private, KeyID: o.key.ID}
	if o.kid != nil {
		if *o.kid == "" {
			signingKey = o.key.Private
		} else {
			signingKey = jose.JSONWebKey{Key: o.key.Private, KeyID: *o.kid}
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey}, so)
	if err != nil {
		t.Fatalf("oidcissuer: signer: %v", err)
	}
	payload, err := json.Marshal(i.merge(claims))
	if err != nil {
		t.Fatalf("oidcissuer: claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("oidcissuer: sign: %v", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("oidcissuer: serialize: %v", err)
	}
	return tok
}

// MintExpired mints a token whose exp is an hour in the past.
func (i *Issuer) MintExpired(t testing.TB, claims map[string]any, opts ...MintOption) string {
	t.Helper()
	now := i.now()
	return i.Mint(t, with(claims, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}), opts...)
}

// MintNotYetValid mints a token whose nbf is an hour in the future.
func (i *Issuer) MintNotYetValid(t testing.TB, claims map[string]any, opts ...MintOption) string {
	t.Helper()
	now := i.now()
	return i.Mint(t, with(claims, map[string]any{"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), opts...)
}

// MintWrongAudience mints a token for another audience.
func (i *Issuer) MintWrongAudience(t testing.TB, claims map[string]any, opts ...MintOption) string {
	t.Helper()
	return i.Mint(t, with(claims, map[string]any{"aud": "not-" + i.Audience}), opts...)
}

// MintWrongIssuer mints a token signed by this issuer's key but claiming
// another issuer.
func (i *Issuer) MintWrongIssuer(t testing.TB, claims map[string]any, opts ...MintOption) string {
	t.Helper()
	return i.Mint(t, with(claims, map[string]any{"iss": "https://evil.example"}), opts...)
}

// MintBadSignature mints a valid token and then corrupts its signature.
func (i *Issuer) MintBadSignature(t testing.TB, claims map[string]any, opts ...MintOption) string {
	t.Helper()
	tok := i.Mint(t, claims, opts...)
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		t.Fatalf("oidcissuer: signature: %v", err)
	}
	sig[len(sig)/2] ^= 0xff
	return tok[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// MintTamperedPayload mints a valid token and swaps its payload for claims
// the signature does not cover (e.g. another sub).
func (i *Issuer) MintTamperedPayload(t testing.TB, claims, forged map[string]any) string {
	t.Helper()
	parts := strings.Split(i.Mint(t, claims), ".")
	parts[1] = b64JSON(t, i.merge(with(claims, forged)))
	return strings.Join(parts, ".")
}

// MintUnknownKey mints a token signed by a key that is not in the JWKS,
// under a kid the JWKS does not list (forcing a refetch that cannot help).
func (i *Issuer) MintUnknownKey(t testing.TB, claims map[string]any) string {
	t.Helper()
	return i.Mint(t, claims, WithKey(i.NewUnpublishedKey(t, jose.RS256)))
}

// MintAlgNone returns an unsigned token: header {"alg":"none"} and an empty
// signature.
func (i *Issuer) MintAlgNone(t testing.TB, claims map[string]any) string {
	t.Helper()
	return b64JSON(t, map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64JSON(t, i.merge(claims)) + "."
}

// MintHS256WithPublicKey forges the classic algorithm-confusion token:
// HS256, with the kid of the issuer's RSA key, MACed with that key's public
// PEM ("-----BEGIN PUBLIC KEY-----", PKIX). A verifier that lets the token
// pick the algorithm and feeds the "key" bytes to HMAC accepts it.
func (i *Issuer) MintHS256WithPublicKey(t testing.TB, claims map[string]any) string {
	t.Helper()
	k := i.KeyOfType(jose.RS256)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatalf("oidcissuer: marshal public key: %v", err)
	}
	return i.mintHS256(t, claims, k.ID, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// MintHS256WithPublicKeyDER is MintHS256WithPublicKey keyed with the raw
// PKIX DER bytes instead of the PEM text.
func (i *Issuer) MintHS256WithPublicKeyDER(t testing.TB, claims map[string]any) string {
	t.Helper()
	k := i.KeyOfType(jose.RS256)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatalf("oidcissuer: marshal public key: %v", err)
	}
	return i.mintHS256(t, claims, k.ID, der)
}

func (i *Issuer) mintHS256(t testing.TB, claims map[string]any, kid string, secret []byte) string {
	t.Helper()
	signingInput := b64JSON(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64JSON(t, i.merge(claims))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func b64JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("oidcissuer: marshal: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// with returns base overlaid by extra, without changing either.
func with(base, extra map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}
