// Package apierr defines NexusRAG's domain errors: a gRPC code for transport, a stable
// string code for clients (RATE_LIMITED, LEGAL_HOLD_ACTIVE, ...), a message and details.
// Services return them as gRPC statuses carrying a google.rpc.ErrorInfo; the gateway
// turns them into HTTP statuses and the error envelope.
package apierr

import (
	"errors"
	"fmt"
	"maps"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of every NexusRAG error.
const Domain = "nexusrag.dev"

// Stable codes shared by more than one service. Service-specific codes live with the service.
const (
	CodeInvalidArgument = "INVALID_ARGUMENT"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeNotFound        = "NOT_FOUND"
	CodeInternal        = "INTERNAL"
	CodeUnavailable     = "SERVICE_UNAVAILABLE"
	CodeDeadline        = "DEADLINE_EXCEEDED"
	CodeCanceled        = "CANCELED"
	// CodePayloadTooLarge and CodeUnsupportedMediaType are raised by the gateway (request
	// bodies) and by services (documents); the gateway answers them 413 and 415.
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	// Credentials, checked at the REST edge and on every gRPC port.
	CodeAuthMissing     = "AUTH_MISSING"
	CodeAuthInvalid     = "AUTH_INVALID"
	CodeAuthRevoked     = "AUTH_REVOKED"
	CodeAuthUnavailable = "AUTH_UNAVAILABLE"
	// CodeServiceTokenInvalid refuses a call whose service token does not verify.
	CodeServiceTokenInvalid = "SERVICE_TOKEN_INVALID"
)

// Error is a domain error. The zero value is not useful; build one with New.
type Error struct {
	GRPCCode codes.Code
	Code     string
	Message  string
	// Details are safe to show to the caller: never secrets or content.
	Details map[string]string
}

// New builds an error; kv are detail key/value pairs ("field", "limit", ...).
func New(c codes.Code, code, msg string, kv ...string) *Error {
	e := &Error{GRPCCode: c, Code: code, Message: msg}
	if len(kv) > 0 {
		e.Details = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			e.Details[kv[i]] = kv[i+1]
		}
	}
	return e
}

// Newf is New with a formatted message and no details.
func Newf(c codes.Code, code, format string, args ...any) *Error {
	return New(c, code, fmt.Sprintf(format, args...))
}

// InvalidArgument reports a bad request field.
func InvalidArgument(field, msg string) *Error {
	return New(codes.InvalidArgument, CodeInvalidArgument, msg, "field", field)
}

// NotFound reports a missing resource of the caller's tenant.
func NotFound(resource, id string) *Error {
	return New(codes.NotFound, CodeNotFound, fmt.Sprintf("%s %q not found", resource, id), "resource", resource, "id", id)
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is matches errors with the same stable code, so errors.Is(err, apierr.New(..., "X", "")) works.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// GRPCStatus lets status.FromError and grpc-go see the error with its ErrorInfo.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.GRPCCode, e.Message)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.Code, Domain: Domain, Metadata: maps.Clone(e.Details)})
	if err != nil {
		return st
	}
	return withInfo
}

// From recovers the domain error in err: an *Error it wraps, or the ErrorInfo of the
// gRPC status it carries (errors from another service). ok is false when there is none.
func From(err error) (e *Error, ok bool) {
	if errors.As(err, &e) {
		return e, true
	}
	return FromStatus(status.Convert(err))
}

// FromStatus recovers the domain error carried by a status. ok is false when the status
// has no NexusRAG ErrorInfo (for example a decoding error raised by grpc-gateway itself).
func FromStatus(st *status.Status) (e *Error, ok bool) {
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.GetDomain() == Domain {
			return &Error{GRPCCode: st.Code(), Code: info.GetReason(), Message: st.Message(), Details: info.GetMetadata()}, true
		}
	}
	return &Error{GRPCCode: st.Code(), Message: st.Message()}, false
}
