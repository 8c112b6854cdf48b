package sdk

import (
	"context"
	"io"
	"time"
)

// WithRandForTest feeds the nonce source, so tests can reproduce the
// protocol's test vectors byte for byte.
func WithRandForTest(r io.Reader) Option { return func(s *settings) { s.rand = r } }

// WithSleepForTest replaces the retry wait, so retry tests neither sleep
// nor depend on timing.
func WithSleepForTest(f func(context.Context, time.Duration) error) Option {
	return func(s *settings) { s.sleep = f }
}
