// Command bench measures Latchkey's proxy against a bare reverse proxy in one
// run on one machine (`make bench`). It starts a local upstream, a bare
// httputil.ReverseProxy that adds a header, and the latchkey binary (serve,
// real database, every call signed by the Go SDK, replay-checked and durably
// audited), drives each with the same closed-loop load, and prints
// requests/s and p50/p99 latency. Compare ratios from one run: absolute
// numbers move with the machine's other load.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/latchkey/latchkey/sdk"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	pgURL       string
	skipPG      bool
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured load per target")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each target")
	flag.IntVar(&o.concurrency, "c", 32, "concurrent connections")
	flag.StringVar(&o.pgURL, "pg", envOr("LATCHKEY_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL admin URL (a scratch database is created and dropped)")
	flag.BoolVar(&o.skipPG, "skip-pg", false, "skip the PostgreSQL target")
	flag.Parse()

	work, err := os.MkdirTemp("", "latchkey-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "latchkey")
	build := exec.Command("go", "build", "-o", bin, "./cmd/latchkey")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build latchkey: %w", err)
	}

	upstream, err := startUpstream()
	if err != nil {
		return err
	}
	defer upstream.Close()
	bare, err := startReverseProxy(upstream.URL)
	if err != nil {
		return err
	}
	defer bare.Close()

	fmt.Printf("machine: %s/%s, %d CPUs, %s; load: %d concurrent, %s per target after %s warm-up\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), o.concurrency, o.duration, o.warmup)

	results := []result{}
	direct := measure("direct", o, plainCall(upstream.URL+"/v1/ping"))
	results = append(results, direct)
	results = append(results, measure("bare reverse proxy", o, plainCall(bare.URL+"/v1/ping")))

	targets := []struct {
		name string
		dsn  func() (string, func(), error)
	}{
		{"latchkey proxy (SQLite)", func() (string, func(), error) { return "", func() {}, nil }},
	}
	if !o.skipPG {
		targets = append(targets, struct {
			name string
			dsn  func() (string, func(), error)
		}{"latchkey proxy (PostgreSQL)", func() (string, func(), error) { return scratchPostgres(o.pgURL) }})
	}
	for _, tg := range targets {
		dsn, drop, err := tg.dsn()
		if err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		r, err := benchLatchkey(tg.name, bin, work, dsn, upstream.URL, o)
		drop()
		if err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		results = append(results, r)
	}

	fmt.Printf("%-30s %10s %10s %10s %8s %8s\n", "target", "req/s", "p50", "p99", "errors", "vs bare")
	bareRPS := results[1].rps()
	for _, r := range results {
		fmt.Printf("%-30s %10.0f %10s %10s %8d %7.2fx\n", r.name, r.rps(), r.pct(50), r.pct(99), r.errors, r.rps()/bareRPS)
	}
	fmt.Println()
	for _, r := range results[2:] {
		fmt.Printf("%s: p99 added over direct %s, over bare proxy %s\n", r.name,
			(r.pctDur(99) - direct.pctDur(99)).Round(10*time.Microsecond), (r.pctDur(99) - results[1].pctDur(99)).Round(10*time.Microsecond))
	}
	for _, r := range results {
		if r.errors > 0 {
			return fmt.Errorf("%s: %d failed calls", r.name, r.errors)
		}
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// startUpstream is the API every target ends at: a small JSON answer.
func startUpstream() (*server, error) {
	body := []byte(`{"ok":true,"items":[1,2,3]}`)
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
}

// startReverseProxy is the floor a credential-injecting proxy can reach:
// httputil.ReverseProxy adding one header.
func startReverseProxy(target string) (*server, error) {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = newTransport()
	base := rp.Director
	rp.Director = func(r *http.Request) {
		base(r)
		r.Header.Set("Authorization", "Bearer bench-token")
	}
	return serve(rp)
}

type server struct {
	URL string
	srv *http.Server
}

func (s *server) Close() { _ = s.srv.Close() }

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h}}
	go s.srv.Serve(ln)
	return s, nil
}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	t.MaxIdleConns = 256
	return t
}

