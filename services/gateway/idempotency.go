package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redisscan"
)

// Idempotency replays the stored response of a write request repeated with the same
// Idempotency-Key and payload, and refuses the same key with another payload. Records
// live in Redis, per tenant, for the configured TTL (24 h by default).
type Idempotency struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	lockTTL time.Duration
	log     *slog.Logger
}

const (
	maxIdempotencyKeyLen = 128
	// maxStoredResponse bounds what is kept for replay; larger responses are not stored
	// (the key is released, so a retry runs the request again).
	maxStoredResponse = 1 << 20
)

// NewIdempotency returns the store; prefix namespaces its Redis keys.
func NewIdempotency(rdb redis.UniversalClient, prefix string, ttl time.Duration, log *slog.Logger) *Idempotency {
	return &Idempotency{rdb: rdb, prefix: prefix, ttl: ttl, lockTTL: time.Minute, log: log}
}

type idemRecord struct {
	Fingerprint string `json:"fp"`
	Done        bool   `json:"done"`
	Status      int    `json:"status,omitempty"`
	ContentType string `json:"ct,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch || method == http.MethodDelete
}

// Middleware applies idempotency to write requests that carry the header. It runs after
// authentication: keys are scoped to the caller's tenant.
func (m *Idempotency) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(idempotentHdr)
		if key == "" || !isWrite(r.Method) || stateOf(r.Context()).route == runRoute { // a stream is not replayable
			next.ServeHTTP(w, r)
			return
		}
		if !validIdempotencyKey(key) {
			writeError(w, r, apierr.New(codes.InvalidArgument, CodeIdempotencyKeyInvalid,
				"Idempotency-Key must be 1 to 128 printable ASCII characters", "header", idempotentHdr))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeError(w, r, bodyReadError(r, err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p, _ := principal.From(r.Context())
		rkey := m.redisKey(p.TenantID, key)
		rec := idemRecord{Fingerprint: fingerprint(r, body)}
		replay, err := m.claim(r.Context(), rkey, rec)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if replay != nil {
			w.Header().Set("Content-Type", replay.ContentType)
			w.Header().Set(replayedHeader, "true")
			w.WriteHeader(replay.Status)
			_, _ = w.Write(replay.Body)
			return
		}
		cw := &captureWriter{statusWriter: statusWriter{ResponseWriter: w, status: http.StatusOK}}
		next.ServeHTTP(cw, r)
		m.complete(context.WithoutCancel(r.Context()), rkey, rec, cw)
	})
}

// claim takes the key for this request, or returns the stored response to replay, or
// an error (conflict, in progress, Redis unavailable).
func (m *Idempotency) claim(ctx context.Context, rkey string, rec idemRecord) (*idemRecord, error) {
	pending, _ := json.Marshal(rec)
	for range 2 { // a record that expires between SETNX and GET is claimed on the second pass
		ok, err := m.rdb.SetNX(ctx, rkey, pending, m.lockTTL).Result()
		if err != nil {
			return nil, m.unavailable(ctx, err)
		}
		if ok {
			return nil, nil
		}
		raw, err := m.rdb.Get(ctx, rkey).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, m.unavailable(ctx, err)
		}
		var stored idemRecord
		if err := json.Unmarshal(raw, &stored); err != nil {
			return nil, m.unavailable(ctx, err)
		}
		switch {
		case stored.Fingerprint != rec.Fingerprint:
			return nil, apierr.New(codes.AlreadyExists, CodeIdempotencyConflict,
				"this Idempotency-Key was already used with a different request", "header", idempotentHdr)
		case !stored.Done:
			return nil, apierr.New(codes.Aborted, CodeIdempotencyInProgress,
				"a request with this Idempotency-Key is still in progress; retry shortly", "header", idempotentHdr)
		}
		return &stored, nil
	}
	return nil, m.unavailable(ctx, errors.New("idempotency record kept vanishing"))
}

// complete stores the response for replay, or releases the key when the request failed
// on the server side (so that a retry can succeed) or the response is too large.
func (m *Idempotency) complete(ctx context.Context, rkey string, rec idemRecord, cw *captureWriter) {
	if cw.status >= 500 || cw.overflow {
		if err := m.rdb.Del(ctx, rkey).Err(); err != nil {
			m.log.WarnContext(ctx, "release idempotency key", "error", err)
		}
		return
	}
	rec.Done, rec.Status, rec.ContentType, rec.Body = true, cw.status, cw.Header().Get("Content-Type"), cw.buf.Bytes()
	raw, _ := json.Marshal(rec)
	if err := m.rdb.Set(ctx, rkey, raw, m.ttl).Err(); err != nil {
		m.log.WarnContext(ctx, "store idempotent response", "error", err)
	}
}

func (m *Idempotency) unavailable(ctx context.Context, err error) error {
	m.log.WarnContext(ctx, "idempotency store unavailable", "error", err)
	return apierr.New(codes.Unavailable, CodeIdempotencyUnavailable,
		"Idempotency-Key cannot be honoured right now; retry shortly or send the request without it")
}

func (m *Idempotency) redisKey(tenant, key string) string {
	sum := sha256.Sum256([]byte(key))
	return m.prefix + "idem:" + tenant + ":" + hex.EncodeToString(sum[:16])
}

func fingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	for _, part := range []string{r.Method, r.URL.Path, r.URL.RawQuery, strconv.Itoa(len(body))} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// captureWriter passes a response through and keeps a copy for replay.
type captureWriter struct {
	statusWriter
	buf      bytes.Buffer
	overflow bool
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if !c.overflow {
		if c.buf.Len()+len(p) > maxStoredResponse {
			c.overflow = true
			c.buf.Reset()
		} else {
			c.buf.Write(p)
		}
	}
	return c.statusWriter.Write(p)
}

// Prune is the prune_idempotency maintenance task. Records expire by themselves in Redis
// after IDEMPOTENCY_TTL; the task finds those that lost their expiry (a PERSIST, or a
// restore from a snapshot without TTLs) and gives it back, so that none is kept forever.
func (m *Idempotency) Prune(ctx context.Context) (maintenance.Result, error) {
	keys, err := redisscan.Keys(ctx, m.rdb, m.prefix+"idem:*")
	if err != nil {
		return maintenance.Result{}, err
	}
	var repaired int64
	for _, k := range keys {
		ttl, err := m.rdb.TTL(ctx, k).Result()
		if err != nil {
			return maintenance.Result{Affected: repaired}, err
		}
		if ttl == -1 { // no expiry (-2: gone meanwhile)
			if err := m.rdb.Expire(ctx, k, m.ttl).Err(); err != nil {
				return maintenance.Result{Affected: repaired}, err
			}
			repaired++
		}
	}
	return maintenance.Result{Affected: repaired, Detail: fmt.Sprintf("scanned %d idempotency records; %d had no expiry and now expire after IDEMPOTENCY_TTL (%s)",
		len(keys), repaired, m.ttl)}, nil
}
