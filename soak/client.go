package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// tenant is a tenant the soak's clients act for.
type tenant struct {
	id, key, corpus string
}

// Route classes of the report.
const (
	classRun     = "run"
	classUpload  = "upload"
	classRead    = "read"
	classReindex = "reindex"
	classDelete  = "delete"
)

var classes = []string{classRun, classUpload, classRead, classReindex, classDelete}

// sample is one request as the client saw it.
type sample struct {
	at        time.Duration // sent, from the start of the load
	class     string
	method    string
	path      string
	status    int    // 0: no answer (transport error)
	code      string // the envelope's error code, or a run's error event code
	requestID string
	latency   time.Duration
	problem   string // what broke the contract (a broken stream, a transport error), when something did
}

// want is what a client was told about one of its documents: the text of its last
// accepted write and whether it exists. Only the client that owns a document writes it,
// one request at a time, so the answers it got are the document's history.
type want struct {
	exists bool
	text   string
	// unknown is set when a write of it went unanswered: its content is not checked.
	unknown bool
}

// client is one simulated user: it owns its documents and sessions.
type client struct {
	id      int
	tenant  tenant
	base    string
	http    *http.Client
	rng     *rand.Rand
	start   time.Time
	samples []sample
	docs    map[string]*want
	order   []string // document ids, in creation order
	nextDoc int
	runs    int
	// anomalies are answers that contradict what the client was told before.
	anomalies []string
}

func newClient(id int, t tenant, base string) *client {
	return &client{id: id, tenant: t, base: base, docs: map[string]*want{}, start: time.Now(),
		rng:  rand.New(rand.NewPCG(uint64(id)+1, 0x50a4)),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: time.Minute}}
}

// warmUp sends one of each request; its samples are not reported.
func (c *client) warmUp(ctx context.Context) {
	c.upload(ctx)
	c.read(ctx)
	c.run(ctx)
	c.samples = nil
}

// loop sends requests, one at a time, until ctx ends: reads most, then uploads, runs,
// reindexes and deletes.
func (c *client) loop(ctx context.Context, start time.Time) {
	c.start = start
	for ctx.Err() == nil {
		switch n := c.rng.IntN(100); {
		case n < 35:
			c.read(ctx)
		case n < 60:
			c.upload(ctx)
		case n < 78:
			c.run(ctx)
		case n < 89:
			c.reindex(ctx)
		default:
			c.delete(ctx)
		}
	}
}

// answer is an HTTP answer, decoded.
type answer struct {
	status    int
	code      string
	requestID string
	retry     time.Duration
	body      []byte
}

// retryable is a 503 the platform documents as temporary.
func (a answer) retryable() bool { return a.status == http.StatusServiceUnavailable }

// send sends one request and records it. A request cut short by the end of the load
// (ctx) is not recorded.
func (c *client) send(ctx context.Context, class, method, path string, body any) (answer, bool) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.tenant.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	s := sample{at: time.Since(c.start), class: class, method: method, path: path}
	sent := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		s.problem = err.Error()
		c.samples = append(c.samples, s)
		return answer{}, false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	s.latency, s.status, s.requestID = time.Since(sent), res.StatusCode, res.Header.Get("X-Request-Id")
	a := answer{status: res.StatusCode, requestID: s.requestID, body: b}
	if err != nil {
		s.problem = "reading the answer: " + err.Error()
		c.samples = append(c.samples, s)
		return a, false
	}
	if res.StatusCode >= 400 {
		var env struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(b, &env)
		s.code, a.code = env.Error.Code, env.Error.Code
		if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
			a.retry = time.Duration(secs) * time.Second
		}
	}
	c.samples = append(c.samples, s)
	return a, true
}

// retries is how often a client retries a write the platform refused as temporary.
const retries = 8

// sendRetrying sends a write again while it is refused with a 503 (after Retry-After,
// at most a second, as a patient SDK would), returning the last answer and whether an
// earlier try was refused.
func (c *client) sendRetrying(ctx context.Context, class, method, path string, body any) (a answer, ok, retried bool) {
	for i := 0; ; i++ {
		a, ok = c.send(ctx, class, method, path, body)
		if !ok || !a.retryable() || i == retries {
			return a, ok, i > 0
		}
		time.Sleep(min(max(a.retry, 250*time.Millisecond), time.Second))
	}
}

var words = strings.Fields(`release gate rollout wave tenant corpus chunk vector index latency quota plan
	region failover backup policy retention audit key token stream answer source citation worker queue`)

