package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/extract"
	"github.com/nexusrag/nexusrag/pkg/textcheck"
)

// uploadDocument serves POST /v1/documents: a multipart form (corpus_id, file and the
// optional fields of CreateDocument) or a JSON body like /v1/documents/text. The file is
// text/plain, text/markdown, text/html, DOCX (its text extracted here), PDF (passed on as
// it is: the ingest worker extracts its text) or JSON {"text": ...}; its type comes from
// the part's Content-Type, or from the file name's extension when the client sent none.
func uploadDocument(client ingestv1.IngestServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		req, err := decodeUpload(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		res, err := client.CreateDocument(r.Context(), req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeData(w, r, http.StatusAccepted, res)
	}
}

func unsupported(format string, args ...any) error {
	return apierr.New(codes.InvalidArgument, apierr.CodeUnsupportedMediaType, fmt.Sprintf(format, args...))
}

func decodeUpload(r *http.Request) (*ingestv1.CreateDocumentRequest, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, unsupported("send multipart/form-data (corpus_id, file) or application/json")
	}
	switch mt {
	case "application/json":
		req := &ingestv1.CreateDocumentRequest{}
		return req, decodeJSON(r, req)
	case "multipart/form-data":
		if params["boundary"] == "" {
			return nil, apierr.New(codes.InvalidArgument, CodeMalformedRequest, "multipart/form-data without a boundary")
		}
		return decodeForm(r, multipart.NewReader(r.Body, params["boundary"]))
	}
	return nil, unsupported("content type %s is not supported: send multipart/form-data (corpus_id, file) or application/json", mt)
}

// formFields are the form's text fields and the request fields they set.
var formFields = map[string]func(req *ingestv1.CreateDocumentRequest, v string) error{
	"corpus_id":   func(req *ingestv1.CreateDocumentRequest, v string) error { req.CorpusId = v; return nil },
	"document_id": func(req *ingestv1.CreateDocumentRequest, v string) error { req.DocumentId = v; return nil },
	"filename":    func(req *ingestv1.CreateDocumentRequest, v string) error { req.Filename = v; return nil },
	"overwrite": func(req *ingestv1.CreateDocumentRequest, v string) error {
		b, err := strconv.ParseBool(v)
		req.Overwrite = b
		return err
	},
	"chunk_size_chars": func(req *ingestv1.CreateDocumentRequest, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		req.ChunkSizeChars = int32(n)
		return err
	},
	"chunk_overlap_chars": func(req *ingestv1.CreateDocumentRequest, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		req.ChunkOverlapChars = int32(n)
		return err
	},
}

const maxFormField = 4 << 10

func decodeForm(r *http.Request, mr *multipart.Reader) (*ingestv1.CreateDocumentRequest, error) {
	req := &ingestv1.CreateDocumentRequest{}
	haveFile := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, formError(r, err)
		}
		name := part.FormName()
		if name == "file" {
			if haveFile {
				return nil, apierr.InvalidArgument("file", "send one file per request")
			}
			haveFile = true
			if err := decodeFile(r, part, req); err != nil {
				return nil, err
			}
			continue
		}
		set, known := formFields[name]
		if !known {
			return nil, apierr.InvalidArgument(name, fmt.Sprintf("unknown form field %q", name))
		}
		v, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		if err != nil {
			return nil, formError(r, err)
		}
		if len(v) > maxFormField {
			return nil, apierr.InvalidArgument(name, fmt.Sprintf("%s is longer than %d bytes", name, maxFormField))
		}
		if err := set(req, strings.TrimSpace(string(v))); err != nil {
			return nil, apierr.InvalidArgument(name, fmt.Sprintf("%s: %q is not a valid value", name, v))
		}
	}
	if !haveFile {
		return nil, apierr.InvalidArgument("file", "the form has no file part")
	}
	return req, nil
}

// decodeFile reads the file part into req.Text and req.ContentType.
func decodeFile(r *http.Request, part *multipart.Part, req *ingestv1.CreateDocumentRequest) error {
	if req.Filename == "" {
		req.Filename = part.FileName()
	}
	mt, params, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
	if err != nil || mt == "application/octet-stream" {
		mt = byExtension[strings.ToLower(path.Ext(part.FileName()))]
	}
	body, err := io.ReadAll(part)
	if err != nil {
		return formError(r, err)
	}
	switch mt {
	case "text/plain", "text/markdown", "text/x-markdown", "text/html":
		text, err := uploadText(body, strings.ToLower(params["charset"]))
		if err != nil {
			return err
		}
		req.ContentType, req.Text = strings.Replace(mt, "x-", "", 1), text
	case extract.ContentTypeDOCX:
		text, err := extract.DOCX(body)
		if err != nil {
			return apierr.InvalidArgument("file", err.Error())
		}
		if strings.TrimSpace(text) == "" {
			return apierr.InvalidArgument("file", "the DOCX has no text (only images or empty paragraphs): nothing to index")
		}
		req.ContentType, req.Text = extract.ContentTypeDOCX, text
	case extract.ContentTypePDF:
		req.ContentType, req.File = extract.ContentTypePDF, body
	case "application/json":
		var doc struct {
			Text *string `json:"text"`
		}
		if !utf8.Valid(body) || json.Unmarshal(body, &doc) != nil || doc.Text == nil {
			return apierr.InvalidArgument("file", `a JSON file must be an object with a "text" string, in UTF-8`)
		}
		if err := checkFileText(*doc.Text); err != nil {
			return err
		}
		req.ContentType, req.Text = "text/plain", *doc.Text
	case "":
		return unsupported("the file has no content type: send text/plain, text/markdown, text/html, a DOCX, a PDF or application/json")
	default:
		return unsupported("file type %s is not supported: send text/plain, text/markdown, text/html, a DOCX, a PDF or application/json ({\"text\": ...})", mt)
	}
	return nil
}

