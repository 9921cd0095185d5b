// Package governance is the governance service: it owns the audit log (schema
// governance) and, in later issues, retention, legal holds, DSAR and policy-as-code.
//
// Where things are: server.go (AuditService), audit.go (validation), store.go,
// migrations/.
package governance
