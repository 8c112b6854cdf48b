package wire

import (
	"encoding/json"
	"fmt"
	"io"
)

// Vector is one signing test vector from sdk/wire/testdata/vectors.json.
// The file is produced by openssl and sha256sum (testdata/vectors.sh), not by
// this package, so the server's and SDK's tests can check themselves against
// an independent implementation by loading it with LoadVectors.
type Vector struct {
	Name          string `json:"name"`
	Description   string `json:"description"`
	APIKey        string `json:"api_key"`
	KeyID         string `json:"key_id"`
	SigningKeyHex string `json:"signing_key_hex"`
	Timestamp     int64  `json:"timestamp"`
	Nonce         string `json:"nonce"`
	Method        string `json:"method"`
	Target        string `json:"target"`
	Body          string `json:"body"`
	UserToken     string `json:"user_token"`
	Caller        string `json:"caller"`
	Agent         string `json:"agent"`
	StringToSign  string `json:"string_to_sign"`
	Signature     string `json:"signature"` // lowercase hex, without "v1="
}

// Params is the vector's input as SignatureParams.
func (v Vector) Params() SignatureParams {
	return SignatureParams{
		KeyID:     v.KeyID,
		Timestamp: v.Timestamp,
		Nonce:     v.Nonce,
		Method:    v.Method,
		Target:    v.Target,
		Body:      []byte(v.Body),
		UserToken: v.UserToken,
		Caller:    v.Caller,
		Agent:     v.Agent,
	}
}

// LoadVectors decodes a vectors.json document. Unknown fields are an error so
// a renamed field in the file cannot silently turn into an empty value.
func LoadVectors(r io.Reader) ([]Vector, error) {
	var doc struct {
		Description string   `json:"description"`
		Vectors     []Vector `json:"vectors"`
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("wire: decode test vectors: %w", err)
	}
	if len(doc.Vectors) == 0 {
		return nil, fmt.Errorf("wire: decode test vectors: no vectors")
	}
	return doc.Vectors, nil
}
