package extract

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/cmdout"
)

// ContentTypePDF is a PDF document. Its text is extracted by the ingest worker, with
// poppler-utils' pdfinfo and pdftotext run as subprocesses under limits (ADR 0025).
const ContentTypePDF = "application/pdf"

// Codes of PDFs whose text cannot be extracted; a failed document's failure_reason starts
// with one of them.
const (
	CodePDFNoText       = "PDF_NO_TEXT"
	CodePDFEncrypted    = "PDF_ENCRYPTED"
	CodePDFCorrupt      = "PDF_CORRUPT"
	CodePDFTooManyPages = "PDF_TOO_MANY_PAGES"
	CodePDFTimeout      = "PDF_EXTRACT_TIMEOUT"
	CodePDFTextTooLarge = "PDF_TEXT_TOO_LARGE"
	// CodePDFUnavailable: the process has no pdftotext (an image without poppler-utils).
	CodePDFUnavailable = "PDF_EXTRACTOR_UNAVAILABLE"
)

// defaultPDFMemory is each tool's address space unless PDFLimits says otherwise.
const defaultPDFMemory = 1 << 30

// PDFLimits bound the extraction of one PDF.
type PDFLimits struct {
	// MaxPages: a PDF with more pages fails with CodePDFTooManyPages, before any is read.
	MaxPages int
	// MaxText: more bytes of text fail with CodePDFTextTooLarge (a few KiB of compressed
	// content streams can hold megabytes of text).
	MaxText int64
	// Timeout is the wall clock of the whole extraction (CodePDFTimeout); each tool also
	// gets it, rounded up to seconds, as its CPU time limit.
	Timeout time.Duration
	// MaxMemory is each tool's address space (RLIMIT_AS); 0 means 1 GiB.
	MaxMemory int64
}

// PDFExtractor reads the text of PDFs with poppler-utils (pdfinfo, pdftotext), each run
// under prlimit (util-linux) with the limits, in its own process group, killed when the
// time is up. A parser that crashes or runs away takes only its own process with it.
type PDFExtractor struct {
	limits                      PDFLimits
	pdfinfo, pdftotext, prlimit string
	missing                     error
}

// NewPDFExtractor finds the tools on PATH; when one is missing, Available says which and
// every extraction fails with CodePDFUnavailable.
func NewPDFExtractor(l PDFLimits) *PDFExtractor {
	if l.MaxMemory <= 0 {
		l.MaxMemory = defaultPDFMemory
	}
	x := &PDFExtractor{limits: l}
	for _, t := range []struct {
		name string
		path *string
	}{{"pdfinfo", &x.pdfinfo}, {"pdftotext", &x.pdftotext}, {"prlimit", &x.prlimit}} {
		p, err := exec.LookPath(t.name)
		if err != nil {
			x.missing = errors.Join(x.missing, fmt.Errorf("%s not found on PATH (install poppler-utils and util-linux)", t.name))
		}
		*t.path = p
	}
	return x
}

// Available is nil when the tools were found, or says which are missing.
func (x *PDFExtractor) Available() error { return x.missing }

// Text extracts a PDF's text as the chunker reads markdown: paragraphs separated by blank
// lines, headings (lines set larger than the body text) as markdown headings, and each
// page's text after its PageMarker. Failures the PDF causes are *apierr.Error values with
// the codes above; the caller's own cancellation or deadline is returned as ctx.Err().
func (x *PDFExtractor) Text(ctx context.Context, data []byte) (string, error) {
	if x.missing != nil {
		return "", apierr.New(codes.FailedPrecondition, CodePDFUnavailable, "PDF text cannot be extracted here: "+x.missing.Error())
	}
	tctx, cancel := context.WithTimeout(ctx, x.limits.Timeout)
	defer cancel()
	text, err := x.extract(tctx, data)
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case tctx.Err() != nil:
		return "", pdfError(CodePDFTimeout, "extracting the text took longer than %s (INGEST_EXTRACT_TIMEOUT)", x.limits.Timeout)
	}
	return text, err
}

func (x *PDFExtractor) extract(ctx context.Context, data []byte) (string, error) {
	pages, err := x.pageCount(ctx, data)
	if err != nil {
		return "", err
	}
	if pages > x.limits.MaxPages {
		return "", pdfError(CodePDFTooManyPages, "the PDF has %d pages; the limit is %d (INGEST_MAX_PAGES)", pages, x.limits.MaxPages)
	}
	blocks, err := x.layout(ctx, data)
	if err != nil {
		return "", err
	}
	text := render(blocks)
	if text == "" {
		return "", pdfError(CodePDFNoText, "the PDF has no text layer (a scan, or images only): nothing to index; run it through OCR first")
	}
	return text, nil
}

