package bulkhead_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
)

func TestBulkheadRefusesAtCapacityAndFrees(t *testing.T) {
	b := bulkhead.New("runs", 2)
	r1, err := b.Acquire()
	require.NoError(t, err)
	r2, err := b.Acquire()
	require.NoError(t, err)
	_, err = b.Acquire()
	require.ErrorIs(t, err, apierr.New(0, bulkhead.CodeServiceBusy, ""))
	require.Equal(t, 2, b.InUse())
	r1()
	r3, err := b.Acquire()
	require.NoError(t, err)
	r2()
	r3()
	require.Zero(t, b.InUse())

	var none *bulkhead.Bulkhead
	release, err := none.Acquire()
	require.NoError(t, err)
	release()
}
