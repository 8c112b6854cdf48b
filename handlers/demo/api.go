package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

const (
	apiRealm         = "latchkey-demo-calendar"
	maxEventBody     = 16 << 10
	maxTitleLen      = 200
	maxEventsPerUser = 200
)

// Event is one calendar event of the demo API.
type Event struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Start     time.Time `json:"start"`
	CreatedAt time.Time `json:"created_at"`
}

// calendar is the demo API's data: each user's events, in memory.
type calendar struct {
	mu     sync.Mutex
	events map[string][]Event // username → events
	next   int
}

// newCalendar seeds every user with a couple of events around now, so the
// first proxied GET of the demo returns something to look at.
func newCalendar(users []User, now time.Time) *calendar {
	day := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	seed := map[string][]string{
		"ada":   {"Analytical Engine design review", "Notes on the Menabrea translation"},
		"grace": {"Compiler working group", "Nanosecond wire talk"},
		"linus": {"Merge window opens", "Release candidate review"},
	}
	c := &calendar{events: map[string][]Event{}}
	for _, u := range users {
		for i, title := range seed[u.Username] {
			c.next++
			c.events[u.Username] = append(c.events[u.Username], Event{
				ID:        fmt.Sprintf("evt_%d", c.next),
				Title:     title,
				Start:     day.Add(time.Duration(24*i+10) * time.Hour),
				CreatedAt: now.UTC(),
			})
		}
	}
	return c
}

func (c *calendar) list(user string) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.events[user])
	slices.SortStableFunc(out, func(a, b Event) int { return a.Start.Compare(b.Start) })
	if out == nil {
		out = []Event{}
	}
	return out
}

var errCalendarFull = errors.New("calendar full")

func (c *calendar) add(user, title string, start, now time.Time) (Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events[user]) >= maxEventsPerUser {
		return Event{}, errCalendarFull
	}
	c.next++
	e := Event{ID: fmt.Sprintf("evt_%d", c.next), Title: title, Start: start.UTC(), CreatedAt: now.UTC()}
	c.events[user] = append(c.events[user], e)
	return e, nil
}

// apiError is the demo API's error body.
func apiError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// bearerToken reads an RFC 6750 bearer token from the Authorization header
// (the only place the demo accepts it). It answers the request itself when
// there is none.
func bearerToken(w http.ResponseWriter, r *http.Request, realm string) (string, bool) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		// §3.1: no error code when the request carried no credentials.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, realm))
		apiError(w, http.StatusUnauthorized, "unauthorized", "An access token is required.")
		return "", false
	}
	scheme, tok, ok := strings.Cut(h[0], " ")
	if len(h) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="invalid_request"`, realm))
		apiError(w, http.StatusBadRequest, "invalid_request", "Send exactly one Authorization: Bearer header.")
		return "", false
	}
	return tok, true
}

func invalidToken(w http.ResponseWriter, realm string, reason error) {
	w.Header().Set("WWW-Authenticate",
		fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description=%q`, realm, reason.Error()))
	apiError(w, http.StatusUnauthorized, "invalid_token", reason.Error())
}

// authorizeAPI checks the bearer token and that it carries one of anyOf.
func (s *Server) authorizeAPI(w http.ResponseWriter, r *http.Request, anyOf ...string) (grantInfo, bool) {
	noStore(w)
	tok, ok := bearerToken(w, r, apiRealm)
	if !ok {
		return grantInfo{}, false
	}
	g, err := s.oauth.validateAccess(tok)
	if err != nil {
		invalidToken(w, apiRealm, err)
		return grantInfo{}, false
	}
	for _, sc := range anyOf {
		if slices.Contains(g.scopes, sc) {
			return g, true
		}
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`,
		apiRealm, strings.Join(anyOf, " ")))
	apiError(w, http.StatusForbidden, "insufficient_scope", "The access token lacks the scope "+strings.Join(anyOf, " or ")+".")
	return grantInfo{}, false
}

// oauthUserinfo tells the client whose account a token belongs to; its
// "id" is the account identifier Latchkey records on the grant.
func (s *Server) oauthUserinfo(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authorizeAPI(w, r, ScopeCalendarRead, ScopeCalendarWrite)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": g.user.AccountID(), "email": g.user.Email, "name": g.user.Name})
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	// Write implies read, as with most real calendar scopes.
	g, ok := s.authorizeAPI(w, r, ScopeCalendarRead, ScopeCalendarWrite)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": s.calendar.list(g.user.Username)})
}

func (s *Server) createEvent(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authorizeAPI(w, r, ScopeCalendarWrite)
	if !ok {
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		apiError(w, http.StatusUnsupportedMediaType, "invalid_request", "Send the event as application/json.")
		return
	}
	var in struct {
		Title *string `json:"title"`
		Start *string `json:"start"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxEventBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", "The body must be one JSON object with title and start.")
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		apiError(w, http.StatusBadRequest, "invalid_request", "The body must be one JSON object with title and start.")
		return
	}
	if in.Title == nil || in.Start == nil {
		apiError(w, http.StatusBadRequest, "invalid_request", "title and start are required.")
		return
	}
	title := strings.TrimSpace(*in.Title)
	if title == "" || len([]rune(title)) > maxTitleLen || strings.ContainsFunc(title, unicode.IsControl) {
		apiError(w, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("title must be 1 to %d characters without control characters.", maxTitleLen))
		return
	}
	start, err := time.Parse(time.RFC3339, *in.Start)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", "start must be an RFC 3339 time, e.g. 2026-05-04T10:00:00Z.")
		return
	}
	e, err := s.calendar.add(g.user.Username, title, start, s.now())
	if err != nil {
		apiError(w, http.StatusConflict, "calendar_full", fmt.Sprintf("A demo calendar holds at most %d events.", maxEventsPerUser))
		return
	}
	writeJSON(w, http.StatusCreated, e)
}