func plainCall(u string) func(ctx context.Context) error {
	client := &http.Client{Transport: newTransport()}
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

// benchLatchkey runs `latchkey serve` on a fresh data dir, configures an app
// with a managed secret bound to the system principal through the admin CLI,
// and drives proxied calls through the Go SDK.
func benchLatchkey(name, bin, work, dsn, upstream string, o options) (result, error) {
	dataDir, err := os.MkdirTemp(work, "data-")
	if err != nil {
		return result{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	env := append(os.Environ(),
		"LATCHKEY_DATA_DIR="+dataDir, "LATCHKEY_ADDR="+addr, "LATCHKEY_PUBLIC_URL=http://"+addr,
		"LATCHKEY_ALLOW_PRIVATE_UPSTREAMS=true", "LATCHKEY_LOG_FORMAT=json")
	if dsn != "" {
		env = append(env, "LATCHKEY_DATABASE_URL="+dsn)
	}
	admin := func(args ...string) (map[string]any, error) {
		cmd := exec.Command(bin, append(args, "--json")...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("latchkey %s: %v: %s", strings.Join(args, " "), err, errb.String())
		}
		var m map[string]any
		return m, json.Unmarshal(out.Bytes(), &m)
	}
	boot, err := admin("admin", "bootstrap", "--org", "Bench", "--app", "bench", "--operator-email", "bench@latchkey.test")
	if err != nil {
		return result{}, err
	}
	appID, appKey := boot["app_id"].(string), boot["app_key"].(string)
	host := strings.TrimPrefix(upstream, "http://")
	sec, err := admin("admin", "secrets", "create", "--app", appID, "--name", "upstream", "--value", "bench-secret-value",
		"--inject", "header:Authorization:Bearer {secret}", "--allowed-host", host)
	if err != nil {
		return result{}, err
	}
	gr, err := admin("admin", "secrets", "grant", "--secret", sec["managed_secret_id"].(string), "--principal", "system")
	if err != nil {
		return result{}, err
	}
	grantID := gr["grant_id"].(string)

	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	if err := waitHealthy(base); err != nil {
		return result{}, fmt.Errorf("%w\n%s", err, logs.String())
	}
	app, err := sdk.NewApp(appKey, sdk.WithBaseURL(base), sdk.WithCaller("bench"),
		sdk.WithHTTPClient(&http.Client{Transport: newTransport()}))
	if err != nil {
		return result{}, err
	}
	call := func(ctx context.Context) error {
		resp, err := app.Proxy(ctx, sdk.Request{Method: http.MethodGet, URL: upstream + "/v1/ping", GrantID: grantID})
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := call(context.Background()); err != nil {
		return result{}, fmt.Errorf("first proxied call: %w\n%s", err, logs.String())
	}
	return measure(name, o, call), nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHealthy(base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("latchkey did not become ready")
}

// scratchPostgres creates a database for one run and returns its URL and a
// function that drops it.
func scratchPostgres(adminURL string) (string, func(), error) {
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("lk_bench_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database (is PostgreSQL running? -skip-pg skips it): %w", err)
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	return u.String(), func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	}, nil
}

type result struct {
	name      string
	latencies []time.Duration
	errors    int64
	elapsed   time.Duration
}

func (r result) rps() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

func (r result) pctDur(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p / 100)
	return r.latencies[i]
}

func (r result) pct(p float64) string { return r.pctDur(p).Round(time.Microsecond).String() }

// measure runs call from o.concurrency goroutines in a closed loop: warm-up
// first (connections, caches), then o.duration measured.
func measure(name string, o options, call func(context.Context) error) result {
	var mu sync.Mutex
	var all []time.Duration
	var failed atomic.Int64
	var firstErr atomic.Value
	phase := func(d time.Duration, record bool) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < o.concurrency; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]time.Duration, 0, 4096)
				for ctx.Err() == nil {
					t0 := time.Now()
					err := call(context.Background())
					dt := time.Since(t0)
					if err != nil {
						if record {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
						}
						continue
					}
					if record {
						local = append(local, dt)
					}
				}
				mu.Lock()
				all = append(all, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	phase(o.warmup, false)
	elapsed := phase(o.duration, true)
	slices.Sort(all)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "%s: first error: %v\n", name, e)
	}
	return result{name: name, latencies: all, errors: failed.Load(), elapsed: elapsed}
}
