package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexusrag/nexusrag/internal/launch"
)

// documented5xx are the 5xx answers the README documents, by status: the temporary
// states of the platform a client retries. Any other 5xx fails the soak.
var documented5xx = map[int][]string{
	503: {"DEPENDENCY_UNAVAILABLE", "SERVICE_UNAVAILABLE", "SERVICE_BUSY", "RATE_LIMIT_UNAVAILABLE", "AUTH_UNAVAILABLE", "IDEMPOTENCY_UNAVAILABLE"},
	504: {"DEADLINE_EXCEEDED"},
}

func documented(s sample) bool { return slices.Contains(documented5xx[s.status], s.code) }

// docReport compares what was stored with what the clients were told.
type docReport struct {
	documents, writes        int // documents written, and accepted writes
	present, succeeded       int // documents the clients were told exist; of them, succeeded
	deleted, gone            int // documents the clients deleted; of them, gone
	unknown                  int // documents whose last write went unanswered
	orphanChunks             int // chunks of no succeeded document
	findings                 []string
	failedReasons            map[string]int
	chunksChecked, chunkRows int
}

// verify reads every document the clients wrote and checks it against what they were
// told: present documents succeeded with the text last accepted and exactly their
// chunks (ordinals 0..n-1, each once), deleted ones gone with their chunks.
func (p *platform) verify(ctx context.Context, clients []*client) (docReport, error) {
	r := docReport{failedReasons: map[string]int{}}
	for _, c := range clients {
		for _, s := range c.samples {
			if s.class == classUpload && s.status == 202 {
				r.writes++
			}
		}
		for _, id := range c.order {
			w := c.docs[id]
			r.documents++
			var status, content, reason string
			var chunkCount int
			err := p.db.QueryRow(ctx, `SELECT status, content, chunk_count, failure_reason FROM ingest.documents
				WHERE tenant_id = $1 AND document_id = $2`, c.tenant.id, id).Scan(&status, &content, &chunkCount, &reason)
			found := err == nil
			if err != nil && err != pgx.ErrNoRows {
				return r, err
			}
			var rows, ordinals, maxOrdinal int
			if err := p.db.QueryRow(ctx, `SELECT count(*), count(DISTINCT ordinal), coalesce(max(ordinal), -1) FROM retrieval.chunks
				WHERE tenant_id = $1 AND document_id = $2`, c.tenant.id, id).Scan(&rows, &ordinals, &maxOrdinal); err != nil {
				return r, err
			}
			name := c.tenant.id + "/" + id
			if status == "failed" {
				r.failedReasons[reason]++
			}
			switch {
			case w.unknown:
				r.unknown++
			case w.exists:
				r.present++
				switch {
				case !found:
					r.findings = append(r.findings, fmt.Sprintf("lost: %s was accepted and is not stored", name))
				case status != "succeeded":
					r.findings = append(r.findings, fmt.Sprintf("not indexed: %s is %s %s", name, status, reason))
				case content != w.text:
					r.findings = append(r.findings, fmt.Sprintf("lost write: %s holds another text than the last accepted one", name))
				default:
					r.succeeded++
				}
			default:
				r.deleted++
				if found || rows > 0 {
					r.findings = append(r.findings, fmt.Sprintf("not deleted: %s was deleted (200) and is still stored (%q, %d chunks)", name, status, rows))
				} else {
					r.gone++
				}
			}
			if found && status == "succeeded" {
				r.chunksChecked++
				r.chunkRows += rows
				if rows != chunkCount || ordinals != rows || maxOrdinal != rows-1 || rows == 0 {
					r.findings = append(r.findings, fmt.Sprintf("duplicated or missing chunks: %s has %d chunk rows (%d distinct ordinals, highest %d) for chunk_count %d",
						name, rows, ordinals, maxOrdinal, chunkCount))
				}
			}
		}
	}
	err := p.db.QueryRow(ctx, `SELECT count(*) FROM retrieval.chunks c WHERE NOT EXISTS (SELECT 1 FROM ingest.documents d
		WHERE d.tenant_id = c.tenant_id AND d.document_id = c.document_id AND d.status = 'succeeded')`).Scan(&r.orphanChunks)
	if r.orphanChunks > 0 {
		r.findings = append(r.findings, fmt.Sprintf("%d chunks belong to no succeeded document", r.orphanChunks))
	}
	return r, err
}

// report is everything the soak prints.
type report struct {
	settings
	clients                []*client
	faults                 []fault
	loadTime               time.Duration
	settled                time.Duration
	pending                int
	before, after          launch.Memory // idle: before the load, and once the ingestion settled
	atEnd                  launch.Memory // as the load stopped
	docs                   docReport
	races                  []string
	logDir                 string
	samples                []sample
	problems, undocumented []sample
}

func (r *report) all() []sample {
	if r.samples == nil {
		for _, c := range r.clients {
			r.samples = append(r.samples, c.samples...)
		}
		slices.SortFunc(r.samples, func(a, b sample) int { return int(a.at - b.at) })
		for _, s := range r.samples {
			switch {
			case s.problem != "":
				r.problems = append(r.problems, s)
			case s.status >= 500 && !documented(s), s.class == classRun && s.code == "INTERNAL":
				r.undocumented = append(r.undocumented, s)
			}
		}
	}
	return r.samples
}

