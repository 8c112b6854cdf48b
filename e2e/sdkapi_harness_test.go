package e2e

// Harness of TestSDKAPI (sdkapi_test.go): a real Latchkey core and HTTP
// server per mode with its logs captured, a recording upstream, an HTTP
// transport that records every SDK exchange (for the audit cross-check),
// transports that tamper with or replay signed requests, a raw signer for
// bodies the SDK refuses to build, and the secret scanner.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/password"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/testserver"
)

// sdkapiLog collects log output from the server (and the SDK) safely
// across goroutines.
type sdkapiLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *sdkapiLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *sdkapiLog) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf.Bytes()...)
}

// sdkapiUpstreamReq is one request the upstream received.
type sdkapiUpstreamReq struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// Dump is the whole request as text, for "appears exactly once" checks.
func (r sdkapiUpstreamReq) Dump() string {
	var b strings.Builder
	b.WriteString(r.Method + " " + r.Path + "?" + r.RawQuery + "\n")
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range r.Header[k] {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	b.Write(r.Body)
	return b.String()
}

// sdkapiUpstream is the local upstream: it records every request and every
// new connection, and answers /status/<code> with that status. It also
// tries to forge Latchkey's own headers and to set a cookie, which the
// proxy must not relay.
type sdkapiUpstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []sdkapiUpstreamReq
	conns atomic.Int64
}

func newSDKAPIUpstream(t *testing.T) *sdkapiUpstream {
	t.Helper()
	u := &sdkapiUpstream{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	u.srv = srv
	return u
}

func (u *sdkapiUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	u.mu.Lock()
	u.reqs = append(u.reqs, sdkapiUpstreamReq{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body})
	u.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Upstream", "yes")
	h.Set("Latchkey-Grant-Id", "forged-by-upstream")
	h.Set("Latchkey-Proxied", "forged")
	h.Set("Latchkey-Key-Deprecated", "true")
	h.Set("Set-Cookie", "upstream_session=abc")
	status := http.StatusOK
	switch r.URL.Path {
	case "/redirect":
		h.Set("Location", "/v1/after-redirect")
		status = http.StatusFound
	case "/slow":
		// Holds the answer until the caller (Latchkey's egress) gives up.
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	}
	if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
		if n, err := strconv.Atoi(code); err == nil {
			status = n
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "method": r.Method, "status": status})
}

// HostPort is 127.0.0.1:<port>.
func (u *sdkapiUpstream) HostPort() string { return u.srv.Listener.Addr().String() }

// Port is the upstream's port.
func (u *sdkapiUpstream) Port() string {
	_, p, _ := net.SplitHostPort(u.HostPort())
	return p
}

// URL is an http URL on the upstream (allowed in development mode only).
func (u *sdkapiUpstream) URL(pathAndQuery string) string {
	return "http://" + u.HostPort() + pathAndQuery
}

func (u *sdkapiUpstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *sdkapiUpstream) Conns() int64 { return u.conns.Load() }

func (u *sdkapiUpstream) Requests() []sdkapiUpstreamReq {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]sdkapiUpstreamReq(nil), u.reqs...)
}

// Last is the most recent request; the test fails when there is none.
func (u *sdkapiUpstream) Last(t *testing.T) sdkapiUpstreamReq {
	t.Helper()
	reqs := u.Requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return reqs[len(reqs)-1]
}

// sdkapiExchange is one HTTP exchange between an SDK client and Latchkey,
// as seen on the wire.
type sdkapiExchange struct {
	Server     string
	Method     string
	Path       string // escaped, without the query
	KeyID      string // Latchkey-Key-Id as sent
	Agent      string // Latchkey-Agent as sent
	Caller     string // Latchkey-Caller as sent
	UserToken  bool
	Status     int
	Code       string // Latchkey error code, "" on success or a proxied answer
	RequestID  string
	Proxied    bool
	GrantID    string // Latchkey-Grant-Id
	Deprecated bool   // Latchkey-Key-Deprecated: true
	ErrorBody  []byte // Latchkey's own error bodies only
}

// sdkapiRecorder is the innermost transport of every SDK client: it
// records what was actually sent (after any tampering) and what came back.
type sdkapiRecorder struct {
	name string
	base http.RoundTripper
	mu   sync.Mutex
	ex   []sdkapiExchange
}

