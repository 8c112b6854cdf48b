package demo

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// JWT media types: ID tokens and minted end-user tokens are plain "JWT";
// access tokens are "at+jwt" (RFC 9068) so one can never pass for the other
// at the userinfo endpoint.
const (
	typJWT         = "JWT"
	typAccessToken = "at+jwt"
)

// minRSABits refuses keys too weak to sign anything, even in a demo.
const minRSABits = 2048

// jwtSigner signs the identity provider's tokens with one RSA key (RS256).
type jwtSigner struct {
	key *rsa.PrivateKey
	kid string
}

func newJWTSigner(key *rsa.PrivateKey) (*jwtSigner, error) {
	if key.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("signing key has %d bits, want at least %d", key.N.BitLen(), minRSABits)
	}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// The kid is the RFC 7638 thumbprint: stable for a persisted key, new
	// for a new one, so verifiers' JWKS caches refetch exactly when needed.
	jwk := jose.JSONWebKey{Key: &key.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key thumbprint: %w", err)
	}
	return &jwtSigner{key: key, kid: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

func (j *jwtSigner) sign(claims map[string]any, typ string) (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: j.key, KeyID: j.kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return "", fmt.Errorf("demo: signer: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("demo: claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("demo: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// verify checks signature and media type and returns the claims; the
// caller checks iss, exp and the rest.
func (j *jwtSigner) verify(token, typ string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 || jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType] != typ {
		return nil, errors.New("wrong token type")
	}
	payload, err := jws.Verify(&j.key.PublicKey)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// userClaims are the identity claims every IdP token carries.
func (s *Server) userClaims(u User, aud string, now time.Time, ttl time.Duration) map[string]any {
	return map[string]any{
		"iss":                s.Issuer(),
		"sub":                u.Username,
		"aud":                aud,
		"iat":                now.Unix(),
		"exp":                now.Add(ttl).Unix(),
		"email":              u.Email,
		"email_verified":     true,
		"name":               u.Name,
		"preferred_username": u.Username,
		"groups":             append([]string{}, u.Groups...),
	}
}

// accessClaims are the claims of an IdP access token (RFC 9068 shape).
func (s *Server) accessClaims(f *family, scopes []string, jti string, now time.Time, ttl time.Duration) map[string]any {
	c := s.userClaims(f.user, f.clientID, now, ttl)
	c["client_id"] = f.clientID
	c["scope"] = strings.Join(scopes, " ")
	c["jti"] = jti
	c["sid"] = f.id
	c["auth_time"] = f.authTime.Unix()
	return c
}

// atHash is the ID token's at_hash: the left half of SHA-256 of the access
// token (OIDC Core §3.1.3.6), which lets a client bind the two.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// ErrUnknownUser is returned by MintToken for a subject that is not a demo
// user.
var ErrUnknownUser = errors.New("demo: unknown demo user")

// MintToken returns an end-user JWT from the demo identity provider, the
// same shape as its ID tokens (iss, sub, aud, iat, exp, email, name,
// groups), without a browser: the demo host page and tests use it as the
// Latchkey-User-Token. sub is a demo user's username ("ada").
func (s *Server) MintToken(sub, aud string, ttl time.Duration) (string, error) {
	u, ok := s.userByName(sub)
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownUser, sub)
	}
	if aud == "" {
		return "", errors.New("demo: MintToken needs an audience")
	}
	if ttl <= 0 {
		return "", errors.New("demo: MintToken needs a positive ttl")
	}
	jti, err := s.tokens.newToken("")
	if err != nil {
		return "", err
	}
	claims := s.userClaims(u, aud, s.now(), ttl)
	claims["jti"] = jti
	return s.jwt.sign(claims, typJWT)
}

func (s *Server) idpDiscovery(w http.ResponseWriter, r *http.Request) {
	iss := s.Issuer()
	scopes := make([]string, 0, len(s.idp.scopes))
	for _, sc := range s.idp.scopes {
		scopes = append(scopes, sc.Name)
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/authorize",
		"token_endpoint":                        iss + "/token",
		"userinfo_endpoint":                     iss + "/userinfo",
		"jwks_uri":                              iss + "/jwks",
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      scopes,
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
			"email", "email_verified", "name", "preferred_username", "groups"},
		"authorization_response_iss_parameter_supported": true,
	})
}

func (s *Server) idpJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &s.jwt.key.PublicKey, KeyID: s.jwt.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

// idpUserinfo answers with the claims of the user an IdP access token
// (from this IdP's token endpoint, whose session is not revoked) stands for.
func (s *Server) idpUserinfo(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	const realm = "latchkey-demo-idp"
	tok, ok := bearerToken(w, r, realm)
	if !ok {
		return
	}
	claims, err := s.jwt.verify(tok, typAccessToken)
	if err != nil {
		invalidToken(w, realm, errTokenUnknown)
		return
	}
	exp, _ := claims["exp"].(float64)
	sid, _ := claims["sid"].(string)
	sub, _ := claims["sub"].(string)
	switch {
	case claims["iss"] != s.Issuer():
		invalidToken(w, realm, errTokenUnknown)
		return
	case float64(s.now().Unix()) >= exp:
		invalidToken(w, realm, errTokenExpired)
		return
	case !s.idp.familyActive(sid):
		invalidToken(w, realm, errTokenRevoked)
		return
	}
	u, ok := s.userByName(sub)
	if !ok {
		invalidToken(w, realm, errTokenUnknown)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sub":                u.Username,
		"email":              u.Email,
		"email_verified":     true,
		"name":               u.Name,
		"preferred_username": u.Username,
		"groups":             u.Groups,
	})
}

// EncodeSigningKeyPEM encodes a signing key as PKCS #8 PEM, for the caller
// to keep (0600) so the IdP's key survives restarts.
func EncodeSigningKeyPEM(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("demo: encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseSigningKeyPEM reads a key written by EncodeSigningKeyPEM (PKCS #8 or
// PKCS #1 PEM).
func ParseSigningKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("demo: signing key: no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("demo: signing key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("demo: signing key is not an RSA key")
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("demo: signing key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("demo: signing key: unexpected PEM block %q", block.Type)
	}
}