func (r *report) print(w io.Writer) {
	all := r.all()
	fmt.Fprintf(w, "\nNexusRAG soak report: %d clients over %d tenants, load for %s (%d requests, %.1f/s), ingestion settled %s after\n",
		r.settings.clients, r.tenants, r.loadTime.Round(time.Second), len(all), float64(len(all))/r.loadTime.Seconds(), r.settled.Round(100*time.Millisecond))

	fmt.Fprintln(w, "\nFaults (time from the start of the load)")
	for _, f := range r.faults {
		line := fmt.Sprintf("  +%6.1fs  %s", f.at.Seconds(), f.what)
		if f.err != nil {
			line += "  FAILED: " + f.err.Error()
		}
		fmt.Fprintln(w, line)
	}

	fmt.Fprintln(w, "\nRequests by status (a run's status is its HTTP status; an error event's code follows it)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CLASS\tREQUESTS\tSTATUS [CODE]: COUNT")
	for _, class := range classes {
		counts := map[string]int{}
		n := 0
		for _, s := range all {
			if s.class != class {
				continue
			}
			n++
			key := fmt.Sprint(s.status)
			switch {
			case s.problem != "":
				key = "no answer"
			case s.code != "":
				key += " " + s.code
			}
			counts[key]++
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%s: %d", k, counts[k]))
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", class, n, strings.Join(parts, ", "))
	}
	_ = tw.Flush()

	fmt.Fprintf(w, "\nLatency by route class over time: p50 / p99 in ms (requests), windows of %s\n", r.window)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  WINDOW\t"+strings.ToUpper(strings.Join(classes, "\t")))
	for start := time.Duration(0); start < r.duration; start += r.window {
		end := min(start+r.window, r.duration)
		last := end == r.duration // it takes the requests sent as the load ended
		cells := []string{fmt.Sprintf("%3.0f-%3.0fs", start.Seconds(), end.Seconds())}
		for _, class := range classes {
			var lat []time.Duration
			for _, s := range all {
				if s.class == class && s.at >= start && (s.at < end || last) && s.problem == "" {
					lat = append(lat, s.latency)
				}
			}
			cells = append(cells, quantiles(lat))
		}
		fmt.Fprintln(tw, "  "+strings.Join(cells, "\t"))
	}
	_ = tw.Flush()

	d := r.docs
	fmt.Fprintln(w, "\nDocuments (the clients' view against the database, after the ingestion settled)")
	fmt.Fprintf(w, "  %d accepted writes over %d documents; %d still pending when the wait ended\n", d.writes, d.documents, r.pending)
	fmt.Fprintf(w, "  present: %d, of which succeeded with the last accepted text: %d\n", d.present, d.succeeded)
	fmt.Fprintf(w, "  deleted: %d, of which gone with their chunks: %d\n", d.deleted, d.gone)
	fmt.Fprintf(w, "  unknown (last write unanswered): %d\n", d.unknown)
	fmt.Fprintf(w, "  chunks: %d rows over %d indexed documents, each document's ordinals 0..n-1 once; %d orphan chunks\n", d.chunkRows, d.chunksChecked, d.orphanChunks)
	if len(d.failedReasons) > 0 {
		fmt.Fprintf(w, "  failed documents by reason: %v\n", d.failedReasons)
	}

	fmt.Fprintln(w, "\nMain process (serve): idle before the load, as it stopped, idle once the ingestion settled (heap after a forced GC;")
	fmt.Fprintln(w, "RSS keeps the race detector's shadow memory and the heap's high-water mark)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  \tGOROUTINES\tLIVE HEAP\tSTACKS\tRSS")
	for _, m := range []struct {
		name string
		m    launch.Memory
	}{{"before", r.before}, {"load end", r.atEnd}, {"after", r.after}} {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", m.name, m.m.Goroutines, mib(m.m.Heap), mib(m.m.Stacks), mib(m.m.RSS))
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nEvery 5xx answer, with its request id")
	n := 0
	for _, s := range all {
		if s.status >= 500 {
			n++
			mark := "documented"
			if !documented(s) {
				mark = "UNDOCUMENTED"
			}
			fmt.Fprintf(w, "  +%6.1fs  %-6s %-45s %d %-24s %s  %s\n", s.at.Seconds(), s.method, s.path, s.status, s.code, s.requestID, mark)
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "  none")
	}
	fmt.Fprintln(w)
}

// failures lists what makes the soak fail.
func (r *report) failures() []string {
	r.all()
	var out []string
	for _, s := range r.problems {
		out = append(out, fmt.Sprintf("+%.1fs %s %s: %s (request %s)", s.at.Seconds(), s.method, s.path, s.problem, s.requestID))
	}
	for _, s := range r.undocumented {
		out = append(out, fmt.Sprintf("+%.1fs %s %s: %d %s (request %s)", s.at.Seconds(), s.method, s.path, s.status, s.code, s.requestID))
	}
	for _, c := range r.clients {
		out = append(out, c.anomalies...)
	}
	out = append(out, r.docs.findings...)
	if r.pending > 0 {
		out = append(out, fmt.Sprintf("%d documents still queued, processing or deleting %s after the load", r.pending, r.settle))
	}
	out = append(out, r.races...)
	for _, f := range r.faults {
		if f.err != nil {
			out = append(out, fmt.Sprintf("fault at +%.1fs (%s) could not be injected: %v", f.at.Seconds(), f.what, f.err))
		}
	}
	if grown := r.after.Goroutines - r.before.Goroutines; grown > max(10, r.before.Goroutines/10) {
		out = append(out, fmt.Sprintf("goroutines grew from %d to %d once the load stopped", r.before.Goroutines, r.after.Goroutines))
	}
	if len(out) > 0 {
		out = append(out, "the processes' logs are in "+r.logDir)
	}
	return out
}

func quantiles(lat []time.Duration) string {
	if len(lat) == 0 {
		return "-"
	}
	slices.Sort(lat)
	q := func(f float64) float64 {
		return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))].Microseconds()) / 1000
	}
	return fmt.Sprintf("%.0f / %.0f (%d)", q(0.50), q(0.99), len(lat))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
