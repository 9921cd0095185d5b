package failover

import (
	"errors"
	"fmt"
	"strings"

	"github.com/robfig/cron/v3"
)

// Config is the failover service's configuration (README "Backups and restore").
type Config struct {
	// Enabled turns scheduled backups and drills on (the CLI works either way).
	Enabled  bool   `env:"BACKUP_ENABLED" envDefault:"false"`
	LocalDir string `env:"BACKUP_LOCAL_DIR" envDefault:"var/backups"`
	// Encryption: every file is encrypted with age to the X25519 identity of
	// BACKUP_ENCRYPTION_KEY ("AGE-SECRET-KEY-1..."); a comma-separated list decrypts with
	// any of them and encrypts with the first (key rotation).
	EncryptionEnabled bool   `env:"BACKUP_ENCRYPTION_ENABLED" envDefault:"false"`
	EncryptionKey     string `env:"BACKUP_ENCRYPTION_KEY"`
	// Signing: the manifest is signed with the Ed25519 key of BACKUP_SIGNING_KEY (the
	// base64 32-byte seed); a comma-separated list verifies with any and signs with the first.
	SigningEnabled bool   `env:"BACKUP_SIGNING_ENABLED" envDefault:"false"`
	SigningKey     string `env:"BACKUP_SIGNING_KEY"`
	// RequireSignature refuses to restore a backup whose manifest is not signed by a known key.
	RequireSignature bool `env:"RESTORE_REQUIRE_SIGNATURE" envDefault:"false"`
	RetentionDays    int  `env:"BACKUP_RETENTION_DAYS" envDefault:"30"`
	// Schedule is when scheduled backups run (cron, five fields, UTC).
	Schedule string `env:"BACKUP_SCHEDULE_CRON" envDefault:"0 2 * * *"`
	// The recovery objectives readiness is measured against.
	RPOSeconds int64 `env:"DR_RPO_SECONDS" envDefault:"90000"`
	RTOSeconds int64 `env:"DR_RTO_SECONDS" envDefault:"3600"`
	// RegionID names this region; RegionRole is its role until a failover changes it.
	RegionID   string `env:"REGION_ID" envDefault:"local"`
	RegionRole string `env:"REGION_ROLE" envDefault:"primary"`
	// PlatformAdminTenants may freeze writes (the platform's operators).
	PlatformAdminTenants []string `env:"PLATFORM_ADMIN_TENANTS" envSeparator:","`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	var errs []error
	if c.RetentionDays < 1 || c.RetentionDays > 36500 {
		errs = append(errs, fmt.Errorf("BACKUP_RETENTION_DAYS: %d is outside 1..36500", c.RetentionDays))
	}
	if _, err := cron.ParseStandard(c.Schedule); err != nil {
		errs = append(errs, fmt.Errorf("BACKUP_SCHEDULE_CRON: %q: %v", c.Schedule, err))
	}
	if c.EncryptionEnabled {
		if _, err := parseIdentities(c.EncryptionKey); err != nil {
			errs = append(errs, fmt.Errorf("BACKUP_ENCRYPTION_KEY: %v", err))
		}
	}
	if c.SigningEnabled || c.RequireSignature {
		if _, err := parseSigningKeys(c.SigningKey); err != nil {
			errs = append(errs, fmt.Errorf("BACKUP_SIGNING_KEY: %v", err))
		}
	}
	if c.RPOSeconds < 60 || c.RTOSeconds < 60 {
		errs = append(errs, errors.New("DR_RPO_SECONDS and DR_RTO_SECONDS: at least 60"))
	}
	if c.RegionRole != "primary" && c.RegionRole != "secondary" {
		errs = append(errs, fmt.Errorf("REGION_ROLE: %q is not primary or secondary", c.RegionRole))
	}
	if c.RegionID == "" || len(c.RegionID) > 64 {
		errs = append(errs, errors.New("REGION_ID: 1 to 64 characters"))
	}
	if strings.TrimSpace(c.LocalDir) == "" {
		errs = append(errs, errors.New("BACKUP_LOCAL_DIR: empty"))
	}
	return errors.Join(errs...)
}
