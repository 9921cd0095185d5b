package rollouts_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/rollouts"
)

// A tenant's bucket is fixed (golden values: the same in every process, release and
// restart), and a percentage takes about that share of tenants.
func TestBucketsAreStableAndProportional(t *testing.T) {
	require.Equal(t, rollouts.Bucket("rollout.tts", "t1"), rollouts.Bucket("rollout.tts", "t1"))
	golden := map[string]int{"t1": rollouts.Bucket("rollout.tts", "t1"), "acme": rollouts.Bucket("rollout.tts", "acme")}
	require.Equal(t, map[string]int{"t1": 20, "acme": 49}, golden, "changing the hash moves tenants in and out of every canary")

	st := rollouts.State{Canary: map[string]int32{"rollout.tts": 5}}
	in, differ := 0, 0
	for i := range 10_000 {
		tenant := fmt.Sprintf("tenant-%d", i)
		if st.In("rollout.tts", tenant) {
			in++
		}
		if rollouts.Bucket("rollout.tts", tenant) != rollouts.Bucket("rollout.other", tenant) {
			differ++
		}
	}
	require.InDelta(t, 500, in, 100, "5 %% of 10,000 tenants")
	require.Greater(t, differ, 9_000, "rollouts bucket independently")
	require.True(t, rollouts.State{}.In("rollout.tts", "anyone"), "a rollout without a percentage is everybody's")
	require.False(t, rollouts.State{Canary: map[string]int32{"rollout.tts": 0}}.In("rollout.tts", "t1"))
}

func TestKilledAnswers503WithRetryAfter(t *testing.T) {
	e, ok := apierr.From(rollouts.Killed(rollouts.KillRun))
	require.True(t, ok)
	require.Equal(t, rollouts.CodeFeatureKilled, e.Code)
	require.Equal(t, "kill.run", e.Details["kill_switch"])
	require.Equal(t, "30", e.Details["retry_after_s"])
	require.NoError(t, rollouts.None.Check(rollouts.KillRun))
}
