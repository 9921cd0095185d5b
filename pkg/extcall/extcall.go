// Package extcall wraps every call to an external integration (retrieval providers, the
// LLM, TTS, webhooks) in the same controls: a timeout per attempt, retries with
// exponential backoff and jitter for retryable failures of idempotent calls, and a
// circuit breaker shared by the replicas.
package extcall

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/breaker"
)

// CodeTimeout is answered when an integration did not answer within EXT_CALL_TIMEOUT_MS.
const CodeTimeout = "EXTERNAL_TIMEOUT"

// Policy is the timeout and retry policy of external calls.
type Policy struct {
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Attempts is the most tries of an idempotent call (1: no retry).
	Attempts int
	// BaseBackoff and MaxBackoff bound the exponential wait between attempts; Jitter
	// (0..1) randomizes it.
	BaseBackoff, MaxBackoff time.Duration
	Jitter                  float64
}

// Config is the policy from the environment (every process parses it).
type Config struct {
	TimeoutMS       int     `env:"EXT_CALL_TIMEOUT_MS" envDefault:"15000"`
	RetryAttempts   int     `env:"EXT_RETRY_ATTEMPTS" envDefault:"3"`
	RetryBaseMS     int     `env:"EXT_RETRY_BASE_MS" envDefault:"100"`
	RetryMaxMS      int     `env:"EXT_RETRY_MAX_MS" envDefault:"2000"`
	RetryJitter     float64 `env:"EXT_RETRY_JITTER" envDefault:"0.2"`
	BreakerFailures int     `env:"CB_FAILURE_THRESHOLD" envDefault:"5"`
	BreakerOpenMS   int     `env:"CB_OPEN_MS" envDefault:"30000"`
	BreakerProbeMS  int     `env:"CB_PROBE_TIMEOUT_MS" envDefault:"15000"`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	switch {
	case c.TimeoutMS < 1:
		return fmt.Errorf("EXT_CALL_TIMEOUT_MS: must be at least 1")
	case c.RetryAttempts < 1 || c.RetryAttempts > 10:
		return fmt.Errorf("EXT_RETRY_ATTEMPTS: %d is outside 1..10", c.RetryAttempts)
	case c.RetryBaseMS < 1 || c.RetryMaxMS < c.RetryBaseMS:
		return fmt.Errorf("EXT_RETRY_BASE_MS / EXT_RETRY_MAX_MS: want 1 <= base <= max")
	case c.RetryJitter < 0 || c.RetryJitter > 1:
		return fmt.Errorf("EXT_RETRY_JITTER: %v is outside 0..1", c.RetryJitter)
	case c.BreakerFailures < 1:
		return fmt.Errorf("CB_FAILURE_THRESHOLD: must be at least 1")
	case c.BreakerOpenMS < 1 || c.BreakerProbeMS < 1:
		return fmt.Errorf("CB_OPEN_MS / CB_PROBE_TIMEOUT_MS: must be positive")
	}
	return nil
}

// Policy returns the call policy.
func (c Config) Policy() Policy {
	return Policy{Timeout: time.Duration(c.TimeoutMS) * time.Millisecond, Attempts: c.RetryAttempts,
		BaseBackoff: time.Duration(c.RetryBaseMS) * time.Millisecond, MaxBackoff: time.Duration(c.RetryMaxMS) * time.Millisecond, Jitter: c.RetryJitter}
}

// Breaker returns the breaker settings.
func (c Config) Breaker() breaker.Settings {
	return breaker.Settings{FailureThreshold: c.BreakerFailures, OpenFor: time.Duration(c.BreakerOpenMS) * time.Millisecond,
		ProbeTimeout: time.Duration(c.BreakerProbeMS) * time.Millisecond}
}

// Client calls one integration. A nil *Client calls straight through.
type Client struct {
	name    string
	policy  Policy
	breaker *breaker.Breaker // nil: no breaker
}

// New returns a client for integration name.
func New(name string, p Policy, b *breaker.Breaker) *Client {
	return &Client{name: name, policy: p, breaker: b}
}

// permanentError marks a failure that must not be retried.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying (for example: output was already streamed).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Do runs call under the policy. Idempotent calls are retried on retryable failures.
func (c *Client) Do(ctx context.Context, idempotent bool, call func(ctx context.Context) error) error {
	if c == nil {
		return unwrapPermanent(call(ctx))
	}
	attempts := c.policy.Attempts
	if !idempotent || attempts < 1 {
		attempts = 1
	}
	b := &backoff.ExponentialBackOff{InitialInterval: c.policy.BaseBackoff, RandomizationFactor: c.policy.Jitter,
		Multiplier: 2, MaxInterval: c.policy.MaxBackoff}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := c.attempt(ctx, call)
		if err != nil && !retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxTries(uint(attempts)), backoff.WithMaxElapsedTime(0))
	var pe *backoff.PermanentError
	if errors.As(err, &pe) {
		err = pe.Unwrap()
	}
	return unwrapPermanent(err)
}

// attempt makes one call: breaker first, then the call with its own timeout.
func (c *Client) attempt(ctx context.Context, call func(ctx context.Context) error) error {
	if c.breaker != nil {
		if err := c.breaker.Allow(ctx); err != nil {
			return Permanent(err)
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.policy.Timeout)
	defer cancel()
	err := call(actx)
	if err != nil && ctx.Err() == nil && actx.Err() == context.DeadlineExceeded {
		err = apierr.New(codes.Unavailable, CodeTimeout, fmt.Sprintf("%s did not answer within %s", c.name, c.policy.Timeout), "integration", c.name)
	}
	if c.breaker != nil && ctx.Err() == nil {
		c.breaker.Record(ctx, err != nil && failureOfIntegration(err))
	}
	return err
}

// retryable reports failures worth another attempt.
func retryable(err error) bool {
	var p permanentError
	if errors.As(err, &p) || errors.Is(err, context.Canceled) {
		return false
	}
	return failureOfIntegration(err)
}

// failureOfIntegration tells the integration's own failures (down, slow, overloaded) from
// answers it gave on purpose (bad request, refused credentials, not found).
func failureOfIntegration(err error) bool {
	var p permanentError
	if errors.As(err, &p) {
		err = p.err
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
		var e *apierr.Error
		return !(errors.As(err, &e) && e.Code == breaker.CodeCircuitOpen)
	}
	return false
}

func unwrapPermanent(err error) error {
	var p permanentError
	if errors.As(err, &p) {
		return p.err
	}
	return err
}
