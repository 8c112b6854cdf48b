package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/sdk/wire"
)

// ConnectOptions drive a headless Connect for CLIs and notebooks.
type ConnectOptions struct {
	// Session is the session to mint (allowed providers, agent, end user…).
	Session wire.ConnectSessionRequest
	// Open is given the connect URL to show the user: print it, or open a
	// browser. It must not log the URL anywhere shared: the URL carries the
	// single-use session token in its fragment. Nil does nothing.
	Open func(connectURL string) error
	// PollInterval between status checks (default 2 s).
	PollInterval time.Duration
}

// ConnectFailedError is a Connect session that ended without a grant: the
// user denied, the provider refused, or the session expired.
type ConnectFailedError struct {
	SessionID        string
	Status           wire.ConnectSessionState // failed or expired
	ErrorCode        string
	ErrorDescription string
}

func (e *ConnectFailedError) Error() string {
	if e.ErrorCode != "" {
		return fmt.Sprintf("sdk: connect session %s %s: %s", e.SessionID, e.Status, e.ErrorCode)
	}
	return fmt.Sprintf("sdk: connect session %s %s", e.SessionID, e.Status)
}

// Connect mints a Connect session, hands its URL to opts.Open, then polls
// until the user has finished in the browser and returns the resulting
// grants. It stops when ctx ends, when the session fails or expires
// (*ConnectFailedError), or on a Latchkey error.
func (a *App) Connect(ctx context.Context, opts ConnectOptions) ([]wire.Grant, error) {
	sess, err := a.CreateConnectSession(ctx, opts.Session)
	if err != nil {
		return nil, err
	}
	if opts.Open != nil {
		if err := opts.Open(sess.ConnectURL); err != nil {
			return nil, fmt.Errorf("sdk: connect: open: %w", err)
		}
	}
	interval := opts.PollInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := a.ConnectSessionStatus(ctx, sess.SessionID)
		if err != nil {
			// A poll that failed on the network is worth another try; a
			// Latchkey answer is final.
			var le *Error
			if errors.As(err, &le) || ctx.Err() != nil {
				return nil, err
			}
		} else {
			switch st.Status {
			case wire.ConnectCompleted:
				return st.Grants, nil
			case wire.ConnectFailed, wire.ConnectExpired:
				return nil, &ConnectFailedError{SessionID: sess.SessionID, Status: st.Status,
					ErrorCode: st.ErrorCode, ErrorDescription: st.ErrorDescription}
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
