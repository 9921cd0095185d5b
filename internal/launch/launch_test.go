package launch

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/logging/logtest"
)

func TestReadyRecordFindsTheLineAndKeepsTheRest(t *testing.T) {
	pr, pw := io.Pipe()
	rest := &logtest.Buffer{} // ReadyRecord keeps copying to it after it returns
	go func() {
		_, _ = io.WriteString(pw, "not json\n{\"msg\":\"starting\"}\n{\"msg\":\"nexusrag ready\",\"http\":\"127.0.0.1:1\"}\n{\"msg\":\"after\"}\n")
		_ = pw.Close()
	}()
	rec, err := ReadyRecord(pr, "nexusrag ready", rest)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:1", rec["http"])
	require.Eventually(t, func() bool { return strings.Contains(rest.String(), `{"msg":"after"}`) }, 5*time.Second, time.Millisecond)
	require.True(t, strings.HasPrefix(rest.String(), "not json\n{\"msg\":\"starting\"}\n"), rest.String())
}

func TestReadyRecordOfAProcessThatExits(t *testing.T) {
	_, err := ReadyRecord(strings.NewReader("{\"msg\":\"config invalid\"}\n"), "nexusrag ready", io.Discard)
	require.ErrorContains(t, err, "exited before it was ready")
}
