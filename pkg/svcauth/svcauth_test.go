package svcauth_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func claims(mod func(*svcauth.Claims)) svcauth.Claims {
	c := svcauth.Claims{Issuer: "gateway", Audience: "retrieval",
		Principal: &principal.Principal{TenantID: "t1", KeyID: "k1", Role: apiv1.Role_ROLE_EDITOR},
		IssuedAt:  t0, ExpiresAt: t0.Add(time.Minute)}
	if mod != nil {
		mod(&c)
	}
	return c
}

func TestVerifyRefusesWhatItMust(t *testing.T) {
	keys, stranger := svcauth.Ephemeral(), svcauth.Ephemeral()
	sign := func(k *svcauth.Keyring, c svcauth.Claims) string {
		tok, err := k.Sign(c)
		require.NoError(t, err)
		return tok
	}
	good := sign(keys, claims(nil))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":["retrieval"],"iat":1,"exp":9999999999,"tenant_id":"t2","role":"admin"}`)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	tests := []struct {
		name     string
		token    string
		audience string
		at       time.Time
		want     error
	}{
		{"valid", good, "retrieval", t0, nil},
		{"valid within the clock-skew leeway after expiry", good, "retrieval", t0.Add(time.Minute + svcauth.Leeway - time.Second), nil},
		{"replayed after expiry", good, "retrieval", t0.Add(time.Minute + svcauth.Leeway + time.Second), svcauth.ErrExpired},
		{"expired", sign(keys, claims(func(c *svcauth.Claims) { c.IssuedAt, c.ExpiresAt = t0.Add(-time.Hour), t0.Add(-time.Hour+time.Minute) })), "retrieval", t0, svcauth.ErrExpired},
		{"wrong audience", good, "governance", t0, svcauth.ErrAudience},
		{"signed by an untrusted key", sign(stranger, claims(nil)), "retrieval", t0, svcauth.ErrSignature},
		{"payload swapped under a valid signature", tampered, "retrieval", t0, svcauth.ErrSignature},
		{"alg none", none, "retrieval", t0, svcauth.ErrSignature},
		{"lifetime beyond the maximum", sign(keys, claims(func(c *svcauth.Claims) { c.ExpiresAt = t0.Add(svcauth.MaxLifetime + time.Minute) })), "retrieval", t0, svcauth.ErrLifetime},
		{"issued in the future", sign(keys, claims(func(c *svcauth.Claims) { c.IssuedAt, c.ExpiresAt = t0.Add(time.Hour), t0.Add(time.Hour+time.Minute) })), "retrieval", t0, svcauth.ErrMalformed},
		{"bad role", sign(keys, claims(func(c *svcauth.Claims) { c.Principal.Role = apiv1.Role_ROLE_UNSPECIFIED })), "retrieval", t0, svcauth.ErrMalformed},
		{"empty", "", "retrieval", t0, svcauth.ErrMalformed},
		{"an API key", "nrk_aaaaaaaaaaaaaaaa_bbbb", "retrieval", t0, svcauth.ErrMalformed},
		{"garbage", "a.b.c", "retrieval", t0, svcauth.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := keys.Verify(tt.token, tt.audience, tt.at)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, claims(nil), c)
		})
	}
}

func TestTokensWithoutPrincipal(t *testing.T) {
	keys := svcauth.Ephemeral()
	tok, err := svcauth.NewIssuer(keys, "ingest", time.Minute).Token("retrieval", nil)
	require.NoError(t, err)
	c, err := keys.Verify(tok, "retrieval", time.Now())
	require.NoError(t, err)
	require.Nil(t, c.Principal, "the service acts for itself")
	require.Equal(t, "ingest", c.Issuer)
}

func TestIssuerBoundsTheLifetime(t *testing.T) {
	keys := svcauth.Ephemeral()
	tok, err := svcauth.NewIssuer(keys, "run", time.Hour).Token("retrieval", nil)
	require.NoError(t, err)
	c, err := keys.Verify(tok, "retrieval", time.Now())
	require.NoError(t, err)
	require.Equal(t, svcauth.MaxLifetime, c.ExpiresAt.Sub(c.IssuedAt))
}

