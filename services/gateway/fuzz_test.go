package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"

	"github.com/nexusrag/nexusrag/pkg/textcheck"
)

// The request decoders must turn any input into a request or a client error (4xx):
// never a panic, never a 500.

func requireClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if status, e := httpError(err); status < 400 || status >= 500 {
		t.Fatalf("input gave %d %s (%s); want a 4xx", status, e.Code, e.Message)
	}
}

func FuzzDecodeRun(f *testing.F) {
	for _, s := range []string{`{"session_id":"s","corpus_id":"c","message":"hi","top_k":5,"audio":true}`, `{}`, `[]`, `{"top_k":"x"}`, `{"session_id":`, ``, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/run", bytes.NewReader(body))
		_, err := decodeRun(r)
		requireClientError(t, err)
	})
}

func FuzzDecodeUpload(f *testing.F) {
	form := "--b\r\nContent-Disposition: form-data; name=\"corpus_id\"\r\n\r\nc1\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.md\"\r\nContent-Type: text/markdown\r\n\r\n# Hi\r\n--b--\r\n"
	f.Add("multipart/form-data; boundary=b", []byte(form))
	f.Add("application/json", []byte(`{"corpus_id":"c1","text":"hello"}`))
	f.Add("multipart/form-data", []byte(form))
	f.Add("text/plain", []byte("hello"))
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.json\"\r\n\r\n{\"text\":1}\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/documents", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		req, err := decodeUpload(r)
		requireClientError(t, err)
		if err == nil {
			if _, _, ok := textcheck.String(req.GetText()); !ok {
				t.Fatalf("accepted a document text that cannot be stored: %q", req.GetText())
			}
		}
	})
}

func FuzzParseAPIKey(f *testing.F) {
	for _, s := range []string{"nrk_abcdefghijklmnop_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu", "nrk__", "Bearer x", "", "nrk_" + strings.Repeat("a", 500)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		id, hash, err := parseKey(key)
		if err == nil && (id == "" || len(hash) != 32) {
			t.Fatalf("parseKey(%q) accepted it without an id and a sha256", key)
		}
	})
}

func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"abc-123", "", strings.Repeat("k", 129), "tab\there", "ünï"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !validIdempotencyKey(key) {
			return
		}
		if len(key) == 0 || len(key) > 128 {
			t.Fatalf("accepted a key of %d bytes", len(key))
		}
		for _, r := range key {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) {
				t.Fatalf("accepted %q", key)
			}
		}
	})
}
