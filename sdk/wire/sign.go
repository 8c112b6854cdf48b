package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Signature constants (DESIGN.md §4.3).
const (
	// Algorithm is the first line of every string to sign.
	Algorithm = "LATCHKEY-HMAC-SHA256-V1"
	// SignaturePrefix precedes the hex signature in Latchkey-Signature, so a
	// future algorithm can be told apart by its prefix.
	SignaturePrefix = "v1="

	signatureHexLength = 2 * sha256.Size
)

// SignatureParams is everything that goes into a string to sign.
type SignatureParams struct {
	KeyID     string
	Timestamp int64 // Unix seconds, written in decimal
	Nonce     string
	Method    string // uppercased (ASCII) when signed
	Target    string // request-target as sent: path and query
	Body      []byte // hashed unless BodySHA256 is set
	// BodySHA256, when non-nil, is the SHA-256 digest of the body and is used
	// instead of Body, so a server can hash a streamed body without holding
	// it twice.
	BodySHA256 []byte
	UserToken  string // Latchkey-User-Token value, "" when absent
	Caller     string // Latchkey-Caller value, "" when absent
	Agent      string // Latchkey-Agent value as sent, "" when absent
}

// StringToSign builds the ten-line string of DESIGN.md §4.3, joined by "\n"
// with no trailing newline. Absent values hash as the empty string.
func StringToSign(p SignatureParams) string {
	bodyHash := p.BodySHA256
	if bodyHash == nil {
		sum := sha256.Sum256(p.Body)
		bodyHash = sum[:]
	}
	return strings.Join([]string{
		Algorithm,
		p.KeyID,
		strconv.FormatInt(p.Timestamp, 10),
		p.Nonce,
		asciiUpper(p.Method),
		p.Target,
		hex.EncodeToString(bodyHash),
		sha256Hex(p.UserToken),
		sha256Hex(p.Caller),
		sha256Hex(p.Agent),
	}, "\n")
}

// Sign returns the lowercase hex HMAC-SHA256 of sts under signingKey.
func Sign(signingKey []byte, sts string) string {
	return hex.EncodeToString(mac(signingKey, sts))
}

// SignatureHeaderValue formats a hex signature for Latchkey-Signature.
func SignatureHeaderValue(hexSignature string) string {
	return SignaturePrefix + hexSignature
}

// ParseSignatureHeader checks that v is "v1=" followed by exactly 64
// lowercase hex characters and returns the decoded 32-byte signature.
// Errors are *MalformedAuthError.
func ParseSignatureHeader(v string) ([]byte, error) {
	h, ok := strings.CutPrefix(v, SignaturePrefix)
	if !ok || len(h) != signatureHexLength || !allIn(h, "0123456789abcdef") {
		return nil, &MalformedAuthError{Header: HeaderSignature, Reason: reasonAuthSignature}
	}
	sig, err := hex.DecodeString(h)
	if err != nil { // unreachable after the checks above; kept to fail closed
		return nil, &MalformedAuthError{Header: HeaderSignature, Reason: reasonAuthSignature}
	}
	return sig, nil
}

// VerifySignature reports whether sig is the signature of sts under
// signingKey, comparing in constant time.
func VerifySignature(signingKey []byte, sts string, sig []byte) bool {
	return hmac.Equal(mac(signingKey, sts), sig)
}

// RequestTarget is the request-target that gets signed: the path and query
// exactly as they travel on the wire.
//
// On the server it is r.RequestURI (the raw target received), reduced to its
// path and query when a client used the absolute form. On the client, where
// RequestURI must be empty, it is r.URL.RequestURI(), which is what
// net/http's transport writes for both HTTP/1.1 and HTTP/2.
func RequestTarget(r *http.Request) string {
	if r.RequestURI == "" {
		return r.URL.RequestURI()
	}
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	// Absolute form (http://host/path?q) or something odd: the server has
	// already parsed it into r.URL, whose opaque/raw parts are kept as sent.
	return r.URL.RequestURI()
}

