// Package static embeds the browser assets the server sends: the compiled
// Tailwind stylesheet and the vendored htmx. Both are built by `make web` and
// committed, so `go build` and `go test` never need Node or npm.
package static

import "embed"

// FS holds the built assets, rooted at this directory (css/app.css,
// js/htmx.min.js, img/favicon.svg). Sources such as css/input.css are deliberately not embedded:
// only what a browser should fetch is served.
//
//go:embed css/app.css js/*.js img/*.svg
var FS embed.FS
