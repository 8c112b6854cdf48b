package egress

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/latchkey/latchkey/services/errs"
)

// Placeholder stands for the credential in an injection template.
const Placeholder = "{secret}"

// InjectionKind is where a credential goes on the outbound request.
type InjectionKind string

// Injection kinds.
const (
	// InjectHeader sets header Name to Value with the placeholder replaced.
	InjectHeader InjectionKind = "header"
	// InjectQuery appends the query parameter Name=Value.
	InjectQuery InjectionKind = "query"
	// InjectBasic sets Authorization: Basic from Username and Password.
	InjectBasic InjectionKind = "basic"
)

// Injection is the rule that puts a credential on a request: which header,
// query parameter or Basic field, and the text around it. It holds only the
// template, never the secret, so it may be stored, logged and shown.
//
// Exactly one of the template fields contains Placeholder exactly once.
type Injection struct {
	Kind InjectionKind
	// Name is the header or query parameter name (header, query).
	Name string
	// Value is the template of the header or parameter value (header, query).
	Value string
	// Username and Password are the templates of the Basic credentials (basic).
	Username string
	Password string
}

// Secret is a credential value on its way to the upstream. It redacts itself
// in fmt and slog so that a Call can be logged whole without leaking it.
type Secret string

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return `"[redacted]"` }

// LogValue keeps the secret out of structured logs.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText keeps the secret out of JSON and other text encodings too.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Bearer is the injection OAuth access tokens use:
// Authorization: Bearer {secret}.
func Bearer() Injection {
	return Injection{Kind: InjectHeader, Name: "Authorization", Value: "Bearer " + Placeholder}
}

// ParseInjection parses the managed-secret template syntax of DESIGN.md §7:
//
//	header:NAME:VALUE       header:Authorization:Bearer {secret}, header:X-Api-Key:{secret}
//	query:NAME:VALUE        query:api_key:{secret}
//	basic:USER:PASSWORD     basic:USER:{secret}, basic:{secret}: (key as user, empty password)
//
// VALUE and PASSWORD run to the end of the template and may contain colons;
// NAME and USER may not. The error never quotes the template: an operator who
// pasted the real secret instead of {secret} must not see it echoed into a
// terminal log or a page.
func ParseInjection(template string) (Injection, error) {
	kind, rest, ok := strings.Cut(template, ":")
	if !ok {
		return Injection{}, errs.Invalid("inject", "expected header:NAME:VALUE, query:NAME:VALUE or basic:USER:PASSWORD")
	}
	first, second, ok := strings.Cut(rest, ":")
	if !ok {
		return Injection{}, errs.Invalid("inject", "expected %s:…:… with two colons", safeKind(kind))
	}
	var inj Injection
	switch InjectionKind(kind) {
	case InjectHeader, InjectQuery:
		inj = Injection{Kind: InjectionKind(kind), Name: first, Value: second}
	case InjectBasic:
		inj = Injection{Kind: InjectBasic, Username: first, Password: second}
	default:
		return Injection{}, errs.Invalid("inject", "the kind must be header, query or basic")
	}
	if err := inj.Validate(); err != nil {
		return Injection{}, err
	}
	return inj, nil
}

// safeKind echoes the kind only when it is one of the known words, so that
// even the part before the first colon is never reflected verbatim.
func safeKind(kind string) string {
	switch InjectionKind(kind) {
	case InjectHeader, InjectQuery, InjectBasic:
		return kind
	}
	return "kind"
}

// String renders the template syntax ParseInjection reads.
func (i Injection) String() string {
	switch i.Kind {
	case InjectHeader, InjectQuery:
		return string(i.Kind) + ":" + i.Name + ":" + i.Value
	case InjectBasic:
		return string(i.Kind) + ":" + i.Username + ":" + i.Password
	}
	return ""
}

// Validate checks the rule. Like ParseInjection it never quotes template
// text, only header names, which are configuration.
func (i Injection) Validate() error {
	var v errs.Validation
	var templates []string
	switch i.Kind {
	case InjectHeader:
		switch {
		case !httpguts.ValidHeaderFieldName(i.Name):
			v.Add("inject", "the header name must be an HTTP token")
		case reservedForInjection(i.Name):
			v.Add("inject", "Latchkey cannot inject into the %s header", http.CanonicalHeaderKey(i.Name))
		}
		templates = []string{i.Value}
	case InjectQuery:
		if i.Name == "" || hasControl(i.Name) {
			v.Add("inject", "the query parameter name must be non-empty printable text")
		}
		templates = []string{i.Value}
	case InjectBasic:
		if strings.Contains(i.Username, ":") {
			v.Add("inject", "a Basic user name cannot contain ':'")
		}
		templates = []string{i.Username, i.Password}
	default:
		return errs.Invalid("inject", "the kind must be header, query or basic")
	}
	count := 0
	for _, t := range templates {
		if hasControl(t) {
			// CR/LF would split a header; the other controls have no use.
			v.Add("inject", "the template must not contain control characters (CR, LF, NUL, …)")
		}
		count += strings.Count(t, Placeholder)
	}
	if count != 1 {
		v.Add("inject", "the template must contain %s exactly once", Placeholder)
	}
	return v.Err()
}

// reservedForInjection names headers whose meaning is the connection or
// Latchkey itself; a credential there would break framing or confuse the
// relay, never authenticate.
func reservedForInjection(name string) bool {
	c := http.CanonicalHeaderKey(name)
	switch c {
	case "Host", "Content-Length":
		return true
	}
	return isHopByHop(c) || hasPrefixFold(c, "Latchkey-")
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// errBadSecret means the stored credential cannot be put where the rule
// says. It carries no part of the secret.
var errBadSecret = errors.New("egress: the credential contains characters that cannot be sent where its injection rule puts it")

// apply puts secret on req. Callers have already refused caller headers and
// query parameters that collide with the rule, so Set never overrides
// something the caller chose, and nothing can override what Set wrote.
func (i Injection) apply(req *http.Request, secret string) error {
	fill := func(t string) string { return strings.Replace(t, Placeholder, secret, 1) }
	switch i.Kind {
	case InjectHeader:
		v := fill(i.Value)
		if !httpguts.ValidHeaderFieldValue(v) {
			return errBadSecret
		}
		req.Header.Set(i.Name, v)
	case InjectQuery:
		param := url.QueryEscape(i.Name) + "=" + url.QueryEscape(fill(i.Value))
		if req.URL.RawQuery == "" {
			req.URL.RawQuery = param
		} else {
			req.URL.RawQuery += "&" + param
		}
	case InjectBasic:
		user, pass := fill(i.Username), fill(i.Password)
		if strings.Contains(user, ":") || hasControl(user) || hasControl(pass) {
			return errBadSecret
		}
		req.SetBasicAuth(user, pass)
	default:
		return fmt.Errorf("egress: unknown injection kind")
	}
	return nil
}

// headerName is the header the rule writes, canonicalised, or "".
func (i Injection) headerName() string {
	switch i.Kind {
	case InjectHeader:
		return http.CanonicalHeaderKey(i.Name)
	case InjectBasic:
		return "Authorization"
	}
	return ""
}