// TestIssuerReusesTokens: calls for the same principal to the same service share a
// token until half its lifetime has passed; other principals, services or signing keys
// get their own.
func TestIssuerReusesTokens(t *testing.T) {
	keys := svcauth.Ephemeral()
	now := t0
	iss := svcauth.NewIssuer(keys, "gateway", time.Minute).WithClock(func() time.Time { return now })
	alice := &principal.Principal{TenantID: "t1", KeyID: "k1", Role: apiv1.Role_ROLE_READER}
	first, err := iss.Token("retrieval", alice)
	require.NoError(t, err)
	token := func(aud string, p *principal.Principal) string {
		tok, err := iss.Token(aud, p)
		require.NoError(t, err)
		return tok
	}
	now = t0.Add(29 * time.Second)
	require.Equal(t, first, token("retrieval", alice), "reused within half its lifetime")
	require.NotEqual(t, first, token("governance", alice), "another service")
	require.NotEqual(t, first, token("retrieval", &principal.Principal{TenantID: "t2", KeyID: "k1", Role: apiv1.Role_ROLE_READER}), "another tenant")
	require.NotEqual(t, first, token("retrieval", &principal.Principal{TenantID: "t1", KeyID: "k1", Role: apiv1.Role_ROLE_ADMIN}), "another role")
	require.NotEqual(t, first, token("retrieval", nil), "the service itself")
	now = t0.Add(31 * time.Second)
	renewed := token("retrieval", alice)
	require.NotEqual(t, first, renewed, "renewed past half its lifetime")
	c, err := keys.Verify(renewed, "retrieval", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(time.Minute).Unix(), c.ExpiresAt.Unix())
}

// TestVerifiedTokensForgetRemovedKeys: a token remembered as verified stops verifying
// as soon as its key leaves the keyring.
func TestVerifiedTokensForgetRemovedKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	oldKey, newKey := svcauth.NewSecret(), svcauth.NewSecret()
	require.NoError(t, os.WriteFile(path, []byte(oldKey+"\n"), 0o600))
	keys, err := svcauth.LoadFile(path)
	require.NoError(t, err)
	tok, err := keys.Sign(claims(nil))
	require.NoError(t, err)
	_, err = keys.Verify(tok, "retrieval", t0)
	require.NoError(t, err)
	_, err = keys.Verify(tok, "retrieval", t0)
	require.NoError(t, err, "remembered")
	require.NoError(t, os.WriteFile(path, []byte(newKey+"\n"), 0o600))
	_, err = keys.Reload()
	require.NoError(t, err)
	_, err = keys.Verify(tok, "retrieval", t0)
	require.ErrorIs(t, err, svcauth.ErrSignature)
}

// TestRotationWithoutDowntime follows the runbook of ADR 0011 with two processes:
// add the new key second everywhere, move it first, then drop the old one. Calls work
// both ways after every step.
func TestRotationWithoutDowntime(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := svcauth.NewSecret(), svcauth.NewSecret()
	fileA, fileB := filepath.Join(dir, "a.keys"), filepath.Join(dir, "b.keys")
	write := func(path string, lines ...string) {
		require.NoError(t, os.WriteFile(path, []byte("# service keys\n"+strings.Join(lines, "\n")+"\n"), 0o600))
	}
	write(fileA, oldKey)
	write(fileB, oldKey)
	a, err := svcauth.LoadFile(fileA)
	require.NoError(t, err)
	b, err := svcauth.LoadFile(fileB)
	require.NoError(t, err)
	calls := func(from, to *svcauth.Keyring) error {
		tok, err := from.Sign(claims(nil))
		require.NoError(t, err)
		_, err = to.Verify(tok, "retrieval", t0)
		return err
	}
	steps := []struct {
		name string
		a, b []string
	}{
		{"both accept the new key", []string{oldKey, newKey}, []string{oldKey, newKey}},
		{"a signs with it first", []string{newKey, oldKey}, []string{oldKey, newKey}},
		{"b too", []string{newKey, oldKey}, []string{newKey, oldKey}},
		{"the old key is dropped", []string{newKey}, []string{newKey}},
	}
	for _, st := range steps {
		write(fileA, st.a...)
		write(fileB, st.b...)
		for _, k := range []*svcauth.Keyring{a, b} {
			_, err := k.Reload()
			require.NoError(t, err, st.name)
		}
		require.NoError(t, calls(a, b), st.name)
		require.NoError(t, calls(b, a), st.name)
	}
	old, err := svcauth.FromSecrets([]string{oldKey})
	require.NoError(t, err)
	require.ErrorIs(t, calls(old, a), svcauth.ErrSignature, "the dropped key no longer verifies")
}

func TestReloadKeepsKeysOnABadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(path, []byte(svcauth.NewSecret()+"\n"), 0o600))
	k, err := svcauth.LoadFile(path)
	require.NoError(t, err)
	kid := k.KeyID()
	changed, err := k.Reload()
	require.NoError(t, err)
	require.False(t, changed, "same contents")
	require.NoError(t, os.WriteFile(path, []byte("not base64 !\n"), 0o600))
	_, err = k.Reload()
	require.ErrorContains(t, err, "line 1: not base64")
	require.Equal(t, kid, k.KeyID(), "the previous key stays in use")
}

func TestParseKeysNamesWhatIsWrong(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "no key"},
		{"# only a comment\n\n", "no key"},
		{"c2hvcnQ", "line 1: a key must hold at least 32 bytes, this one holds 5"},
		{svcauth.NewSecret() + "\n%%%", "line 2: not base64"},
	}
	for _, tt := range tests {
		_, err := svcauth.ParseKeys([]byte(tt.in))
		require.ErrorContains(t, err, tt.want, tt.in)
	}
	keys, err := svcauth.ParseKeys([]byte(svcauth.NewSecret() + "  # signing\n\n" + base64.StdEncoding.EncodeToString(make([]byte, 48)) + "\n"))
	require.NoError(t, err)
	require.Len(t, keys, 2, "URL or standard alphabet, padded or not, comments and blank lines ignored")
	_, err = svcauth.LoadFile(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "missing")
}

func FuzzVerify(f *testing.F) {
	keys := svcauth.Ephemeral()
	good, err := keys.Sign(claims(nil))
	require.NoError(f, err)
	for _, s := range []string{good, "", "a.b.c", "nrk_x", good + "x", strings.Repeat(".", 100), "eyJhbGciOiJub25lIn0.e30."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := keys.Verify(tok, "retrieval", t0)
		if err == nil && tok != good {
			// Only a token this keyring signed verifies; a mutation of the good one may
			// still decode to the same bytes (base64 padding bits), never to other claims.
			require.Equal(t, claims(nil), c, "accepted a token the keyring did not sign: %q", tok)
		}
	})
}

func BenchmarkSignAndVerify(b *testing.B) {
	keys := svcauth.Ephemeral()
	iss := svcauth.NewIssuer(keys, "gateway", time.Minute)
	p := &principal.Principal{TenantID: "t1", KeyID: "k1", Role: apiv1.Role_ROLE_READER}
	for b.Loop() {
		tok, err := iss.Token("retrieval", p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := keys.Verify(tok, "retrieval", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTokensCarryTheCorpusScope(t *testing.T) {
	keys := svcauth.Ephemeral()
	scoped := claims(func(c *svcauth.Claims) { c.Principal.CorpusIDs = []string{"a", "b"} })
	tok, err := keys.Sign(scoped)
	require.NoError(t, err)
	got, err := keys.Verify(tok, "retrieval", t0)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got.Principal.CorpusIDs)

	tok, err = keys.Sign(claims(nil))
	require.NoError(t, err)
	got, err = keys.Verify(tok, "retrieval", t0)
	require.NoError(t, err)
	require.Empty(t, got.Principal.CorpusIDs, "an unscoped principal stays unscoped")

	bad, err := keys.Sign(claims(func(c *svcauth.Claims) { c.Principal.CorpusIDs = []string{"a", "a"} }))
	require.NoError(t, err)
	_, err = keys.Verify(bad, "retrieval", t0)
	require.ErrorIs(t, err, svcauth.ErrMalformed)

	// A key whose scope changes gets a new token, not the one cached for its old scope.
	iss := svcauth.NewIssuer(keys, "gateway", time.Minute).WithClock(func() time.Time { return t0 })
	p := principal.Principal{TenantID: "t1", KeyID: "k1", Role: apiv1.Role_ROLE_READER, CorpusIDs: []string{"a"}}
	first, err := iss.Token("retrieval", &p)
	require.NoError(t, err)
	p.CorpusIDs = []string{"b"}
	second, err := iss.Token("retrieval", &p)
	require.NoError(t, err)
	require.NotEqual(t, first, second)
	got, err = keys.Verify(second, "retrieval", t0)
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, got.Principal.CorpusIDs)
}