func (r *sdkapiRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := sdkapiExchange{
		Server:    r.name,
		Method:    req.Method,
		Path:      req.URL.EscapedPath(),
		KeyID:     req.Header.Get(wire.HeaderKeyID),
		Agent:     req.Header.Get(wire.HeaderAgent),
		Caller:    req.Header.Get(wire.HeaderCaller),
		UserToken: req.Header.Get(wire.HeaderUserToken) != "",
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	ex.Status = resp.StatusCode
	ex.RequestID = resp.Header.Get(wire.HeaderRequestID)
	ex.Proxied = resp.Header.Get(wire.HeaderProxied) == "true"
	ex.GrantID = resp.Header.Get(wire.HeaderGrantID)
	ex.Deprecated = resp.Header.Get(wire.HeaderKeyDeprecated) == "true"
	if !ex.Proxied && resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		ex.ErrorBody = body
		var eb wire.ErrorBody
		if json.Unmarshal(body, &eb) == nil {
			ex.Code = string(eb.Error.Code)
		}
	}
	r.mu.Lock()
	r.ex = append(r.ex, ex)
	r.mu.Unlock()
	return resp, nil
}

func (r *sdkapiRecorder) Exchanges() []sdkapiExchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdkapiExchange(nil), r.ex...)
}

// Last is the most recent exchange.
func (r *sdkapiRecorder) Last(t *testing.T) sdkapiExchange {
	t.Helper()
	ex := r.Exchanges()
	if len(ex) == 0 {
		t.Fatal("no SDK exchange recorded")
	}
	return ex[len(ex)-1]
}

// sdkapiTamper changes a signed request before it leaves, as an attacker on
// the path would.
type sdkapiTamper struct {
	next   http.RoundTripper
	mutate func(*http.Request)
}

func (tp sdkapiTamper) RoundTrip(req *http.Request) (*http.Response, error) {
	c := req.Clone(req.Context())
	tp.mutate(c)
	return tp.next.RoundTrip(c)
}

// sdkapiReplayer sends the first request it sees as is and, from then on,
// that same signed request again instead of whatever it is given.
type sdkapiReplayer struct {
	next  http.RoundTripper
	mu    sync.Mutex
	first *http.Request
	body  []byte
	// replayTo, when set, is the base URL of another replica the replay is
	// sent to instead.
	replayTo string
}

func (rp *sdkapiReplayer) RoundTrip(req *http.Request) (*http.Response, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.first == nil {
		var body []byte
		if req.Body != nil {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			_ = req.Body.Close()
			body = b
		}
		rp.first, rp.body = req.Clone(context.Background()), body
		send := req.Clone(req.Context())
		send.Body = io.NopCloser(bytes.NewReader(body))
		send.ContentLength = int64(len(body))
		return rp.next.RoundTrip(send)
	}
	again := rp.first.Clone(req.Context())
	if rp.replayTo != "" {
		u, err := url.Parse(rp.replayTo)
		if err != nil {
			return nil, err
		}
		again.URL.Host, again.Host = u.Host, u.Host
	}
	again.Body = io.NopCloser(bytes.NewReader(rp.body))
	again.ContentLength = int64(len(rp.body))
	return rp.next.RoundTrip(again)
}

// sdkapiServer is one running Latchkey (core and HTTP server) with its own
// database, log capture and exchange recorder.
type sdkapiServer struct {
	Name string
	Cfg  config.Config
	Core *server.Core
	URL  string
	Rec  *sdkapiRecorder
	sdkL *slog.Logger
}

// startSDKAPIServer builds the core the way testserver.NewCore does, but
// with a logger writing to logs (testserver has no logger hook), and runs
// the real HTTP server on loopback.
func startSDKAPIServer(t *testing.T, dialect, name string, allowPrivate bool, logs *sdkapiLog) *sdkapiServer {
	t.Helper()
	env := map[string]string{
		config.EnvDataDir:               t.TempDir(),
		config.EnvLogFormat:             config.LogFormatJSON,
		config.EnvAllowPrivateUpstreams: strconv.FormatBool(allowPrivate),
	}
	if dialect == database.Postgres {
		env[config.EnvDatabaseURL] = testutil.NewDatabaseURL(t, dialect)
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, false)
	if err != nil {
		t.Fatal(err)
	}
	core, url := openSDKAPICore(t, cfg, name, logs)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	return &sdkapiServer{
		Name: name, Cfg: cfg, Core: core, URL: url,
		Rec:  &sdkapiRecorder{name: name, base: base},
		sdkL: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("sdk", name),
	}
}

