package gateway

import (
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

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// uploadDocument serves POST /v1/documents: a multipart form (corpus_id, file and the
// optional fields of CreateDocument) or a JSON body like /v1/documents/text. The file is
// text/plain, text/markdown or JSON {"text": ...}; its type comes from the part's
// Content-Type, or from the file name's extension when the client sent none.
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
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		return unsupported("charset %s is not supported: send UTF-8", cs)
	}
	body, err := io.ReadAll(part)
	if err != nil {
		return formError(r, err)
	}
	switch mt {
	case "text/plain", "text/markdown", "text/x-markdown":
		req.ContentType, req.Text = strings.Replace(mt, "x-", "", 1), string(body)
	case "application/json":
		var doc struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Text == nil {
			return apierr.InvalidArgument("file", `a JSON file must be an object with a "text" string`)
		}
		req.ContentType, req.Text = "text/plain", *doc.Text
	case "":
		return unsupported("the file has no content type: send text/plain, text/markdown or application/json")
	default:
		return unsupported("file type %s is not supported: send text/plain, text/markdown or application/json ({\"text\": ...})", mt)
	}
	return nil
}

var byExtension = map[string]string{
	".txt": "text/plain", ".text": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown", ".json": "application/json",
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
