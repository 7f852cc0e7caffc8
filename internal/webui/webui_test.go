package webui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, h http.Handler, method, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandler(t *testing.T) {
	h, err := New()
	require.NoError(t, err)
	index, err := files.ReadFile("assets/index.html")
	require.NoError(t, err)

	for _, tc := range []struct {
		name, method, path string
		status             int
		body               []byte // nil: not checked
		typ                string
	}{
		{"the runs list", "GET", "/ui/", 200, index, "text/html; charset=utf-8"},
		{"a run page is the app", "GET", "/ui/runs/01a23ae9-8498-72a2-b111-877f45130bf4", 200, index, "text/html; charset=utf-8"},
		{"usage", "GET", "/ui/usage", 200, index, "text/html; charset=utf-8"},
		{"the script", "GET", "/ui/assets/app.js", 200, nil, "text/javascript; charset=utf-8"},
		{"the styles", "GET", "/ui/assets/app.css", 200, nil, "text/css; charset=utf-8"},
		{"HEAD", "HEAD", "/ui/assets/app.js", 200, []byte{}, "text/javascript; charset=utf-8"},
		{"no such asset", "GET", "/ui/assets/nope.js", 404, nil, ""},
		{"index is not an asset", "GET", "/ui/assets/index.html", 404, nil, ""},
		{"no slash", "GET", "/ui", 301, nil, ""},
		{"outside the prefix", "GET", "/uix", 404, nil, ""},
		{"a write", "POST", "/ui/", 405, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(t, h, tc.method, tc.path, nil)
			assert.Equal(t, tc.status, rec.Code)
			assert.Equal(t, ContentSecurityPolicy, rec.Header().Get("Content-Security-Policy"), "every response carries the policy")
			assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
			if tc.body != nil {
				assert.Equal(t, string(tc.body), rec.Body.String())
			}
			if tc.typ != "" {
				assert.Equal(t, tc.typ, rec.Header().Get("Content-Type"))
			}
		})
	}
	assert.Equal(t, "/ui/", serve(t, h, "GET", "/ui", nil).Header().Get("Location"))

	t.Run("gzip and revalidation", func(t *testing.T) {
		plain := serve(t, h, "GET", "/ui/assets/app.js", nil)
		zipped := serve(t, h, "GET", "/ui/assets/app.js", map[string]string{"Accept-Encoding": "br, gzip"})
		require.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
		assert.Less(t, zipped.Body.Len(), plain.Body.Len()/2)
		zr, err := gzip.NewReader(zipped.Body)
		require.NoError(t, err)
		unzipped, err := io.ReadAll(zr)
		require.NoError(t, err)
		assert.Equal(t, plain.Body.Bytes(), unzipped)
		assert.Empty(t, serve(t, h, "GET", "/ui/assets/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"}).Header().Get("Content-Encoding"))

		etag := plain.Header().Get("ETag")
		require.NotEmpty(t, etag)
		assert.Equal(t, http.StatusNotModified, serve(t, h, "GET", "/ui/assets/app.js", map[string]string{"If-None-Match": etag}).Code)
		assert.Equal(t, "no-cache", plain.Header().Get("Cache-Control"))
	})

	t.Run("no inline code and no other host", func(t *testing.T) {
		html := string(index)
		for _, tag := range regexp.MustCompile(`(?s)<script\b[^>]*>(.*?)</script>`).FindAllStringSubmatch(html, -1) {
			assert.Contains(t, tag[0], `src="/ui/assets/`, "every script is a file of the bundle")
			assert.Empty(t, strings.TrimSpace(tag[1]), "no inline script")
		}
		assert.NotRegexp(t, `\son[a-z]+=`, html, "no inline event handler")
		assert.NotContains(t, html, "style=", "no inline style")
		assert.NotRegexp(t, `(src|href)="(https?:)?//`, html, "nothing from another host")
		for name := range h.Sizes() {
			b, _ := files.ReadFile("assets/" + name)
			assert.False(t, bytes.Contains(b, []byte("sourceMappingURL")), "%s points at no source map", name)
			assert.NotRegexp(t, `@import|url\((https?:)?//`, string(b), "%s loads nothing from another host", name)
		}
	})
}
