package cmdout_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/cmdout"
)

func TestHeadKeepsTheFirstBytes(t *testing.T) {
	var buf bytes.Buffer
	h := &cmdout.Head{W: &buf, N: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		n, err := h.Write([]byte(s))
		require.NoError(t, err)
		require.Equal(t, len(s), n, "a write past the bound still reports it all written")
	}
	require.Equal(t, "abcde", buf.String())
}
