package gateway

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"

	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// KeyClient authenticates API keys in a process that runs no gateway (an operator's
// grpcurl call to a split service). It asks the gateway's AuthenticateApiKey, sending the
// key id and the SHA-256 of the secret, never the secret, and remembers each answer for
// ttl: a revocation is refused here within the gateway's sync interval plus ttl (1 s +
// 1 s by default, inside the promised 5 s).
type KeyClient struct {
	auth gatewayv1.AuthServiceClient
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	answers map[string]keyAnswer // key id + secret hash -> answer
	lookups singleflight.Group
}

type keyAnswer struct {
	p     principal.Principal
	err   error
	until time.Time
}

// maxKeyAnswers bounds the client's memory under a flood of garbage keys.
const maxKeyAnswers = 10_000

// NewKeyClient returns an authenticator that asks the gateway through auth.
func NewKeyClient(auth gatewayv1.AuthServiceClient, ttl time.Duration) *KeyClient {
	return &KeyClient{auth: auth, ttl: ttl, now: time.Now, answers: map[string]keyAnswer{}}
}

// Authenticate resolves a plaintext key as KeyCache.Authenticate does.
func (c *KeyClient) Authenticate(ctx context.Context, plaintext string) (principal.Principal, error) {
	id, hash, err := parseKey(plaintext)
	if err != nil {
		return principal.Principal{}, invalidKey()
	}
	cacheKey := id + string(hash)
	now := c.now()
	c.mu.Lock()
	a, ok := c.answers[cacheKey]
	c.mu.Unlock()
	if ok && now.Before(a.until) {
		return a.p, a.err
	}
	v, err, _ := c.lookups.Do(cacheKey, func() (any, error) {
		// Detached from the caller so one canceled request does not fail the others.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		return c.ask(lctx, id, hash), nil
	})
	if err != nil {
		return principal.Principal{}, err
	}
	a = v.(keyAnswer)
	if a.until.After(now) {
		c.remember(cacheKey, a, now)
	}
	return a.p, a.err
}

// ask calls the gateway. Definite answers (a principal, AUTH_INVALID, AUTH_REVOKED) are
// kept for ttl; a gateway that cannot be reached is AUTH_UNAVAILABLE, asked again next time.
func (c *KeyClient) ask(ctx context.Context, id string, hash []byte) keyAnswer {
	res, err := c.auth.AuthenticateApiKey(ctx, &gatewayv1.AuthenticateApiKeyRequest{KeyId: id, SecretSha256: hash})
	until := c.now().Add(c.ttl)
	if err != nil {
		if e, ok := apierr.From(err); ok && (e.Code == CodeAuthInvalid || e.Code == CodeAuthRevoked) {
			return keyAnswer{err: e, until: until}
		}
		return keyAnswer{err: apierr.New(codes.Unavailable, CodeAuthUnavailable, "authentication is temporarily unavailable; retry shortly")}
	}
	role, err := principal.ParseRole(res.GetRole())
	if err != nil {
		return keyAnswer{err: invalidKey(), until: until}
	}
	scope, err := principal.NormalizeCorpusIDs(res.GetCorpusIds())
	if err != nil {
		return keyAnswer{err: invalidKey(), until: until}
	}
	return keyAnswer{p: principal.Principal{TenantID: res.GetTenantId(), KeyID: res.GetKeyId(), Role: role, CorpusIDs: scope}, until: until}
}

func (c *KeyClient) remember(cacheKey string, a keyAnswer, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.answers) >= maxKeyAnswers {
		for k, old := range c.answers {
			if !now.Before(old.until) {
				delete(c.answers, k)
			}
		}
		if len(c.answers) >= maxKeyAnswers {
			return
		}
	}
	c.answers[cacheKey] = a
}
