package gateway

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// TestUploadText: the encodings an uploaded file may use, and what is refused.
func TestUploadText(t *testing.T) {
	utf16le := []byte{0xFF, 0xFE, 'h', 0, 0xE9, 0, '!', 0}
	utf16be := []byte{0xFE, 0xFF, 0, 'h', 0, 0xE9, 0, '!'}
	tests := []struct {
		name    string
		body    []byte
		charset string
		want    string
		code    string
	}{
		{"utf-8", []byte("héllo"), "", "héllo", ""},
		{"utf-8 with a byte-order mark", []byte("\uFEFFhéllo"), "utf-8", "héllo", ""},
		{"us-ascii", []byte("hello"), "us-ascii", "hello", ""},
		{"utf-16le with a byte-order mark", utf16le, "", "hé!", ""},
		{"utf-16be with a byte-order mark", utf16be, "", "hé!", ""},
		{"utf-16le declared", []byte{'h', 0, 0xE9, 0}, "utf-16le", "hé", ""},
		{"latin-1", []byte("h\xe9llo"), "", "", apierr.CodeInvalidArgument},
		{"a NUL character", []byte("hel\x00lo"), "", "", apierr.CodeInvalidArgument},
		{"a binary file", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "", "", apierr.CodeInvalidArgument},
		{"odd utf-16", []byte{0xFF, 0xFE, 'h'}, "", "", apierr.CodeInvalidArgument},
		{"an unpaired surrogate", []byte{0xFF, 0xFE, 0x00, 0xD8, 'h', 0}, "", "", apierr.CodeInvalidArgument},
		{"a surrogate pair", []byte{0xFF, 0xFE, 0x3D, 0xD8, 0x00, 0xDE}, "", "😀", ""},
		{"an unsupported charset", []byte("hello"), "iso-8859-1", "", apierr.CodeUnsupportedMediaType},
		{"a charset against the mark", utf16le, "utf-8", "", apierr.CodeUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := uploadText(tt.body, tt.charset)
			if tt.code == "" {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			e, ok := apierr.From(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, tt.code, e.Code, e.Message)
			if tt.code == apierr.CodeInvalidArgument {
				require.Equal(t, "file", e.Details["field"])
			}
		})
	}
}