// text is a document of a few hundred to a few thousand characters, unique to its write.
func (c *client) text(id string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s written at %d\n\n", id, time.Now().UnixNano())
	for n := 20 + c.rng.IntN(400); n > 0; n-- {
		b.WriteString(words[c.rng.IntN(len(words))])
		if n%12 == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// pick is one of the client's documents that it was told exist, or "".
func (c *client) pick() string {
	var live []string
	for _, id := range c.order {
		if c.docs[id].exists {
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		return ""
	}
	return live[c.rng.IntN(len(live))]
}

// upload writes a new document, or replaces one of the client's own.
func (c *client) upload(ctx context.Context) {
	id, overwrite := c.pick(), true
	if id == "" || c.rng.IntN(3) > 0 {
		c.nextDoc++
		id, overwrite = fmt.Sprintf("soak-c%d-d%d", c.id, c.nextDoc), false
	}
	text := c.text(id)
	a, ok, _ := c.sendRetrying(ctx, classUpload, "POST", "/v1/documents/text",
		map[string]any{"corpus_id": c.tenant.corpus, "document_id": id, "text": text, "overwrite": overwrite})
	w := c.docs[id]
	if w == nil {
		w = &want{}
		c.docs[id] = w
		c.order = append(c.order, id)
	}
	switch {
	case ok && a.status == http.StatusAccepted:
		w.exists, w.text = true, text
	case ok && a.status == http.StatusConflict && a.code == "DOCUMENT_BUSY":
		// the document is still being indexed or deleted: nothing changed
	case ok && a.status/100 == 4:
		c.anomaly("upload %s: %d %s (request %s)", id, a.status, a.code, a.requestID)
	default:
		// Unanswered, or 503 after every retry: the client cannot know what was stored.
		w.unknown = true
		c.anomaly("upload %s: no answer after %d tries (last %d %s, request %s)", id, retries+1, a.status, a.code, a.requestID)
	}
}

// read gets one of the client's documents (it must be as the client was told) or a list.
func (c *client) read(ctx context.Context) {
	id := c.pick()
	if id == "" || c.rng.IntN(3) == 0 {
		path := []string{"/v1/documents?corpus_id=" + c.tenant.corpus + "&limit=20", "/v1/corpora", "/v1/auth/whoami"}[c.rng.IntN(3)]
		c.send(ctx, classRead, "GET", path, nil)
		return
	}
	a, ok := c.send(ctx, classRead, "GET", "/v1/documents/"+id, nil)
	if ok && a.status == http.StatusNotFound {
		c.anomaly("GET /v1/documents/%s: 404, but its upload was accepted (request %s)", id, a.requestID)
	}
}

func (c *client) reindex(ctx context.Context) {
	id := c.pick()
	if id == "" {
		return
	}
	a, ok, _ := c.sendRetrying(ctx, classReindex, "POST", "/v1/documents/"+id+"/reindex", map[string]any{})
	switch {
	case ok && (a.status == http.StatusAccepted || a.status == http.StatusConflict):
	case ok && a.status == http.StatusNotFound:
		c.anomaly("reindex %s: 404, but its upload was accepted (request %s)", id, a.requestID)
	default:
		c.anomaly("reindex %s: %d %s after %d tries (request %s)", id, a.status, a.code, retries+1, a.requestID)
	}
}

// delete removes one of the client's documents; while it is being indexed the answer is
// 409 and nothing changes.
func (c *client) delete(ctx context.Context) {
	id := c.pick()
	if id == "" {
		return
	}
	a, ok, retried := c.sendRetrying(ctx, classDelete, "DELETE", "/v1/documents/"+id, nil)
	switch {
	case ok && a.status == http.StatusOK:
		c.docs[id].exists = false
	case ok && a.status == http.StatusConflict:
	case ok && a.status == http.StatusNotFound && retried:
		// A retry after a delete that was done but not answered: gone all the same.
		c.docs[id].exists = false
	case ok && a.status == http.StatusNotFound:
		c.anomaly("delete %s: 404, but its upload was accepted (request %s)", id, a.requestID)
	default:
		c.docs[id].unknown = true
		c.anomaly("delete %s: no answer after %d tries (last %d %s, request %s)", id, retries+1, a.status, a.code, a.requestID)
	}
}

// run asks a question in one of the client's sessions and reads the stream to its end:
// request.accepted first, done last, an error event's code recorded as the sample's.
func (c *client) run(ctx context.Context) {
	c.runs++
	body, _ := json.Marshal(map[string]any{"session_id": fmt.Sprintf("soak-c%d-s%d", c.id, c.runs%4), "corpus_id": c.tenant.corpus,
		"message": "What do the documents say about " + words[c.rng.IntN(len(words))] + "?", "top_k": 5})
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), "POST", c.base+"/v1/run", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.tenant.key)
	req.Header.Set("Content-Type", "application/json")
	s := sample{at: time.Since(c.start), class: classRun, method: "POST", path: "/v1/run"}
	sent := time.Now()
	defer func() {
		s.latency = time.Since(sent)
		c.samples = append(c.samples, s)
	}()
	res, err := c.http.Do(req)
	if err != nil {
		s.problem = err.Error()
		return
	}
	defer res.Body.Close()
	s.status, s.requestID = res.StatusCode, res.Header.Get("X-Request-Id")
	if res.StatusCode != http.StatusOK {
		var env struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.NewDecoder(res.Body).Decode(&env)
		s.code = env.Error.Code
		return
	}
	var first, last string
	for e, err := range sse.Read(res.Body, nil) {
		if err != nil {
			s.problem = "the stream broke: " + err.Error()
			return
		}
		if first == "" {
			first = e.Type
		}
		last = e.Type
		if e.Type == "error" {
			var ev struct {
				Data struct{ Code string } `json:"data"`
			}
			_ = json.Unmarshal([]byte(e.Data), &ev)
			s.code = ev.Data.Code
		}
	}
	if first != "request.accepted" || last != "done" {
		s.problem = fmt.Sprintf("the stream began with %q and ended with %q", first, last)
	}
}

func (c *client) anomaly(format string, args ...any) {
	c.anomalies = append(c.anomalies, fmt.Sprintf("client %d (%s): ", c.id, c.tenant.id)+fmt.Sprintf(format, args...))
}
