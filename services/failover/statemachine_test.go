package failover_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/services/failover"
)

// TestTransitionTable: every state x every event. Each row is a state; each column the
// state an event leads to, in the order of failover.Events, "-" where it is refused.
func TestTransitionTable(t *testing.T) {
	//                 promote_req    frozen    frz_fail pre_ok     pre_fail promoted      prom_fail verified  verify_fail rollback_req     rb_ok       rb_fail
	table := `
idle               freeze_writes  -         -        -          -        -             -         -         -           -                -           -
freeze_writes      -              precheck  failed   -          -        -             -         -         -           -                -           -
precheck           -              -         -        promoting  failed   -             -         -         -           -                -           -
promoting          -              -         -        -          -        verification  failed    -         -           -                -           -
verification       -              -         -        -          -        -             -         completed failed      -                -           -
completed          freeze_writes  -         -        -          -        -             -         -         -           -                -           -
failed             -              -         -        -          -        -             -         -         -           rollback_pending -           -
rollback_pending   -              -         -        -          -        -             -         -         -           -                rolled_back rollback_pending
rolled_back        freeze_writes  -         -        -          -        -             -         -         -           -                -           -
`
	rows := 0
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		f := strings.Fields(line)
		require.Len(t, f, 1+len(failover.Events), line)
		from := failover.State(f[0])
		require.Contains(t, failover.States, from)
		for i, e := range failover.Events {
			got, err := failover.Next(from, e)
			if f[i+1] == "-" {
				require.Error(t, err, "%s + %s must be refused", from, e)
				require.Equal(t, from, got, "a refused event leaves the state as it was")
				continue
			}
			require.NoError(t, err, "%s + %s", from, e)
			require.Equal(t, failover.State(f[i+1]), got, "%s + %s", from, e)
		}
		rows++
	}
	require.Equal(t, len(failover.States), rows, "every state has a row")
}

func TestWritesFrozenFromTheFreezeUntilTheEnd(t *testing.T) {
	for _, s := range failover.States {
		want := s != failover.StateIdle && s != failover.StateCompleted && s != failover.StateRolledBack
		require.Equal(t, want, failover.WritesFrozen(s), s)
	}
}
