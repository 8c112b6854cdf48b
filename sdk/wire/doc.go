// Package wire is Latchkey's SDK wire protocol v1: API key format, request
// signing, header names, error codes and the JSON shapes exchanged between an
// SDK and the server (DESIGN.md §4, restated for client authors in
// docs/sdk-protocol.md).
//
// The server and the Go SDK both import this package so that there is exactly
// one implementation of the signing algorithm; it therefore imports only the
// standard library and nothing else from this repository.
//
// Secrets handled here (API keys, signing keys) are kept out of fmt, slog and
// JSON output by construction: APIKey redacts itself and Signer never exposes
// the key it holds. Error values never contain the text they rejected.
package wire
