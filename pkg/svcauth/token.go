package svcauth

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Bounds every verifier applies, whatever the issuer's configuration.
const (
	// Leeway absorbs clock skew between processes when checking iat and exp.
	Leeway = 5 * time.Second
	// MaxLifetime refuses tokens issued for longer than this, so that a leaked token, or
	// one minted by a misconfigured process, is useless within minutes.
	MaxLifetime = 5 * time.Minute
)

// Reasons a token is refused. Errors returned by Verify wrap one of them.
var (
	ErrMalformed = errors.New("malformed service token")
	ErrSignature = errors.New("service token signature does not verify against a key of this process")
	ErrExpired   = errors.New("service token expired")
	ErrAudience  = errors.New("service token is for another service")
	ErrLifetime  = errors.New("service token lifetime exceeds the maximum")
)

// Claims are what a token asserts.
type Claims struct {
	// Issuer names the calling process (the services it runs).
	Issuer string
	// Audience is the service the token is for (retrieval, governance, ...).
	Audience string
	// Principal is the end user the call acts for; nil when the service acts for itself.
	Principal *principal.Principal
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// tokenClaims is the JWT body.
type tokenClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tenant_id,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	Role     string `json:"role,omitempty"`
	// CorpusIDs is the principal's corpus scope; absent means every corpus.
	CorpusIDs []string `json:"corpus_ids,omitempty"`
}

// Sign issues a token for c with the keyring's signing key.
func (k *Keyring) Sign(c Claims) (string, error) {
	priv, kid := k.signer()
	tc := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: c.Issuer, Audience: jwt.ClaimStrings{c.Audience},
			IssuedAt: jwt.NewNumericDate(c.IssuedAt), ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
	}
	if p := c.Principal; p != nil {
		tc.TenantID, tc.KeyID, tc.Role = p.TenantID, p.KeyID, principal.RoleName(p.Role)
		tc.CorpusIDs = p.CorpusIDs
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, tc)
	t.Header["kid"] = kid
	s, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign service token: %w", err)
	}
	return s, nil
}

// Verify checks a token's signature against the keyring's keys, its audience, its
// expiry (at now, within Leeway) and its lifetime, and returns its claims. A token
// verified once is remembered until it expires (callers reuse theirs, see Issuer), so
// that only its expiry and audience are checked again.
func (k *Keyring) Verify(token, audience string, now time.Time) (Claims, error) {
	if c, ok := k.remembered(token); ok {
		switch {
		case now.After(c.ExpiresAt.Add(Leeway)):
			return Claims{}, ErrExpired
		case c.Audience != audience:
			return Claims{}, ErrAudience
		}
		return c, nil
	}
	gen := k.generation()
	c, err := k.verify(token, audience, now)
	if err == nil {
		k.remember(token, c, now, gen)
	}
	return c, err
}

func (k *Keyring) verify(token, audience string, now time.Time) (Claims, error) {
	var tc tokenClaims
	_, err := jwt.ParseWithClaims(token, &tc, k.keyFor,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(audience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return Claims{}, classify(err)
	}
	if tc.IssuedAt == nil || tc.ExpiresAt.Sub(tc.IssuedAt.Time) > MaxLifetime {
		return Claims{}, ErrLifetime
	}
	c := Claims{Issuer: tc.Issuer, Audience: audience, IssuedAt: tc.IssuedAt.UTC(), ExpiresAt: tc.ExpiresAt.UTC()}
	if tc.TenantID != "" {
		role, err := principal.ParseRole(tc.Role)
		if err != nil {
			return Claims{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		scope, err := principal.NormalizeCorpusIDs(tc.CorpusIDs)
		if err != nil {
			return Claims{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		c.Principal = &principal.Principal{TenantID: tc.TenantID, KeyID: tc.KeyID, Role: role, CorpusIDs: scope}
	}
	return c, nil
}

func (k *Keyring) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	key, ok := k.key(kid)
	if !ok {
		return nil, fmt.Errorf("%w (unknown key id %q)", ErrSignature, kid)
	}
	return key, nil
}

// classify maps the JWT library's errors to this package's reasons.
func classify(err error) error {
	switch {
	case errors.Is(err, ErrSignature):
		return err
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: issued in the future", ErrMalformed)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// Issuer mints the tokens of one process. A token serves every call to the same service
// for the same principal until half its lifetime has passed: signing per call would cost
// every hop a JWT encoding here and a decoding at the receiver (ADR 0011).
type Issuer struct {
	keys *Keyring
	name string
	ttl  time.Duration
	now  func() time.Time

	mu     sync.Mutex
	tokens map[string]issued // audience, principal and signing key -> token
}

type issued struct {
	token   string
	renewAt time.Time
}

// NewIssuer returns an issuer named name (the calling process) whose tokens live ttl
// (bounded by MaxLifetime).
func NewIssuer(keys *Keyring, name string, ttl time.Duration) *Issuer {
	return &Issuer{keys: keys, name: name, ttl: min(ttl, MaxLifetime), now: time.Now, tokens: map[string]issued{}}
}

// WithClock makes the issuer read time from now (tests).
func (i *Issuer) WithClock(now func() time.Time) *Issuer {
	i.now = now
	return i
}

// Keys is the keyring the issuer signs with.
func (i *Issuer) Keys() *Keyring { return i.keys }

// Token returns a token for calls to audience acting for p (nil: for the service itself).
func (i *Issuer) Token(audience string, p *principal.Principal) (string, error) {
	now := i.now()
	key := audience + "\x00" + i.keys.KeyID()
	if p != nil {
		// The scope is part of the key: a key whose corpora change gets a new token at once.
		key += "\x00" + p.TenantID + "\x00" + p.KeyID + "\x00" + p.Role.String() + "\x00" + strings.Join(p.CorpusIDs, ",")
	}
	i.mu.Lock()
	t, ok := i.tokens[key]
	i.mu.Unlock()
	if ok && now.Before(t.renewAt) {
		return t.token, nil
	}
	token, err := i.keys.Sign(Claims{Issuer: i.name, Audience: audience, Principal: p, IssuedAt: now, ExpiresAt: now.Add(i.ttl)})
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.tokens) >= maxRemembered {
		clear(i.tokens) // tokens are cheap to sign again; memory stays bounded
	}
	i.tokens[key] = issued{token: token, renewAt: now.Add(i.ttl / 2)}
	return token, nil
}