// uploadText turns an uploaded file's bytes into the document's text. Supported: UTF-8
// (a leading byte-order mark is dropped; US-ASCII is UTF-8) and UTF-16, little or big
// endian, announced by a byte-order mark or by charset=utf-16le/be, converted to UTF-8.
// Anything else, bytes that are not text in one of these (a binary file, Latin-1) or text
// with a NUL character, is refused naming the file: nothing is guessed or dropped.
func uploadText(b []byte, charset string) (string, error) {
	utf16BOM := bytes.HasPrefix(b, []byte{0xFF, 0xFE}) || bytes.HasPrefix(b, []byte{0xFE, 0xFF})
	var text string
	switch {
	case charset == "utf-16le" || charset == "utf-16be":
		t, ok := decodeUTF16(b, charset == "utf-16be")
		if !ok {
			return "", notUTF16()
		}
		text = t
	case charset == "utf-16" || utf16BOM:
		if charset != "" && charset != "utf-16" {
			return "", unsupported("charset %s does not match the file's UTF-16 byte-order mark", charset)
		}
		if !utf16BOM {
			return "", unsupported("charset utf-16 needs a byte-order mark (or say utf-16le or utf-16be)")
		}
		t, ok := decodeUTF16(b[2:], b[0] == 0xFE)
		if !ok {
			return "", notUTF16()
		}
		text = t
	case charset != "" && charset != "utf-8" && charset != "us-ascii":
		return "", unsupported("charset %s is not supported: send UTF-8, or UTF-16 with a byte-order mark", charset)
	default:
		text = string(b)
	}
	text = strings.TrimPrefix(text, "\uFEFF")
	return text, checkFileText(text)
}

// decodeUTF16 converts UTF-16 to a Go string; ok is false for an odd length or an
// unpaired surrogate (which a decoder would silently turn into U+FFFD).
func decodeUTF16(b []byte, bigEndian bool) (string, bool) {
	if len(b)%2 != 0 {
		return "", false
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		if bigEndian {
			units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			units[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	for i := 0; i < len(units); i++ {
		switch u := units[i]; {
		case u >= 0xD800 && u < 0xDC00: // a high surrogate needs a low one next
			if i+1 >= len(units) || units[i+1] < 0xDC00 || units[i+1] >= 0xE000 {
				return "", false
			}
			i++
		case u >= 0xDC00 && u < 0xE000:
			return "", false
		}
	}
	return string(utf16.Decode(units)), true
}

func notUTF16() error {
	return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "the file is not valid UTF-16", "field", "file", "reason", textcheck.ReasonInvalidUTF8)
}

// checkFileText refuses a file's text that cannot be stored.
func checkFileText(text string) error {
	reason, off, ok := textcheck.String(text)
	if ok {
		return nil
	}
	what := fmt.Sprintf("the file holds a NUL character at byte %d: it is not a text file", off)
	if reason == textcheck.ReasonInvalidUTF8 {
		what = fmt.Sprintf("the file is not UTF-8 (byte %d): send UTF-8, or UTF-16 with a byte-order mark", off)
	}
	return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, what, "field", "file", "reason", reason)
}

var byExtension = map[string]string{
	".txt": "text/plain", ".text": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown", ".json": "application/json",
	".html": "text/html", ".htm": "text/html", ".docx": extract.ContentTypeDOCX, ".pdf": extract.ContentTypePDF,
}

// formError is the client's error for a form that could not be read.
func formError(r *http.Request, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyReadError(r, err)
	}
	return apierr.New(codes.InvalidArgument, CodeMalformedRequest, "malformed multipart form: "+err.Error())
}

// decodeJSON reads a JSON request body into msg (the contract's JSON mapping) for the
// gateway's own handlers; errors are the client's (400 MALFORMED_REQUEST, 413).
func decodeJSON(r *http.Request, msg proto.Message) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyReadError(r, err)
	}
	if err := protojson.Unmarshal(body, msg); err != nil {
		return apierr.New(codes.InvalidArgument, CodeMalformedRequest, "malformed request: "+strings.TrimPrefix(err.Error(), "proto: "))
	}
	return nil
}
