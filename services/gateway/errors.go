package gateway

import (
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Codes raised by the gateway itself.
const (
	CodeRouteNotFound          = "ROUTE_NOT_FOUND"
	CodeMethodNotAllowed       = "METHOD_NOT_ALLOWED"
	CodeMalformedRequest       = "MALFORMED_REQUEST"
	CodePayloadTooLarge        = apierr.CodePayloadTooLarge
	CodeEndpointSunset         = "ENDPOINT_SUNSET"
	CodeIdempotencyKeyInvalid  = "IDEMPOTENCY_KEY_INVALID"
	CodeIdempotencyConflict    = "IDEMPOTENCY_KEY_CONFLICT"
	CodeIdempotencyInProgress  = "IDEMPOTENCY_KEY_IN_PROGRESS"
	CodeIdempotencyUnavailable = "IDEMPOTENCY_UNAVAILABLE"
)

// httpStatusOfGRPC is the one table from gRPC codes to HTTP statuses, with the stable
// code used when an error carries none of its own.
var httpStatusOfGRPC = map[codes.Code]struct {
	status int
	code   string
}{
	codes.OK:                 {http.StatusOK, ""},
	codes.Canceled:           {499, apierr.CodeCanceled},
	codes.Unknown:            {http.StatusInternalServerError, apierr.CodeInternal},
	codes.InvalidArgument:    {http.StatusBadRequest, apierr.CodeInvalidArgument},
	codes.DeadlineExceeded:   {http.StatusGatewayTimeout, apierr.CodeDeadline},
	codes.NotFound:           {http.StatusNotFound, apierr.CodeNotFound},
	codes.AlreadyExists:      {http.StatusConflict, "ALREADY_EXISTS"},
	codes.PermissionDenied:   {http.StatusForbidden, apierr.CodeForbidden},
	codes.ResourceExhausted:  {http.StatusTooManyRequests, "RESOURCE_EXHAUSTED"},
	codes.FailedPrecondition: {http.StatusConflict, "FAILED_PRECONDITION"},
	codes.Aborted:            {http.StatusConflict, "ABORTED"},
	codes.OutOfRange:         {http.StatusBadRequest, "OUT_OF_RANGE"},
	codes.Unimplemented:      {http.StatusNotImplemented, "NOT_IMPLEMENTED"},
	codes.Internal:           {http.StatusInternalServerError, apierr.CodeInternal},
	codes.Unavailable:        {http.StatusServiceUnavailable, apierr.CodeUnavailable},
	codes.DataLoss:           {http.StatusInternalServerError, apierr.CodeInternal},
	codes.Unauthenticated:    {http.StatusUnauthorized, apierr.CodeUnauthenticated},
}

// httpStatusOfCode overrides the table above for codes whose HTTP status has no gRPC twin.
var httpStatusOfCode = map[string]int{
	CodeRouteNotFound:               http.StatusNotFound,
	CodeMethodNotAllowed:            http.StatusMethodNotAllowed,
	CodePayloadTooLarge:             http.StatusRequestEntityTooLarge,
	apierr.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeEndpointSunset:              http.StatusGone,
	// A backend refusing the gateway's own credential is the platform's fault, not the client's.
	apierr.CodeServiceTokenInvalid: http.StatusBadGateway,
}

// serverSideMessages replace the text of server-side failures that carry no NexusRAG code.
var serverSideMessages = map[string]string{
	apierr.CodeUnavailable: "a backend service is unavailable; retry shortly",
	apierr.CodeDeadline:    "the request took too long",
	"NOT_IMPLEMENTED":      "not implemented",
}

// httpError resolves an error to its HTTP status and domain error. Errors without a
// NexusRAG code are given the table's code; their text is kept only for client-caused
// codes (bad input), never for internal ones.
func httpError(err error) (int, *apierr.Error) {
	e, ok := apierrOf(err)
	if !ok {
		def, known := httpStatusOfGRPC[e.GRPCCode]
		e.Code = def.code
		switch {
		case !known || e.Code == "" || e.Code == apierr.CodeInternal:
			e.GRPCCode, e.Code, e.Message = codes.Internal, apierr.CodeInternal, "internal error"
		case def.status >= 500:
			e.Message = serverSideMessages[e.Code] // a library's text may name hosts or queries
		}
	}
	if e.Code == apierr.CodeServiceTokenInvalid {
		// The reason names this deployment's keys: it is for the logs, not the client.
		e = apierr.New(codes.Unavailable, apierr.CodeServiceTokenInvalid, "a backend service refused the gateway's service credential; the operator must check SERVICE_AUTH_KEYS_FILE")
	}
	if s, ok := httpStatusOfCode[e.Code]; ok {
		return s, e
	}
	if def, ok := httpStatusOfGRPC[e.GRPCCode]; ok {
		return def.status, e
	}
	return http.StatusInternalServerError, e
}

func apierrOf(err error) (*apierr.Error, bool) { return apierr.From(err) }
