package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/nexusrag/nexusrag/pkg/requestid"
)

// APIVersion is reported in every envelope's meta.
const APIVersion = "v1"

// Legacy (pre-v1) response headers.
const (
	sunsetDate     = "Sun, 10 May 2026 00:00:00 +0000"
	successorLink  = `</v1/docs>; rel="successor-version"`
	idempotentHdr  = "Idempotency-Key"
	replayedHeader = "Idempotent-Replayed"
)

// jsonOptions are the product's JSON conventions: snake_case names as in the protos and
// every field present.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

type meta struct {
	RequestID  string `json:"request_id"`
	APIVersion string `json:"api_version"`
}

type successEnvelope struct {
	Data json.RawMessage `json:"data"`
	Meta meta            `json:"meta"`
}

type errorBody struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Details map[string]string `json:"details"`
}

type errorEnvelope struct {
	Error errorBody `json:"error"`
	Meta  meta      `json:"meta"`
}

// reqState is the gateway's per-request bookkeeping, shared by the middlewares and the
// grpc-gateway callbacks through the request context.
type reqState struct {
	requestID    string
	legacy       bool
	route        string // matched route template, for metrics and logs
	tenant       string // set once authenticated, for the access log
	bodyLimit    int64  // the route's request body limit
	bodyTooLarge bool
}

type stateKey struct{}

func withState(ctx context.Context, st *reqState) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

func stateOf(ctx context.Context) *reqState {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{requestID: requestid.From(ctx)}
}

// wrapMessage is grpc-gateway's forward-response rewriter: it puts a unary response in
// the success envelope (v1) or leaves it bare (legacy).
func wrapMessage(ctx context.Context, msg proto.Message) (any, error) {
	st := stateOf(ctx)
	if st.legacy {
		return msg, nil
	}
	data, err := jsonOptions.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return successEnvelope{Data: data, Meta: meta{RequestID: st.requestID, APIVersion: APIVersion}}, nil
}

// writeData writes a success response built outside grpc-gateway (health, docs).
func writeData(w http.ResponseWriter, r *http.Request, status int, data any) {
	st := stateOf(r.Context())
	var body any = data
	if !st.legacy {
		raw, err := marshalData(data)
		if err != nil {
			writeError(w, r, err)
			return
		}
		body = successEnvelope{Data: raw, Meta: meta{RequestID: st.requestID, APIVersion: APIVersion}}
	}
	writeJSON(w, status, body)
}

func marshalData(data any) (json.RawMessage, error) {
	if m, ok := data.(proto.Message); ok {
		return jsonOptions.Marshal(m)
	}
	return json.Marshal(data)
}

// writeError writes err as the error envelope (v1) or the pre-v1 {"detail": {...}} shape.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, e := httpError(err)
	st := stateOf(r.Context())
	if s := e.Details["retry_after_s"]; s != "" {
		w.Header().Set("Retry-After", s)
	}
	details := e.Details
	if details == nil {
		details = map[string]string{}
	}
	if st.legacy {
		detail := map[string]string{}
		for k, v := range details {
			detail[k] = v
		}
		detail["code"], detail["message"] = e.Code, e.Message
		writeJSON(w, status, map[string]any{"detail": detail})
		return
	}
	writeJSON(w, status, errorEnvelope{
		Error: errorBody{Code: e.Code, Message: e.Message, Details: details},
		Meta:  meta{RequestID: st.requestID, APIVersion: APIVersion},
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	buf, err := json.Marshal(body)
	if err != nil {
		status, buf = http.StatusInternalServerError, []byte(`{"error":{"code":"INTERNAL","message":"internal error","details":{}}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(buf, '\n'))
}
