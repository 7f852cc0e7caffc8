// Package webui serves the run viewer under /ui: the bundle that ui/
// (TypeScript, built with esbuild by `make ui`) writes into assets/,
// embedded in the binary so that it needs nothing else at run time and
// fetches nothing from another host.
package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets
var files embed.FS

// Prefix is where the viewer is served.
const Prefix = "/ui"

// ContentSecurityPolicy is sent with every response of the viewer: scripts,
// styles and connections from its own origin only (a WebSocket to the same
// host included), no inline script or style attribute, no plugin, no
// framing, nothing from another host.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file with its gzip form and validator.
type asset struct {
	name string
	body []byte
	gz   []byte
	etag string
	typ  string
}

// Handler serves the viewer. Its assets are under /ui/assets/; every other
// path under /ui/ is a page of the single-page app and gets index.html, so
// that /ui/runs/{id} can be bookmarked and reloaded.
type Handler struct {
	assets map[string]*asset
	index  *asset
}

// New loads the embedded assets and compresses them once.
func New() (*Handler, error) {
	h := &Handler{assets: map[string]*asset{}}
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "assets/")
		a := &asset{name: name, body: body, gz: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
			typ: mime.TypeByExtension(path.Ext(name))}
		if a.typ == "" {
			a.typ = "application/octet-stream"
		}
		h.assets[name] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.index = h.assets["index.html"]
	if h.index == nil {
		return nil, fs.ErrNotExist
	}
	return h, nil
}

// Sizes returns each asset's size and gzip size in bytes, by name.
func (h *Handler) Sizes() map[string][2]int {
	out := map[string][2]int{}
	for n, a := range h.assets {
		out[n] = [2]int{len(a.body), len(a.gz)}
	}
	return out
}

// ServeHTTP serves GET and HEAD under Prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == Prefix {
		http.Redirect(w, r, Prefix+"/", http.StatusMovedPermanently)
		return
	}
	rest, ok := strings.CutPrefix(p, Prefix+"/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	a := h.index
	if name, isAsset := strings.CutPrefix(rest, "assets/"); isAsset {
		if a = h.assets[name]; a == nil || name == "index.html" {
			http.NotFound(w, r)
			return
		}
	}
	// The bundle's names do not change with its content, so browsers
	// revalidate every time (a 304 when unchanged).
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	hd.Set("Content-Type", a.typ)
	hd.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