func pdfError(code, format string, args ...any) error {
	return apierr.New(codes.InvalidArgument, code, fmt.Sprintf(format, args...))
}

var pagesLine = regexp.MustCompile(`(?m)^Pages:\s+(\d+)\s*$`)

// pageCount asks pdfinfo, which reads the page tree without parsing any page: a
// 10,000-page file is refused in milliseconds.
func (x *PDFExtractor) pageCount(ctx context.Context, data []byte) (int, error) {
	var out, stderr bytes.Buffer
	cmd := x.command(ctx, x.pdfinfo, "-")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(data), &cmdout.Head{W: &out, N: 64 << 10}, &cmdout.Head{W: &stderr, N: 4 << 10}
	if err := cmd.Run(); err != nil {
		return 0, toolError("pdfinfo", err, stderr.String())
	}
	m := pagesLine.FindSubmatch(out.Bytes())
	if m == nil {
		return 0, pdfError(CodePDFCorrupt, "the PDF's page count cannot be read")
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil || n == 0 {
		return 0, pdfError(CodePDFCorrupt, "the PDF has no pages")
	}
	return n, nil
}

// toolError turns a tool's failure into the PDF's error. Poppler exits 1 for a file it
// cannot open, saying "Incorrect password" when it is encrypted; a tool killed by its CPU
// limit took too long; one killed by a signal otherwise (its memory limit: an abort) could
// not read the file within its limits.
func toolError(tool string, err error, stderr string) error {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("run %s: %w", tool, err)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		if ws.Signal() == syscall.SIGXCPU {
			return pdfError(CodePDFTimeout, "%s used up its CPU time limit (INGEST_EXTRACT_TIMEOUT)", tool)
		}
		return pdfError(CodePDFCorrupt, "%s stopped (%s): the file is damaged or too complex to read within the memory limit", tool, ws.Signal())
	}
	if strings.Contains(stderr, "Incorrect password") {
		return pdfError(CodePDFEncrypted, "the PDF is encrypted with a password: upload it without the password protection")
	}
	return pdfError(CodePDFCorrupt, "the file is not a PDF or is damaged: %s", firstLine(stderr))
}

// firstLine is the first error poppler reported, for the failure reason.
func firstLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return strings.TrimPrefix(strings.TrimPrefix(l, "Syntax Error: "), "Syntax Warning: ")
		}
	}
	return "it cannot be opened"
}

// command runs a tool under prlimit, in its own process group (killed whole when ctx
// ends), with an empty environment but the C locale.
func (x *PDFExtractor) command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cpu := int64((x.limits.Timeout + time.Second - 1) / time.Second)
	argv := append([]string{"--as=" + strconv.FormatInt(x.limits.MaxMemory, 10), "--cpu=" + strconv.FormatInt(cpu, 10), "--", tool}, args...)
	cmd := exec.CommandContext(ctx, x.prlimit, argv...)
	cmd.Env = []string{"LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd
}

var errTextTooLarge = errors.New("text too large")

// layout runs pdftotext -bbox-layout, poppler's reading order as pages of blocks of lines
// of words with their boxes, and reads it as it comes: the text is bounded by MaxText
// (the tool is stopped past it), never the tool's output.
func (x *PDFExtractor) layout(ctx context.Context, data []byte) ([]pdfBlock, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stderr bytes.Buffer
	cmd := x.command(ctx, x.pdftotext, "-q", "-bbox-layout", "-enc", "UTF-8", "-l", strconv.Itoa(x.limits.MaxPages), "-", "-")
	cmd.Stdin, cmd.Stderr = bytes.NewReader(data), &cmdout.Head{W: &stderr, N: 4 << 10}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("run pdftotext: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run pdftotext: %w", err)
	}
	blocks, perr := readLayout(bufio.NewReader(stdout), x.limits.MaxText)
	if perr != nil {
		cancel() // stop the tool; what it says now no longer matters
	}
	werr := cmd.Wait()
	switch {
	case errors.Is(perr, errTextTooLarge):
		return nil, pdfError(CodePDFTextTooLarge, "the PDF holds more than %d bytes of text (INGEST_MAX_BYTES)", x.limits.MaxText)
	case ctx.Err() != nil && perr == nil:
		return nil, ctx.Err()
	case werr != nil && perr == nil:
		return nil, toolError("pdftotext", werr, stderr.String())
	case perr != nil:
		return nil, pdfError(CodePDFCorrupt, "the PDF's text cannot be read: %v", perr)
	}
	return blocks, nil
}
