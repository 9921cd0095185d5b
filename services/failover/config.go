package failover

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	// Failover (README "Failover"): whether this region may be promoted, how, and its bounds.
	FailoverEnabled bool   `env:"FAILOVER_ENABLED" envDefault:"false"`
	FailoverMode    string `env:"FAILOVER_MODE" envDefault:"manual"`
	LagMaxSeconds   int64  `env:"REPLICATION_LAG_MAX_SECONDS" envDefault:"30"`
	// HealthRequired refuses a promotion (without force) when this standby does not stream.
	HealthRequired bool `env:"REPLICATION_HEALTH_REQUIRED" envDefault:"true"`
	// FreezeOnUnhealthyReplica refuses writes on a primary that no standby streams from.
	FreezeOnUnhealthyReplica bool  `env:"WRITE_FREEZE_ON_UNHEALTHY_REPLICA" envDefault:"false"`
	CooldownSeconds          int64 `env:"FAILOVER_COOLDOWN_SECONDS" envDefault:"300"`
	TokenTTLSeconds          int64 `env:"FAILOVER_TOKEN_TTL_SECONDS" envDefault:"300"`
	// PeerRegionsJSON lists the other regions: [{"region_id": "a", "grpc_addr": "host:9000"}].
	PeerRegionsJSON string `env:"PEER_REGIONS_JSON" envDefault:"[]"`
	// PlatformAdminTenants may freeze writes and fail over (the platform's operators).
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
	if c.FailoverMode != "manual" && c.FailoverMode != "assisted" {
		errs = append(errs, fmt.Errorf("FAILOVER_MODE: %q is not manual or assisted", c.FailoverMode))
	}
	if c.LagMaxSeconds < 0 || c.CooldownSeconds < 0 || c.TokenTTLSeconds < 1 || c.TokenTTLSeconds > 3600 {
		errs = append(errs, errors.New("REPLICATION_LAG_MAX_SECONDS, FAILOVER_COOLDOWN_SECONDS: at least 0; FAILOVER_TOKEN_TTL_SECONDS: 1..3600"))
	}
	if _, err := c.Peers(); err != nil {
		errs = append(errs, err)
	}
	if c.RegionID == "" || len(c.RegionID) > 64 {
		errs = append(errs, errors.New("REGION_ID: 1 to 64 characters"))
	}
	if strings.TrimSpace(c.LocalDir) == "" {
		errs = append(errs, errors.New("BACKUP_LOCAL_DIR: empty"))
	}
	return errors.Join(errs...)
}

// Peer is another region's failover service.
type Peer struct {
	RegionID string `json:"region_id"`
	GRPCAddr string `json:"grpc_addr"`
}

// Peers parses PEER_REGIONS_JSON.
func (c *Config) Peers() ([]Peer, error) {
	var peers []Peer
	dec := json.NewDecoder(strings.NewReader(c.PeerRegionsJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&peers); err != nil {
		return nil, fmt.Errorf(`PEER_REGIONS_JSON: want [{"region_id": "a", "grpc_addr": "host:9000"}]: %v`, err)
	}
	for _, p := range peers {
		if p.RegionID == "" || p.RegionID == c.RegionID {
			return nil, fmt.Errorf("PEER_REGIONS_JSON: each peer needs a region_id other than REGION_ID (%q)", c.RegionID)
		}
		if _, _, err := net.SplitHostPort(p.GRPCAddr); err != nil {
			return nil, fmt.Errorf("PEER_REGIONS_JSON: region %s: grpc_addr %q is not host:port", p.RegionID, p.GRPCAddr)
		}
	}
	return peers, nil
}
