package svcauth

import (
	"crypto/hmac"
	"crypto/sha256"
)

// MAC authenticates msg for purpose (for example "ui-cursor") with the signing key: a
// key derived per purpose, so a MAC is never a valid token signature or another
// purpose's MAC. It returns the MAC and the key's id.
func (k *Keyring) MAC(purpose string, msg []byte) (mac []byte, kid string) {
	key, kid := k.signer()
	return macWith(key, purpose, msg), kid
}

// CheckMAC reports whether mac authenticates msg for purpose under key kid (any key of
// the ring: a MAC made before a rotation stays valid while its key is in the ring).
func (k *Keyring) CheckMAC(purpose string, msg, mac []byte, kid string) bool {
	key, ok := k.key(kid)
	return ok && hmac.Equal(mac, macWith(key, purpose, msg))
}

func macWith(key []byte, purpose string, msg []byte) []byte {
	d := hmac.New(sha256.New, key)
	d.Write([]byte(purpose))
	derived := d.Sum(nil)
	m := hmac.New(sha256.New, derived)
	m.Write(msg)
	return m.Sum(nil)
}
