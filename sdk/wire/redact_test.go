package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type exportedHolder struct {
	Name string
	Key  APIKey
}

type unexportedHolder struct {
	name string
	key  APIKey
}

type signerHolder struct {
	signer Signer
	ptr    *Signer
}

func TestAPIKeyRedactedUnderEveryVerb(t *testing.T) {
	k := mustParseKey(t, testAppKey)
	tests := []struct {
		name  string
		value any
		// wantKeyID: output should still name the public key id.
		wantKeyID bool
	}{
		{"value", k, true},
		{"pointer", &k, true},
		{"in a slice", []APIKey{k}, true},
		{"in a map", map[string]APIKey{"k": k}, true},
		{"exported struct field", exportedHolder{"x", k}, true},
		{"pointer to struct with exported field", &exportedHolder{"x", k}, true},
		// fmt cannot call methods on unexported fields; the pointer inside
		// APIKey is what keeps these from printing the secret.
		{"unexported struct field", unexportedHolder{"x", k}, false},
		{"pointer to struct with unexported field", &unexportedHolder{"x", k}, false},
		{"wrapped in an error", fmt.Errorf("calling: %v", k), true},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%40s", "%-90v", "%.60s", "%T"}
	for _, tt := range tests {
		for _, verb := range verbs {
			t.Run(tt.name+" "+verb, func(t *testing.T) {
				out := fmt.Sprintf(verb, tt.value)
				assertNoSecret(t, out)
				if tt.wantKeyID && (verb == "%v" || verb == "%+v") && !strings.Contains(out, k.KeyID()) {
					t.Fatalf("%s output %q does not name the key id", verb, out)
				}
			})
		}
	}
	for name, out := range map[string]string{
		"Sprint":   fmt.Sprint(k),
		"Sprintln": fmt.Sprintln(k, &k),
		"String":   k.String(),
		"GoString": k.GoString(),
	} {
		t.Run(name, func(t *testing.T) { assertNoSecret(t, out) })
	}
	if k.Reveal() != testAppKey {
		t.Fatal("Reveal must return the full key")
	}
}

func TestAPIKeyRedactedInSlog(t *testing.T) {
	k := mustParseKey(t, testAppKey)
	handlers := []struct {
		name string
		make func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	}
	logs := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"key/value pair", func(l *slog.Logger) { l.Info("minted", "key", k) }},
		{"pointer", func(l *slog.Logger) { l.Info("minted", "key", &k) }},
		{"slog.Any", func(l *slog.Logger) { l.Info("minted", slog.Any("key", k)) }},
		{"group", func(l *slog.Logger) { l.Info("minted", slog.Group("auth", "key", k)) }},
		{"With", func(l *slog.Logger) { l.With("key", k).Info("minted") }},
		{"struct with exported field", func(l *slog.Logger) { l.Info("minted", "holder", exportedHolder{"x", k}) }},
		{"struct with unexported field", func(l *slog.Logger) { l.Info("minted", "holder", unexportedHolder{"x", k}) }},
		{"slice", func(l *slog.Logger) { l.Info("minted", "keys", []APIKey{k}) }},
		{"in the message via %v", func(l *slog.Logger) { l.Info(fmt.Sprintf("minted %v", k)) }},
	}
	for _, h := range handlers {
		for _, lg := range logs {
			t.Run(h.name+" "+lg.name, func(t *testing.T) {
				var buf bytes.Buffer
				lg.log(slog.New(h.make(&buf)))
				assertNoSecret(t, buf.String())
			})
		}
	}
}

func TestAPIKeyRedactedInJSON(t *testing.T) {
	k := mustParseKey(t, testAppKey)
	for name, v := range map[string]any{
		"value":          k,
		"exported field": exportedHolder{"x", k},
		"map value":      map[string]APIKey{"k": k},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			assertNoSecret(t, string(b))
			if !strings.Contains(string(b), k.KeyID()) {
				t.Fatalf("JSON %s does not name the key id", b)
			}
		})
	}
}

func TestZeroAPIKeyPrintsPlaceholder(t *testing.T) {
	var k APIKey
	if got := fmt.Sprintf("%v", k); got != "[no api key]" {
		t.Fatalf("got %q", got)
	}
	if k.Reveal() != "" || k.KeyID() != "" || k.Kind() != "" || !k.IsZero() {
		t.Fatal("zero key must be empty")
	}
}

func TestSignerDoesNotPrintItsKey(t *testing.T) {
	k := mustParseKey(t, testAppKey)
	s, err := NewSigner(k, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	sk := k.SigningKey()
	forbidden := []string{hex.EncodeToString(sk), fmt.Sprint(sk), strings.Trim(fmt.Sprint(sk), "[]"), fmt.Sprintf("%#v", sk)}
	values := map[string]any{
		"pointer":           s,
		"value":             *s,
		"held by value":     signerHolder{signer: *s},
		"held by pointer":   signerHolder{ptr: s},
		"pointer to holder": &signerHolder{signer: *s, ptr: s},
	}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
			t.Run(name+" "+verb, func(t *testing.T) {
				out := fmt.Sprintf(verb, v)
				assertNoSecret(t, out)
				for _, f := range forbidden {
					if strings.Contains(out, f) {
						t.Fatalf("output %q contains the signing key", out)
					}
				}
			})
		}
	}
}

// assertNoSecret fails when out contains the test secret in any common
// encoding.
func assertNoSecret(t *testing.T, out string) {
	t.Helper()
	for _, enc := range []string{
		testSecret,
		testSecret[:12],
		hex.EncodeToString([]byte(testSecret[:12])),
		strings.ToUpper(hex.EncodeToString([]byte(testSecret[:12]))),
		testAppKey,
	} {
		if strings.Contains(out, enc) {
			t.Fatalf("output contains the secret: %q", out)
		}
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
