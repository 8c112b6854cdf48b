// Command bench measures Latchkey's proxy against a bare reverse proxy in one
// run on one machine (`make bench`). It starts a local upstream, a bare
// httputil.ReverseProxy that adds a header, and the latchkey binary (serve,
// real database, every call signed by the Go SDK, replay-checked and durably
// audited) on SQLite and on PostgreSQL. It drives each with the same
// closed-loop load (requests/s, p50/p99, CPU per call of the proxy, of
// PostgreSQL and of this harness) and then at a fixed rate (latency without queueing), next to a
// floor line of two bare PostgreSQL commits. docs/performance.md explains
// each figure. Compare ratios from one run: absolute numbers move with the
// machine's other load.
package main

import (
	"bufio"
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
	rate        int
	rounds      int
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured load per target and round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each target and round")
	flag.IntVar(&o.concurrency, "c", 32, "concurrent connections")
	flag.StringVar(&o.pgURL, "pg", envOr("LATCHKEY_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL admin URL (a scratch database is created and dropped)")
	flag.BoolVar(&o.skipPG, "skip-pg", false, "skip the PostgreSQL target")
	flag.IntVar(&o.rounds, "rounds", 3, "closed-loop rounds per target, taking turns")
	flag.IntVar(&o.rate, "rate", 1000, "calls per second of the fixed-rate latency phase (0 skips it)")
	bareTarget := flag.String("serve-bare-proxy", "", "internal: serve the bare reverse proxy to this upstream and print its URL")
	flag.Parse()
	if *bareTarget != "" {
		return serveBareProxy(*bareTarget)
	}

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
	defer bare.stop()

	fmt.Printf("machine: %s/%s, %d CPUs, %s; load: %d concurrent, %s per target after %s warm-up\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), o.concurrency, o.duration, o.warmup)

	targets := []*target{
		{name: "direct", call: plainCall(upstream.URL + "/v1/ping")},
		{name: "bare reverse proxy", call: plainCall(bare.url + "/v1/ping"), cpu: cpuOf(bare.cmd.Process.Pid)},
	}
	dbs := []struct {
		name string
		dsn  func() (string, func(), error)
	}{
		{"latchkey proxy (SQLite)", func() (string, func(), error) { return "", func() {}, nil }},
	}
	if !o.skipPG {
		dbs = append(dbs, struct {
			name string
			dsn  func() (string, func(), error)
		}{"latchkey proxy (PostgreSQL)", func() (string, func(), error) { return scratchPostgres(o.pgURL) }})
	}
	for _, d := range dbs {
		dsn, drop, err := d.dsn()
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		defer drop()
		t, err := startLatchkey(bin, work, dsn, upstream.URL)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		defer t.stop()
		t.name = d.name
		if dsn != "" && isLoopback(o.pgURL) {
			t.dbCPU = cpuOfCommand("postgres")
		}
		targets = append(targets, t)
	}

	// Rounds take turns over the targets, so that a slow spell of the
	// machine weighs on every target rather than on one.
	for r := 0; r < o.rounds; r++ {
		for _, t := range targets {
			t.rounds = append(t.rounds, measure(t.name, o, t))
		}
	}
	var floor *result
	if o.rate > 0 {
		if !o.skipPG && o.rounds > 0 {
			settlePostgres(o.pgURL)
		}
		for _, t := range targets {
			t.fixed = measureRate(t.name, o, t.call)
		}
		if !o.skipPG {
			f, err := commitFloor(o)
			if err != nil {
				return fmt.Errorf("%s: %w", commitFloorName, err)
			}
			floor = &f
		}
	}
	report(targets, floor, o)
	for _, t := range targets {
		for _, r := range append(t.rounds, t.fixed) {
			if r.errors > 0 {
				return fmt.Errorf("%s: %d failed calls", t.name, r.errors)
			}
		}
	}
	if floor != nil && floor.errors > 0 {
		return fmt.Errorf("%s: %d failed calls", commitFloorName, floor.errors)
	}
	return nil
}

// settlePostgres makes PostgreSQL write out what the closed loop left in
// its buffers before latency is measured: otherwise its checkpoint of the
// PostgreSQL target's rows can land in the middle of another target's
// fixed-rate phase and take the disk and a core from it. CHECKPOINT needs
// a superuser (or pg_checkpoint); without one the phase runs unsettled.
func settlePostgres(adminURL string) {
	admin, err := sql.Open("pgx", adminURL)
	if err == nil {
		defer admin.Close()
		_, err = admin.Exec("CHECKPOINT")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: PostgreSQL CHECKPOINT before the fixed-rate phase failed, measuring anyway: %v\n", err)
	}
}

const commitFloorName = "2 PostgreSQL commits"

// commitFloor measures, at the fixed rate, two single-row INSERTs committed
// one after the other on a scratch database of the same PostgreSQL: the
// nonce and the audit row are two such commits in sequence on a call's
// path, so no design that waits for both to be durable answers faster than
// this. On a machine whose disk stalls WAL flushes now and then, this is
// where a PostgreSQL target's p99 comes from, and it is Latchkey's floor,
// not its doing.
func commitFloor(o options) (result, error) {
	dsn, drop, err := scratchPostgres(o.pgURL)
	if err != nil {
		return result{}, err
	}
	defer drop()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(o.concurrency)
	db.SetMaxIdleConns(o.concurrency)
	if _, err := db.Exec("CREATE TABLE commits (id bigserial PRIMARY KEY, v text NOT NULL)"); err != nil {
		return result{}, err
	}
	call := func(ctx context.Context) error {
		for range 2 {
			if _, err := db.ExecContext(ctx, "INSERT INTO commits (v) VALUES ($1)", "call"); err != nil {
				return err
			}
		}
		return nil
	}
	warm, cancel := context.WithTimeout(context.Background(), o.warmup)
	defer cancel()
	for warm.Err() == nil {
		if err := call(warm); err != nil && warm.Err() == nil {
			return result{}, err
		}
	}
	return measureRate(commitFloorName, o, call), nil
}

// target is one thing the load is sent to, and what was measured.
type target struct {
	name string
	call func(context.Context) error
	cpu  func() time.Duration // nil: not measured
	// dbCPU reads the CPU time of the database server's processes when they
	// run on this machine (nil: not measured).
	dbCPU  func() time.Duration
	stop   func()
	rounds []result
	fixed  result
}

func report(targets []*target, floor *result, o options) {
	if o.rounds > 0 {
		reportClosedLoop(targets, o)
	}
	if o.rate > 0 {
		reportFixedRate(targets, floor, o)
	}
}

// reportClosedLoop prints the closed-loop table: medians over the rounds.
func reportClosedLoop(targets []*target, o options) {
	fmt.Printf("closed loop, %d round(s): every connection sends its next call as soon as its last one is answered\n", o.rounds)
	fmt.Printf("%-28s %9s %9s %9s %8s %10s %8s %10s %10s\n", "target", "req/s", "p50", "p99", "vs bare", "proxy CPU", "vs bare", "+ db CPU", "+ load CPU")
	bare := targets[1]
	for _, t := range targets {
		var lat []time.Duration
		var rps, ratio, cpu, cpuRatio, dbCPU, loadCPU []float64
		for i, r := range t.rounds {
			lat = append(lat, r.latencies...)
			rps = append(rps, r.rps())
			ratio = append(ratio, r.rps()/bare.rounds[i].rps())
			if r.cpuPerCall > 0 {
				cpu = append(cpu, float64(r.cpuPerCall))
				cpuRatio = append(cpuRatio, float64(bare.rounds[i].cpuPerCall)/float64(r.cpuPerCall))
			}
			if r.dbCPUPerCall > 0 {
				dbCPU = append(dbCPU, float64(r.dbCPUPerCall))
			}
			if r.loadCPUPerCall > 0 {
				loadCPU = append(loadCPU, float64(r.loadCPUPerCall))
			}
		}
		slices.Sort(lat)
		all := result{latencies: lat}
		cpuRatioCol := ""
		if len(cpuRatio) > 0 {
			cpuRatioCol = fmt.Sprintf("%.2fx", median(cpuRatio))
		}
		fmt.Printf("%-28s %9.0f %9s %9s %7.2fx %10s %8s %10s %10s\n", t.name, median(rps), all.pct(50), all.pct(99),
			median(ratio), medianDuration(cpu), cpuRatioCol, medianDuration(dbCPU), medianDuration(loadCPU))
	}
	fmt.Println("req/s and the ratios are medians over the rounds (each ratio taken within one round); p50/p99 pool every round.")
	fmt.Println("proxy CPU: user+system CPU time of the proxy's own process per call; + db CPU: that of PostgreSQL's processes on this machine;")
	fmt.Println("+ load CPU: that of this program, which sends the load (through the Go SDK for Latchkey) and serves the upstream, on the same cores.")
	fmt.Println()
}

// reportFixedRate prints the fixed-rate table and the floor line.
func reportFixedRate(targets []*target, floor *result, o options) {
	bare := targets[1]
	fmt.Printf("fixed rate: %d calls/s over at most %d connections, %s per target (latency without queueing)\n", o.rate, o.concurrency, o.duration)
	fmt.Printf("%-28s %9s %9s %8s %14s\n", "target", "p50", "p99", "dropped", "p99 over bare")
	for i, t := range targets {
		over := ""
		if i > 1 {
			over = (t.fixed.pctDur(99) - bare.fixed.pctDur(99)).Round(10 * time.Microsecond).String()
		}
		fmt.Printf("%-28s %9s %9s %8d %14s\n", t.name, t.fixed.pct(50), t.fixed.pct(99), t.fixed.dropped, over)
	}
	if floor != nil {
		fmt.Printf("%-28s %9s %9s %8d %14s\n", commitFloorName, floor.pct(50), floor.pct(99), floor.dropped, "")
	}
	fmt.Println("dropped: calls not sent because every connection was still busy (the target fell behind the rate).")
	if floor != nil {
		fmt.Println(commitFloorName + ": two single-row INSERTs committed in sequence on the same PostgreSQL, with no proxy;")
		fmt.Println("a call through Latchkey waits for two such commits (its nonce, then its audit row), so this is its floor.")
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// medianDuration formats the median of durations (as float64
// nanoseconds) for a table cell; "" when nothing was measured.
func medianDuration(v []float64) string {
	if len(v) == 0 {
		return ""
	}
	return time.Duration(median(v)).Round(100 * time.Nanosecond).String()
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
// httputil.ReverseProxy adding one header. It runs in a process of its own
// (this program, re-executed) so that its CPU time can be read apart from
// the load generator's, like Latchkey's.
func startReverseProxy(target string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-bare-proxy", target)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("bare proxy: %w", err)
	}
	return &child{cmd: cmd, url: strings.TrimSpace(line)}, nil
}

type child struct {
	cmd *exec.Cmd
	url string
}

func (c *child) stop() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// serveBareProxy is the child's side of startReverseProxy: it prints its URL
// and serves until killed.
func serveBareProxy(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = newTransport()
	base := rp.Director
	rp.Director = func(r *http.Request) {
		base(r)
		r.Header.Set("Authorization", "Bearer bench-token")
	}
	s, err := serve(rp)
	if err != nil {
		return err
	}
	fmt.Println(s.URL)
	select {}
}

// cpuOf reads a process's user+system CPU time from /proc (Linux); on other
// systems the CPU columns stay empty.
func cpuOf(pid int) func() time.Duration {
	return func() time.Duration {
		_, cpu, _ := procStat(fmt.Sprintf("/proc/%d/stat", pid))
		return cpu
	}
}

// self reads this process's user+system CPU time.
func self() time.Duration { return cpuOf(os.Getpid())() }

// isLoopback reports whether a database URL points at this machine, whose
// processes the harness can see.
func isLoopback(dbURL string) bool {
	u, err := url.Parse(dbURL)
	if err != nil {
		return false
	}
	switch h := u.Hostname(); h {
	case "", "localhost":
		return true
	default:
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
}

// cpuOfCommand sums the CPU time of every process whose command name is
// comm: a database server's backends come and go with connections, so they
// are found anew at each reading. The CPU of those that exited is counted
// through their parent, which reaped them (the children's time of
// /proc/<pid>/stat), so the sum only grows.
func cpuOfCommand(comm string) func() time.Duration {
	return func() time.Duration {
		stats, _ := filepath.Glob("/proc/[0-9]*/stat")
		var sum time.Duration
		for _, p := range stats {
			if name, own, reaped := procStat(p); name == comm {
				sum += own + reaped
			}
		}
		return sum
	}
}

// procStat reads a /proc/<pid>/stat file: the command name, the process's
// own user+system CPU time, and that of its children it has waited for.
func procStat(path string) (name string, own, reaped time.Duration) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, 0
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, 0
	}
	// Fields after the parenthesised command name: utime, stime, cutime and
	// cstime are the 14th to 17th fields overall, in clock ticks (100 per
	// second on Linux).
	f := strings.Fields(s[end+1:])
	if len(f) < 15 {
		return "", 0, 0
	}
	var t [4]int64
	for i := range t {
		fmt.Sscan(f[11+i], &t[i])
	}
	tick := 10 * time.Millisecond
	return s[open+1 : end], time.Duration(t[0]+t[1]) * tick, time.Duration(t[2]+t[3]) * tick
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
		return drain(client.Do(req))
	}
}

// drain reads a call's answer to the end (so the connection is reused) and
// turns anything but 200 into an error.
func drain(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// startLatchkey runs `latchkey serve` on a fresh data dir, configures an app
// with a managed secret bound to the system principal through the admin CLI,
// and drives proxied calls through the Go SDK.
func startLatchkey(bin, work, dsn, upstream string) (_ *target, err error) {
	dataDir, err := os.MkdirTemp(work, "data-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
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
		return nil, err
	}
	appID, appKey := boot["app_id"].(string), boot["app_key"].(string)
	host := strings.TrimPrefix(upstream, "http://")
	sec, err := admin("admin", "secrets", "create", "--app", appID, "--name", "upstream", "--value", "bench-secret-value",
		"--inject", "header:Authorization:Bearer {secret}", "--allowed-host", host)
	if err != nil {
		return nil, err
	}
	gr, err := admin("admin", "secrets", "grant", "--secret", sec["managed_secret_id"].(string), "--principal", "system")
	if err != nil {
		return nil, err
	}
	grantID := gr["grant_id"].(string)

	// The request log goes to a file, as it would in production, rather
	// than through a pipe the load generator would have to drain.
	logPath := filepath.Join(dataDir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	defer func() {
		if err != nil {
			stop()
			if tail, rerr := os.ReadFile(logPath); rerr == nil {
				err = fmt.Errorf("%w\n%s", err, tail[max(0, len(tail)-4000):])
			}
		}
	}()
	base := "http://" + addr
	if err := waitHealthy(base); err != nil {
		return nil, err
	}
	app, err := sdk.NewApp(appKey, sdk.WithBaseURL(base), sdk.WithCaller("bench"),
		sdk.WithHTTPClient(&http.Client{Transport: newTransport()}))
	if err != nil {
		return nil, err
	}
	call := func(ctx context.Context) error {
		return drain(app.Proxy(ctx, sdk.Request{Method: http.MethodGet, URL: upstream + "/v1/ping", GrantID: grantID}))
	}
	if err := call(context.Background()); err != nil {
		return nil, fmt.Errorf("first proxied call: %w", err)
	}
	return &target{call: call, cpu: cpuOf(cmd.Process.Pid), stop: stop}, nil
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
	name       string
	latencies  []time.Duration
	errors     int64
	elapsed    time.Duration
	cpuPerCall time.Duration
	// dbCPUPerCall is the database server's CPU time per call, when measured.
	dbCPUPerCall time.Duration
	// loadCPUPerCall is this program's CPU time per call: the load
	// generator's and the upstream's.
	loadCPUPerCall time.Duration
	dropped        int64
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
func measure(name string, o options, t *target) result {
	call := t.call
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
	var cpu0, db0 time.Duration
	if t.cpu != nil {
		cpu0 = t.cpu()
	}
	if t.dbCPU != nil {
		db0 = t.dbCPU()
	}
	load0 := self()
	elapsed := phase(o.duration, true)
	r := result{name: name, latencies: all, errors: failed.Load(), elapsed: elapsed}
	if len(all) > 0 {
		r.loadCPUPerCall = (self() - load0) / time.Duration(len(all))
	}
	if t.cpu != nil && len(all) > 0 {
		r.cpuPerCall = (t.cpu() - cpu0) / time.Duration(len(all))
	}
	if t.dbCPU != nil && len(all) > 0 {
		r.dbCPUPerCall = (t.dbCPU() - db0) / time.Duration(len(all))
	}
	slices.Sort(all)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "%s: first error: %v\n", name, e)
	}
	return r
}

// measureRate sends o.rate calls per second, each on schedule whether or
// not earlier ones have answered (open loop), from at most o.concurrency
// connections, for o.duration. Below saturation this is the latency a call
// sees without waiting behind others. A call that cannot start because
// every connection is busy is dropped and counted: the target fell behind.
func measureRate(name string, o options, call func(context.Context) error) result {
	slots := make(chan struct{}, o.concurrency)
	var mu sync.Mutex
	var all []time.Duration
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	var dropped int64
	interval := time.Second / time.Duration(o.rate)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= o.duration {
			break
		}
		time.Sleep(time.Until(at))
		select {
		case slots <- struct{}{}:
		default:
			dropped++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			// Latency counts from the scheduled time, so a late start is
			// the target's delay too.
			err := call(context.Background())
			dt := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			all = append(all, dt)
		}()
	}
	wg.Wait()
	slices.Sort(all)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "%s (fixed rate): first error: %v\n", name, e)
	}
	return result{name: name, latencies: all, errors: failed.Load(), dropped: dropped, elapsed: time.Since(start)}
}
