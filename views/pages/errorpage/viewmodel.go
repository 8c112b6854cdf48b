// Package errorpage is the page shown when a browser request fails.
package errorpage

// ViewModel holds only what is safe to show: a status, a human sentence and
// the request id a user can quote to an operator. Never raw error text.
type ViewModel struct {
	Status    int
	Title     string
	Message   string
	RequestID string
}