// startSDKAPIReplica runs a second Latchkey process's worth of core and
// server over the same database and data dir as of: another replica. It
// shares of's recorder, since its audit rows land in the same database.
func startSDKAPIReplica(t *testing.T, of *sdkapiServer, logs *sdkapiLog) *sdkapiServer {
	t.Helper()
	core, url := openSDKAPICore(t, of.Cfg, of.Name+"-replica", logs)
	return &sdkapiServer{Name: of.Name + "-replica", Cfg: of.Cfg, Core: core, URL: url, Rec: of.Rec, sdkL: of.sdkL}
}

func openSDKAPICore(t *testing.T, cfg config.Config, name string, logs *sdkapiLog) (*server.Core, string) {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("server", name)
	core, err := server.Open(context.Background(), cfg, logger, server.CoreOptions{
		PasswordParams: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
	})
	if err != nil {
		t.Fatalf("open core: %v", err)
	}
	t.Cleanup(func() { _ = core.Close() })
	return core, testserver.Start(t, core).URL
}

// Opts are the options every SDK client of this server gets: its URL, the
// recording transport (wrapped by wrap, when given), no retries (a retry
// would blur "this request was refused"), and the captured logger.
func (s *sdkapiServer) Opts(wrap func(http.RoundTripper) http.RoundTripper, extra ...sdk.Option) []sdk.Option {
	var rt http.RoundTripper = s.Rec
	if wrap != nil {
		rt = wrap(rt)
	}
	return append([]sdk.Option{
		sdk.WithBaseURL(s.URL),
		sdk.WithHTTPClient(&http.Client{Transport: rt}),
		sdk.WithRetry(sdk.RetryPolicy{MaxAttempts: 1}),
		sdk.WithLogger(s.sdkL),
	}, extra...)
}

// sdkapiRaw is the answer to a raw signed request.
type sdkapiRaw struct {
	Status int
	Header http.Header
	Body   []byte
	Err    *sdk.Error // set for 4xx/5xx answers that are Latchkey's own
}

