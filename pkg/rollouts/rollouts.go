// Package rollouts holds the platform's kill switches and canary rollouts as every
// process sees them: a Cache that follows the ops service, checked on the paths each
// switch guards. A killed feature answers 503 FEATURE_KILLED with Retry-After; a tenant
// outside a canary answers 403 FEATURE_NOT_ENABLED naming the rollout.
package rollouts

import (
	"context"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	opsv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ops/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/follow"
)

// Kill switches: what each turns off is in README "Rollouts".
const (
	KillRun    = "kill.run"
	KillIngest = "kill.ingest"
	KillTTS    = "kill.tts"
)

// KillRetrieval is the kill switch of a retrieval provider (local_pgvector,
// aws_bedrock_kb, gcp_vertex).
func KillRetrieval(provider string) string { return "kill.retrieval." + provider }

// KillSwitches are every switch there is.
var KillSwitches = []string{KillRun, KillIngest, KillTTS,
	KillRetrieval("local_pgvector"), KillRetrieval("aws_bedrock_kb"), KillRetrieval("gcp_vertex")}

// Canary rollouts: a percentage of tenants has the feature.
const (
	// RolloutTTS: spoken answers (POST /v1/run with audio).
	RolloutTTS = "rollout.tts"
)

// Canaries are every rollout there is.
var Canaries = []string{RolloutTTS}

// CodeFeatureKilled answers a request for a killed feature.
const CodeFeatureKilled = "FEATURE_KILLED"

// RetryAfterSeconds is what a killed feature's answer suggests waiting.
const RetryAfterSeconds = 30

// Killed is the answer of a killed feature: 503 FEATURE_KILLED, Retry-After.
func Killed(key string) error {
	return apierr.New(codes.Unavailable, CodeFeatureKilled, "this feature is switched off for now by the platform's operators ("+key+"); retry later",
		"kill_switch", key, "retry_after_s", strconv.Itoa(RetryAfterSeconds))
}

// NotRolledOut is the answer to a tenant outside a canary.
func NotRolledOut(key string) error {
	return apierr.New(codes.PermissionDenied, "FEATURE_NOT_ENABLED", "this feature is not rolled out to this tenant yet ("+key+")",
		"feature_key", key, "reason", "canary")
}

// Bucket is the tenant's place (0..99) for rollout key: the same in every process and
// across restarts, and independent between rollouts.
func Bucket(key, tenant string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(tenant))
	return int(h.Sum32() % 100)
}

// State is the kill switches that are on and the canary percentages that are set.
type State struct {
	Kill   map[string]bool
	Canary map[string]int32
}

// In reports whether tenant has rollout key: its bucket is below the percentage (a
// rollout without one is everybody's).
func (s State) In(key, tenant string) bool {
	pct, ok := s.Canary[key]
	return !ok || Bucket(key, tenant) < int(pct)
}

// Checker is what the guarded paths ask.
type Checker interface {
	// Check answers Killed when key is on.
	Check(key string) error
	// Rolled answers NotRolledOut when tenant is outside canary key.
	Rolled(key, tenant string) error
}

// Cache follows the ops service's state (the whole of it, polled: a few keys). Until its
// first answer nothing is killed and every rollout is everybody's; while ops is
// unreachable the last state stays.
type Cache struct {
	client opsv1.OpsServiceClient
	log    *slog.Logger
	state  atomic.Pointer[State]
}

// NewCache is a cache over the ops service; call Run to follow it.
func NewCache(client opsv1.OpsServiceClient, log *slog.Logger) *Cache {
	c := &Cache{client: client, log: log}
	c.state.Store(&State{})
	return c
}

// Check implements Checker.
func (c *Cache) Check(key string) error {
	if c.state.Load().Kill[key] {
		return Killed(key)
	}
	return nil
}

// Rolled implements Checker.
func (c *Cache) Rolled(key, tenant string) error {
	if !c.state.Load().In(key, tenant) {
		return NotRolledOut(key)
	}
	return nil
}

// Sync reads the state once.
func (c *Cache) Sync(ctx context.Context) error {
	res, err := c.client.GetRolloutState(ctx, &opsv1.GetRolloutStateRequest{})
	if err != nil {
		return err
	}
	c.state.Store(&State{Kill: res.GetKillSwitches(), Canary: res.GetCanaryPercentages()})
	return nil
}

// Run syncs every interval until ctx ends; a failure is logged once until a sync works.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	follow.Run(ctx, interval, c.log, "rollout state", c.Sync)
}

// None is a Checker where nothing is killed and every rollout is everybody's.
var None Checker = none{}

type none struct{}

func (none) Check(string) error          { return nil }
func (none) Rolled(string, string) error { return nil }

// KnownKill and KnownCanary tell the switches and rollouts there are.
func KnownKill(key string) bool   { return slices.Contains(KillSwitches, key) }
func KnownCanary(key string) bool { return slices.Contains(Canaries, key) }
