package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/handlers/requestid"
)

func TestNewIDsAreDistinctAndOpaque(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := requestid.New()
		if len(id) != 26 {
			t.Fatalf("id %q has length %d, want 26", id, len(id))
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}

func TestFromContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{name: "context without an id gives empty string", ctx: context.Background(), want: ""},
		{name: "context with an id gives it back", ctx: requestid.With(context.Background(), "abc"), want: "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := requestid.From(tt.ctx); got != tt.want {
				t.Fatalf("From = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogHandlerAddsRequestID(t *testing.T) {
	tests := []struct {
		name    string
		ctx     context.Context
		attrs   []any
		wantID  string
		wantIDs int
	}{
		{name: "record logged with a request context gains the id", ctx: requestid.With(context.Background(), "r-1"), wantID: "r-1", wantIDs: 1},
		{name: "record logged outside a request is left alone", ctx: context.Background(), wantID: "", wantIDs: 0},
		{name: "record that already names the id is not duplicated", ctx: requestid.With(context.Background(), "r-1"), attrs: []any{requestid.LogKey, "r-1"}, wantID: "r-1", wantIDs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(requestid.NewLogHandler(slog.NewJSONHandler(&buf, nil)))
			logger.InfoContext(tt.ctx, "hello", tt.attrs...)

			if n := strings.Count(buf.String(), `"`+requestid.LogKey+`"`); n != tt.wantIDs {
				t.Fatalf("request_id appears %d times, want %d: %s", n, tt.wantIDs, buf.String())
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("decode log line: %v", err)
			}
			got, _ := line[requestid.LogKey].(string)
			if got != tt.wantID {
				t.Fatalf("request_id = %q, want %q", got, tt.wantID)
			}
		})
	}
}
