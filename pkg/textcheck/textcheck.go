// Package textcheck finds the strings of a request that no service can store: bytes
// that are not UTF-8 (protobuf cannot even encode them) and NUL characters (PostgreSQL
// text and jsonb refuse them). Every string of a message is checked, nested messages,
// lists, maps and google.protobuf.Struct values included, and the first offender is
// named by its field path ("provider_config_json.retrieval.region", "events[2].actor_id").
package textcheck

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Reasons a string is refused.
const (
	ReasonInvalidUTF8 = "invalid_utf8"
	ReasonNUL         = "nul_character"
)

// Codes of the refusal: a token the API issued (page tokens, cursors) has its own, so
// that clients can tell a stale or mangled token from a bad field.
const (
	CodeInvalidPageToken = "INVALID_PAGE_TOKEN"
	CodeInvalidCursor    = "INVALID_CURSOR"
)

// Violation is the first string of a message that cannot be stored.
type Violation struct {
	Field  string // the field path
	Reason string // ReasonInvalidUTF8 or ReasonNUL
	Offset int    // byte offset of the offending byte in the string
}

// Message checks every string of m; nil when all can be stored.
func Message(m proto.Message) *Violation {
	if m == nil {
		return nil
	}
	return walk(m.ProtoReflect(), "")
}

// String checks one string.
func String(s string) (reason string, offset int, ok bool) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		if j := invalidAt(s[:i]); j >= 0 {
			return ReasonInvalidUTF8, j, false
		}
		return ReasonNUL, i, false
	}
	if j := invalidAt(s); j >= 0 {
		return ReasonInvalidUTF8, j, false
	}
	return "", 0, true
}

func invalidAt(s string) int {
	if utf8.ValidString(s) {
		return -1
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return i
			}
		}
	}
	return -1
}

func walk(m protoreflect.Message, prefix string) *Violation {
	var v *Violation
	plumbing := isJSONValue(m.Descriptor().FullName())
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		path := prefix
		if !plumbing {
			path = join(prefix, string(fd.Name()))
		}
		switch {
		case fd.IsMap():
			val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				elem := path + "." + key
				if fd.MapKey().Kind() == protoreflect.StringKind {
					if reason, off, ok := String(key); !ok {
						v = &Violation{Field: path, Reason: reason, Offset: off}
						return false
					}
				}
				v = value(fd.MapValue(), mv, elem)
				return v == nil
			})
		case fd.IsList():
			l := val.List()
			for i := 0; i < l.Len() && v == nil; i++ {
				v = value(fd, l.Get(i), path+"["+strconv.Itoa(i)+"]")
			}
		default:
			v = value(fd, val, path)
		}
		return v == nil
	})
	return v
}

func value(fd protoreflect.FieldDescriptor, val protoreflect.Value, path string) *Violation {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if reason, off, ok := String(val.String()); !ok {
			return &Violation{Field: path, Reason: reason, Offset: off}
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return walk(val.Message(), path)
	}
	return nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// isJSONValue names google.protobuf.Struct, Value and ListValue: their fields are the
// plumbing of the JSON they hold, left out of paths (metadata.source, not
// metadata.fields.source.string_value).
func isJSONValue(name protoreflect.FullName) bool {
	switch name {
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		return true
	}
	return false
}

// Error is the API's answer to a violation: 400 with the field named, and the code of a
// token field when the field is one.
func (v *Violation) Error() error {
	what := "contains a NUL character, which cannot be stored"
	if v.Reason == ReasonInvalidUTF8 {
		what = "is not valid UTF-8"
	}
	code := apierr.CodeInvalidArgument
	switch last := v.Field[strings.LastIndexAny(v.Field, ".]")+1:]; last {
	case "page_token":
		code = CodeInvalidPageToken
	case "cursor":
		code = CodeInvalidCursor
	}
	return apierr.New(codes.InvalidArgument, code, fmt.Sprintf("%s %s (byte %d)", v.Field, what, v.Offset),
		"field", v.Field, "reason", v.Reason)
}
