package failover

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// Key formats (ADR 0021):
//   - encryption: an age X25519 identity, "AGE-SECRET-KEY-1..." (age-keygen's format); files
//     are encrypted to its recipient with age's streaming, authenticated format
//     (ChaCha20-Poly1305 per 64 KiB chunk), so a flipped byte fails decryption.
//   - signing: the base64 of a 32-byte Ed25519 seed; the manifest's signature is Ed25519
//     over its exact bytes, in manifest.sig with the signing key's id.
//
// Either setting may list several keys separated by commas: the first encrypts or signs,
// every one decrypts or verifies (rotation: add the new key second, move it first, drop
// the old one once no backup needs it).

func splitKeys(s string) []string {
	var out []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func parseIdentities(s string) ([]*age.X25519Identity, error) {
	var out []*age.X25519Identity
	for _, k := range splitKeys(s) {
		id, err := age.ParseX25519Identity(k)
		if err != nil {
			return nil, errors.New("not an age X25519 identity (AGE-SECRET-KEY-1...; make one with `nexusrag backup keygen`)")
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, errors.New("empty: set an age identity (`nexusrag backup keygen`)")
	}
	return out, nil
}

func parseSigningKeys(s string) ([]ed25519.PrivateKey, error) {
	var out []ed25519.PrivateKey
	for _, k := range splitKeys(s) {
		seed, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, errors.New("not the base64 of a 32-byte Ed25519 seed (make one with `nexusrag backup keygen`)")
		}
		out = append(out, ed25519.NewKeyFromSeed(seed))
	}
	if len(out) == 0 {
		return nil, errors.New("empty: set a signing key (`nexusrag backup keygen`)")
	}
	return out, nil
}

// NewEncryptionKey returns a fresh age identity for BACKUP_ENCRYPTION_KEY.
func NewEncryptionKey() (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// NewSigningKey returns a fresh Ed25519 seed for BACKUP_SIGNING_KEY.
func NewSigningKey() (string, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(seed), nil
}

// KeyID names a signing key by its public half (never the secret).
func KeyID(k ed25519.PrivateKey) string {
	sum := sha256.Sum256(k.Public().(ed25519.PublicKey))
	return hex.EncodeToString(sum[:8])
}

// keys holds the parsed keys of a configuration.
type keys struct {
	identities []*age.X25519Identity
	signers    []ed25519.PrivateKey
}

func loadKeys(c Config) (keys, error) {
	var k keys
	var err error
	if strings.TrimSpace(c.EncryptionKey) != "" || c.EncryptionEnabled {
		if k.identities, err = parseIdentities(c.EncryptionKey); err != nil {
			return k, fmt.Errorf("BACKUP_ENCRYPTION_KEY: %w", err)
		}
	}
	if strings.TrimSpace(c.SigningKey) != "" || c.SigningEnabled || c.RequireSignature {
		if k.signers, err = parseSigningKeys(c.SigningKey); err != nil {
			return k, fmt.Errorf("BACKUP_SIGNING_KEY: %w", err)
		}
	}
	return k, nil
}

// encrypt wraps w: what is written to the result is encrypted to the first identity.
func (k keys) encrypt(w io.Writer) (io.WriteCloser, error) {
	return age.Encrypt(w, k.identities[0].Recipient())
}

// decrypt wraps r with any of the identities.
func (k keys) decrypt(r io.Reader) (io.Reader, error) {
	if len(k.identities) == 0 {
		return nil, errors.New("the backup is encrypted and BACKUP_ENCRYPTION_KEY is not set")
	}
	ids := make([]age.Identity, len(k.identities))
	for i, id := range k.identities {
		ids[i] = id
	}
	out, err := age.Decrypt(r, ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, errors.New("none of the keys in BACKUP_ENCRYPTION_KEY decrypts it (wrong key)")
		}
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return out, nil
}

// sign signs the manifest's bytes with the first key: "<key id> <base64 signature>\n".
func (k keys) sign(manifest []byte) []byte {
	s := ed25519.Sign(k.signers[0], manifest)
	return []byte(KeyID(k.signers[0]) + " " + base64.StdEncoding.EncodeToString(s) + "\n")
}

// verify checks a manifest's signature file against the known keys and returns the key id.
func (k keys) verify(manifest, sig []byte) (string, error) {
	id, b64, ok := strings.Cut(strings.TrimSpace(string(sig)), " ")
	if !ok {
		return "", errors.New("manifest.sig is malformed")
	}
	s, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", errors.New("manifest.sig is malformed")
	}
	for _, key := range k.signers {
		if KeyID(key) == id {
			if !ed25519.Verify(key.Public().(ed25519.PublicKey), manifest, s) {
				return "", fmt.Errorf("the manifest's signature does not verify with key %s: the manifest was changed", id)
			}
			return id, nil
		}
	}
	return "", fmt.Errorf("the manifest is signed by key %s, which is not in BACKUP_SIGNING_KEY", id)
}
