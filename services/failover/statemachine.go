package failover

import "fmt"

// State is where a region's failover stands. Every transition is persisted and audited.
type State string

// The states of a failover (README "Failover"):
//
//	idle -> freeze_writes -> precheck -> promoting -> verification -> completed
//	             |              |            |             |
//	             +--------------+------------+-------------+--> failed -> rollback_pending -> rolled_back
//
// completed and rolled_back return to idle when the next failover starts.
const (
	StateIdle            State = "idle"
	StateFreezeWrites    State = "freeze_writes"
	StatePrecheck        State = "precheck"
	StatePromoting       State = "promoting"
	StateVerification    State = "verification"
	StateCompleted       State = "completed"
	StateFailed          State = "failed"
	StateRollbackPending State = "rollback_pending"
	StateRolledBack      State = "rolled_back"
)

// States lists every state.
var States = []State{StateIdle, StateFreezeWrites, StatePrecheck, StatePromoting, StateVerification, StateCompleted,
	StateFailed, StateRollbackPending, StateRolledBack}

// Event is what moves a failover on.
type Event string

// The events.
const (
	EventPromoteRequested  Event = "promote_requested"  // an operator asked, with a valid token
	EventWritesFrozen      Event = "writes_frozen"      // every region refuses writes
	EventFreezeFailed      Event = "freeze_failed"      // a peer could not be frozen
	EventPrecheckPassed    Event = "precheck_passed"    // replication healthy, lag within bounds
	EventPrecheckFailed    Event = "precheck_failed"    //
	EventPromoted          Event = "promoted"           // the target's database left recovery
	EventPromoteFailed     Event = "promote_failed"     //
	EventVerified          Event = "verified"           // the target accepts writes
	EventVerifyFailed      Event = "verify_failed"      //
	EventRollbackRequested Event = "rollback_requested" // an operator asked, with a valid token
	EventRollbackSucceeded Event = "rollback_succeeded" // the previous primary serves again
	EventRollbackFailed    Event = "rollback_failed"    // stays pending: try again or intervene
)

// Events lists every event.
var Events = []Event{EventPromoteRequested, EventWritesFrozen, EventFreezeFailed, EventPrecheckPassed, EventPrecheckFailed, EventPromoted, EventPromoteFailed,
	EventVerified, EventVerifyFailed, EventRollbackRequested, EventRollbackSucceeded, EventRollbackFailed}

// transitions is the whole machine: what each event does in each state. Anything absent
// is refused.
var transitions = map[State]map[Event]State{
	StateIdle:            {EventPromoteRequested: StateFreezeWrites},
	StateCompleted:       {EventPromoteRequested: StateFreezeWrites},
	StateRolledBack:      {EventPromoteRequested: StateFreezeWrites},
	StateFreezeWrites:    {EventWritesFrozen: StatePrecheck, EventFreezeFailed: StateFailed},
	StatePrecheck:        {EventPrecheckPassed: StatePromoting, EventPrecheckFailed: StateFailed},
	StatePromoting:       {EventPromoted: StateVerification, EventPromoteFailed: StateFailed},
	StateVerification:    {EventVerified: StateCompleted, EventVerifyFailed: StateFailed},
	StateFailed:          {EventRollbackRequested: StateRollbackPending},
	StateRollbackPending: {EventRollbackSucceeded: StateRolledBack, EventRollbackFailed: StateRollbackPending},
}

// Next is the pure transition function: the state an event leads to, or an error naming
// the refused move.
func Next(s State, e Event) (State, error) {
	if to, ok := transitions[s][e]; ok {
		return to, nil
	}
	return s, fmt.Errorf("a failover in state %s cannot take %s", s, e)
}

// WritesFrozen reports whether a region in state s refuses writes whatever its role: from
// the freeze until the failover completed or was rolled back.
func WritesFrozen(s State) bool {
	switch s {
	case StateIdle, StateCompleted, StateRolledBack:
		return false
	}
	return true
}