// Raw signs and sends a request the SDK would refuse to build (invalid
// JSON, unknown fields, an agent key with a user token, …) with the wire
// package's signer, through the recording transport.
func (s *sdkapiServer) Raw(t *testing.T, apiKey, method, path string, body []byte, contentType string, hdr map[string]string) sdkapiRaw {
	t.Helper()
	key, err := wire.ParseKey(apiKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := wire.NewSigner(key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if err := signer.Sign(req); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: s.Rec}).Do(req)
	if err != nil {
		t.Fatalf("raw %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	out := sdkapiRaw{Status: resp.StatusCode, Header: resp.Header, Body: rb}
	if resp.StatusCode >= 400 && resp.Header.Get(wire.HeaderProxied) == "" {
		e := &sdk.Error{Status: resp.StatusCode, RequestID: resp.Header.Get(wire.HeaderRequestID)}
		var eb wire.ErrorBody
		if json.Unmarshal(rb, &eb) == nil {
			e.Code, e.Message, e.Details = eb.Error.Code, eb.Error.Message, eb.Error.Details
		}
		out.Err = e
	}
	return out
}

// AuditRows returns every audit row of this server's database.
func (s *sdkapiServer) AuditRows(t *testing.T) []models.AuditEvent {
	t.Helper()
	var rows []models.AuditEvent
	if err := s.Core.DB.Gorm.Order("occurred_at, id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// AuditFor returns the audit rows written for one request id.
func (s *sdkapiServer) AuditFor(t *testing.T, requestID string) []models.AuditEvent {
	t.Helper()
	var rows []models.AuditEvent
	if err := s.Core.DB.Gorm.Where("request_id = ?", requestID).Order("occurred_at, id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// sdkCallRows keeps the rows of SDK calls (sdk.*), leaving out the rows of
// changes a call made (grant.create, key.mint, …).
func sdkCallRows(rows []models.AuditEvent) []models.AuditEvent {
	var out []models.AuditEvent
	for _, r := range rows {
		if strings.HasPrefix(r.Action, "sdk.") {
			out = append(out, r)
		}
	}
	return out
}

// DumpDatabase returns every cell of every table as text, found generically
// through the migrator so a table added later is scanned too.
func (s *sdkapiServer) DumpDatabase(t *testing.T) map[string][]string {
	t.Helper()
	db := s.Core.DB.Gorm
	tables, err := db.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 20 {
		t.Fatalf("only %d tables found: %v", len(tables), tables)
	}
	out := map[string][]string{}
	for _, table := range tables {
		var rows []map[string]any
		if err := db.Table(table).Find(&rows).Error; err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		for _, row := range rows {
			for col, v := range row {
				var cell string
				switch v := v.(type) {
				case nil:
					continue
				case []byte:
					cell = string(v)
				case string:
					cell = v
				default:
					cell = fmt.Sprint(v)
				}
				out[table+"."+col] = append(out[table+"."+col], cell)
			}
		}
	}
	return out
}

// SQLiteFiles returns the raw bytes of the SQLite database and its WAL.
func (s *sdkapiServer) SQLiteFiles(t *testing.T) map[string][]byte {
	t.Helper()
	if s.Core.DB.Dialect != database.SQLite {
		return nil
	}
	path := s.Core.Config.SQLitePath()
	out := map[string][]byte{}
	for _, f := range []string{path, path + "-wal"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		out[f] = raw
	}
	return out
}

// sdkapiSecrets is every secret value the run handles, labelled. None of
// them may appear in the database, the logs or an error.
type sdkapiSecrets struct {
	mu      sync.Mutex
	needles map[string]string // needle → label
}

func (s *sdkapiSecrets) Add(label, v string) {
	if len(v) < 8 {
		return // too short to be meaningful; would match by accident
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.needles == nil {
		s.needles = map[string]string{}
	}
	s.needles[v] = label
}

// AddKey adds an API key, its signing key as hex and as raw bytes.
func (s *sdkapiSecrets) AddKey(label string, k wire.APIKey) {
	s.Add(label+" (api key)", k.Reveal())
	sk := k.SigningKey()
	s.Add(label+" (signing key hex)", hex.EncodeToString(sk))
	s.Add(label+" (signing key bytes)", string(sk))
}

// AddJWT adds a token, its payload and its signature segment.
func (s *sdkapiSecrets) AddJWT(label, tok string) {
	s.Add(label+" (jwt)", tok)
	parts := strings.Split(tok, ".")
	if len(parts) == 3 {
		if len(parts[1]) >= 16 {
			s.Add(label+" (jwt payload)", parts[1])
		}
		if len(parts[2]) >= 16 {
			s.Add(label+" (jwt signature)", parts[2])
		}
	}
}

// Find returns the labels of the secrets hay contains.
func (s *sdkapiSecrets) Find(hay []byte) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for n, label := range s.needles {
		if bytes.Contains(hay, []byte(n)) {
			found = append(found, label)
		}
	}
	sort.Strings(found)
	return found
}

// Count reports how many secrets are tracked.
func (s *sdkapiSecrets) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.needles)
}

// sdkapiRouteAction is the audit action of the SDK endpoint a request
// addresses (handlers/routes.go), or sdk.not_found.
func sdkapiRouteAction(method, path string) string {
	rest, ok := strings.CutPrefix(path, "/sdk/v1/")
	if !ok {
		return ""
	}
	seg := strings.Split(rest, "/")
	switch {
	case method == http.MethodGet && rest == "me":
		return "sdk.me"
	case method == http.MethodPost && rest == "proxy":
		return "sdk.proxy"
	case method == http.MethodPost && rest == "token":
		return "sdk.token"
	case method == http.MethodGet && rest == "grants":
		return "sdk.grants.list"
	case len(seg) == 2 && seg[0] == "grants" && method == http.MethodGet:
		return "sdk.grants.get"
	case len(seg) == 2 && seg[0] == "grants" && method == http.MethodDelete:
		return "sdk.grants.revoke"
	case len(seg) == 4 && seg[0] == "grants" && seg[2] == "delegations" && method == http.MethodDelete:
		return "sdk.delegations.revoke"
	case len(seg) == 3 && seg[0] == "managed-secrets" && seg[2] == "grants" && method == http.MethodPost:
		return "sdk.managed_secrets.grant"
	case rest == "agents" && method == http.MethodPost:
		return "sdk.agents.create"
	case rest == "agents" && method == http.MethodGet:
		return "sdk.agents.list"
	case len(seg) == 2 && seg[0] == "agents" && method == http.MethodGet:
		return "sdk.agents.get"
	case len(seg) == 3 && seg[0] == "agents" && seg[2] == "keys" && method == http.MethodPost:
		return "sdk.agents.keys.mint"
	case len(seg) == 5 && seg[0] == "agents" && seg[2] == "keys" && seg[4] == "deprecate" && method == http.MethodPost:
		return "sdk.agents.keys.deprecate"
	case len(seg) == 4 && seg[0] == "agents" && seg[2] == "keys" && method == http.MethodDelete:
		return "sdk.agents.keys.revoke"
	}
	return "sdk.not_found"
}
