package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/labstack/echo/v5"
)

// The assets every page loads, relative to the static root.
const (
	stylesheetAsset = "css/app.css"
	scriptAsset     = "js/htmx.min.js"
	iconAsset       = "img/favicon.svg"
)

// staticPrefix is where assets are served; routes.go registers it.
const staticPrefix = "/static/"

// asset is one file read into memory at start: the embedded set is small, and
// hashing it once gives every file a strong ETag and a cache-busting version.
type asset struct {
	body        []byte
	contentType string
	etag        string
	version     string
}

type assetStore struct {
	files map[string]asset
}

func loadAssets(fsys fs.FS) (*assetStore, error) {
	store := &assetStore{files: map[string]asset{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		digest := hex.EncodeToString(sum[:])
		store.files[name] = asset{
			body:        body,
			contentType: assetContentType(name),
			etag:        `"` + digest[:32] + `"`,
			version:     digest[:12],
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load static assets: %w", err)
	}
	return store, nil
}

// url returns the versioned URL of an asset. A missing asset is an error at
// start, not a broken page later: it means `make web` was not run.
func (a *assetStore) url(name string) (string, error) {
	f, ok := a.files[name]
	if !ok {
		return "", fmt.Errorf("static asset %s is missing; run make web", name)
	}
	return staticPrefix + name + "?v=" + f.version, nil
}

// serveStatic serves an embedded asset. Lookup is by exact name in a map, so
// no request path can reach anything outside the embedded set.
func (s *Server) serveStatic(c *echo.Context) error {
	name := c.Param("*")
	f, ok := s.assets.files[name]
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	if c.QueryParam("v") == f.version {
		// The URL names this exact content, so it can be cached for good.
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// An unversioned (or outdated) URL may change on upgrade: cache
		// briefly, then revalidate with the ETag.
		h.Set("Cache-Control", "public, max-age=300")
	}
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	// ServeContent handles If-None-Match, Range and HEAD; the zero time
	// leaves Last-Modified out, which embedded files cannot know anyway.
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(f.body))
	return nil
}

// assetContentType is fixed here rather than read from the system MIME table,
// which differs between machines.
func assetContentType(name string) string {
	switch path.Ext(name) {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".json", ".map":
		return "application/json"
	}
	return "application/octet-stream"
}