// Signer signs outgoing SDK requests with one API key. It keeps only the
// derived signing key, never the API key, and only inside a closure so that
// printing a Signer (or a struct holding one) with any verb shows no key
// material (see APIKey for why a closure).
type Signer struct {
	keyID string
	sign  func(sts string) string
	now   func() time.Time
	rand  io.Reader
}

// NewSigner returns a Signer for key. now defaults to time.Now and rand to
// crypto/rand.Reader; tests pass fixed ones to reproduce the test vectors.
func NewSigner(key APIKey, now func() time.Time, rand io.Reader) (*Signer, error) {
	if key.IsZero() {
		return nil, errors.New("wire: signer needs an API key")
	}
	if now == nil {
		now = time.Now
	}
	sk := key.SigningKey()
	return &Signer{
		keyID: key.KeyID(),
		sign:  func(sts string) string { return Sign(sk, sts) },
		now:   now,
		rand:  orCryptoRand(rand),
	}, nil
}

// KeyID is the public id of the key this Signer signs with.
func (s *Signer) KeyID() string { return s.keyID }

// Sign sets Latchkey-Key-Id, -Timestamp, -Nonce and -Signature on req.
//
// Latchkey-User-Token, Latchkey-Caller and Latchkey-Agent are signed as
// already set on req, so set them first. The body is read in full to hash it
// and then restored (Body, GetBody and ContentLength), so req can still be
// sent and retried.
func (s *Signer) Sign(req *http.Request) error {
	for _, name := range []string{HeaderUserToken, HeaderCaller, HeaderAgent} {
		if err := checkOptionalOutgoing(req.Header, name); err != nil {
			return err
		}
	}
	body, err := readAndRestoreBody(req)
	if err != nil {
		return err
	}
	nonce, err := NewNonce(s.rand)
	if err != nil {
		return err
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet // what net/http sends for an empty Method
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	p := SignatureParams{
		KeyID:     s.keyID,
		Timestamp: s.now().Unix(),
		Nonce:     nonce,
		Method:    method,
		Target:    RequestTarget(req),
		Body:      body,
		UserToken: req.Header.Get(HeaderUserToken),
		Caller:    req.Header.Get(HeaderCaller),
		Agent:     req.Header.Get(HeaderAgent),
	}
	req.Header.Set(HeaderKeyID, p.KeyID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(p.Timestamp, 10))
	req.Header.Set(HeaderNonce, p.Nonce)
	req.Header.Set(HeaderSignature, SignatureHeaderValue(s.sign(StringToSign(p))))
	return nil
}

// String keeps fmt away from the signing key. It has a value receiver so it
// applies to Signer and *Signer alike.
func (s Signer) String() string {
	return "wire.Signer{" + s.keyID + "}"
}

// checkOptionalOutgoing refuses, before sending, values the server would
// reject or read differently from how they were signed. HTTP strips leading
// and trailing whitespace from field values, so such a value could never
// verify; repeating the header would make the signed value ambiguous.
func checkOptionalOutgoing(h http.Header, name string) error {
	vals := h.Values(name)
	if len(vals) == 0 {
		return nil
	}
	if len(vals) > 1 {
		return &MalformedAuthError{Header: name, Reason: reasonAuthRepeated}
	}
	return checkOptionalValue(name, vals[0])
}

func readAndRestoreBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(req.Body)
	closeErr := req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("wire: read request body to sign: %w", err)
	}
	if closeErr != nil {
		return nil, fmt.Errorf("wire: close request body: %w", closeErr)
	}
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		return body, nil
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	return body, nil
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// asciiUpper uppercases a-z only. Methods are ASCII tokens; Unicode case
// mapping would let implementations in other languages disagree.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// validUTF8Max reports whether s is valid UTF-8 of at most n runes.
func validUTF8Max(s string, n int) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= n
}
