# Front-end build and view generation, included by the top-level Makefile.
# Paths are relative to the repository root.
#
# The outputs (static/css/app.css, static/js/htmx.min.js and
# views/**/*_templ.go) are committed, so `go build` and `go test` never need
# Node or npm; these targets rebuild them and check that they are current.
#
#   make web              css + js + generate
#   make css              Tailwind: static/css/input.css -> static/css/app.css (minified)
#   make js               vendor htmx.min.js from node_modules into static/js/
#   make generate         go tool templ generate (views/)
#   make templ-fmt        format the .templ files in place
#   make lint-web         fail if templ files are unformatted or generated/built files are stale
#
# Needs: Go (templ is a `tool` in go.mod), and for css/js/web-assets-check
# Node >= 20 with npm and access to the npm registry.

WEB_NPM      ?= npm
WEB_TEMPL    ?= go tool templ
WEB_TAILWIND := node_modules/.bin/tailwindcss
WEB_CSS_IN   := static/css/input.css
WEB_CSS_OUT  := static/css/app.css
WEB_HTMX_SRC := node_modules/htmx.org/dist/htmx.min.js
WEB_HTMX_OUT := static/js/htmx.min.js
WEB_VIEWS    := views

.PHONY: web css js generate templ-fmt templ-fmt-check templ-generate-check web-assets-check lint-web

web: css js generate

# node_modules is a real target, rebuilt only when package.json or the lock
# changes. With a lock, `npm ci` installs exactly what it pins; only the very
# first setup, before a lock exists, runs `npm install` to create one.
node_modules: package.json $(wildcard package-lock.json)
	@if [ -f package-lock.json ]; then \
		$(WEB_NPM) ci --no-audit --no-fund; \
	else \
		$(WEB_NPM) install --no-audit --no-fund; \
	fi
	@touch $@

css: node_modules
	$(WEB_TAILWIND) --input $(WEB_CSS_IN) --output $(WEB_CSS_OUT) --minify

js: node_modules
	@mkdir -p $(dir $(WEB_HTMX_OUT))
	cp $(WEB_HTMX_SRC) $(WEB_HTMX_OUT)

generate:
	$(WEB_TEMPL) generate -path $(WEB_VIEWS)

templ-fmt:
	$(WEB_TEMPL) fmt $(WEB_VIEWS)

# Compares each file with its formatted form instead of formatting in place,
# so a check never edits the tree it checks.
templ-fmt-check:
	@status=0; \
	for f in $$(find $(WEB_VIEWS) -name '*.templ' | sort); do \
		$(WEB_TEMPL) fmt -log-level error -stdout "$$f" | diff -u "$$f" - || status=1; \
	done; \
	if [ $$status -ne 0 ]; then echo "templ files are not formatted; run: make templ-fmt" >&2; fi; \
	exit $$status

templ-generate-check:
	@$(WEB_TEMPL) generate -log-level error -check -path $(WEB_VIEWS) || \
		{ echo "generated *_templ.go files are stale; run: make generate" >&2; exit 1; }

# Rebuilds the CSS into a temporary file and compares, and checks the vendored
# htmx is byte-identical to the version the lock file pins.
web-assets-check: node_modules
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(WEB_TAILWIND) --input $(WEB_CSS_IN) --output "$$tmp/app.css" --minify 2>/dev/null; \
	cmp -s "$$tmp/app.css" $(WEB_CSS_OUT) || \
		{ echo "$(WEB_CSS_OUT) is stale; run: make css" >&2; exit 1; }; \
	cmp -s $(WEB_HTMX_SRC) $(WEB_HTMX_OUT) || \
		{ echo "$(WEB_HTMX_OUT) differs from the locked htmx.org; run: make js" >&2; exit 1; }

lint-web: templ-fmt-check templ-generate-check web-assets-check
