// Package failover is the failover service: backups of the platform's database (logical
// dumps, schema, a metadata snapshot), verified restores and restore drills, and the DR
// readiness they add up to (schema failover). The region failover control plane comes
// next.
//
// Where things are: config.go, crypto.go (encryption with age, manifest signatures with
// Ed25519), backup.go (create, list, prune), restore.go (verify, restore, drill),
// store.go (the backups and drills recorded), server.go (FailoverService), migrations/.
package failover
