package failover

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	failoverv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/failover/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
)

// Recorder audits.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.failover.v1.FailoverService and runs the backup tasks.
type Server struct {
	failoverv1.UnimplementedFailoverServiceServer
	maintenance *maintenance.Runner // nil: RunFailoverMaintenance answers unavailable
	cfg         Config
	backups     *Backups
	store       *Store
	holds       governancev1.LegalHoldServiceClient
	audit       Recorder
	log         *slog.Logger
	now         func() time.Time
	// The control plane's Redis (keys under prefix) and the other regions.
	rdb    redis.UniversalClient
	prefix string
	peers  map[string]failoverv1.FailoverServiceClient
}

// NewServer returns the service over the database at dbURL; holds answers the legal holds
// of backup sets.
func NewServer(cfg Config, dbURL string, store *Store, holds governancev1.LegalHoldServiceClient, rec Recorder, log *slog.Logger) (*Server, error) {
	b, err := NewBackups(cfg, dbURL)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, backups: b, store: store, holds: holds, audit: rec, log: log, now: time.Now}, nil
}

// Backups is the server's backup maker (the CLI drives it).
func (s *Server) Backups() *Backups { return s.backups }

// CreateBackup makes a set, records it and audits it.
func (s *Server) CreateBackup(ctx context.Context, typ string) (Manifest, string, error) {
	m, dir, err := s.backups.Create(ctx, typ)
	if err != nil {
		return m, dir, err
	}
	sum, _, err := hashFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return m, dir, err
	}
	_, sigErr := os.Stat(filepath.Join(dir, "manifest.sig"))
	if err := s.store.RecordBackup(ctx, m, dir, sigErr == nil, sum); err != nil {
		return m, dir, fmt.Errorf("record backup %s: %w", m.BackupID, err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeBackupCreated, Outcome: audit.OutcomeSuccess, ActorType: audit.ActorSystem, ResourceType: "backup_set",
		ResourceID: m.BackupID, Metadata: map[string]any{"type": typ, "encrypted": m.Encrypted, "signed": sigErr == nil, "files": len(m.Files)}})
	return m, dir, nil
}

// RestoreBackup restores (or dry-runs) a set and audits the outcome.
func (s *Server) RestoreBackup(ctx context.Context, opts RestoreOptions) (RestoreReport, error) {
	rep, err := s.backups.Restore(ctx, opts)
	if !opts.DryRun {
		outcome := audit.OutcomeSuccess
		md := map[string]any{"components": strings.Join(rep.Components, ","), "verified_tables": rep.Verified}
		if err != nil {
			outcome, md["reason"] = audit.OutcomeFailure, firstLine(err.Error())
		}
		s.audit.Record(ctx, audit.Event{Type: audit.TypeBackupRestored, Outcome: outcome, ActorType: audit.ActorSystem, ResourceType: "backup_set",
			ResourceID: rep.BackupID, Metadata: md})
	}
	return rep, err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s[:min(len(s), 200)]
}

// Prune deletes the sets past BACKUP_RETENTION_DAYS that no legal hold keeps.
func (s *Server) Prune(ctx context.Context) (deleted, kept []string, err error) {
	res, err := s.holds.ListHeldScopes(ctx, &governancev1.ListHeldScopesRequest{ScopeType: "backup_set"})
	if err != nil {
		return nil, nil, fmt.Errorf("legal holds of backup sets (nothing is pruned without them): %w", err)
	}
	held := res.GetScopeIds()
	deleted, kept, err = s.backups.Prune(s.now(), func(id string) (bool, error) { return slices.Contains(held, id), nil })
	if len(deleted) > 0 {
		if merr := s.store.MarkPruned(ctx, deleted); merr != nil && err == nil {
			err = merr
		}
		for _, id := range deleted {
			s.audit.Record(ctx, audit.Event{Type: audit.TypeBackupPruned, Outcome: audit.OutcomeSuccess, ActorType: audit.ActorSystem, ResourceType: "backup_set", ResourceID: id})
		}
	}
	return deleted, kept, err
}

// Drill restores the newest set holding the database into a scratch database, compares
// every table with the set's snapshot, records the result and drops the scratch database.
func (s *Server) Drill(ctx context.Context) (RestoreReport, error) {
	sets, err := s.backups.List()
	if err != nil {
		return RestoreReport{}, err
	}
	i := slices.IndexFunc(sets, func(l Listed) bool { return l.Type == "all" || l.Type == "db" })
	if i < 0 {
		return RestoreReport{}, fmt.Errorf("no backup set with the database in %s: make one first (nexusrag backup create --type all)", s.cfg.LocalDir)
	}
	set := sets[i]
	started := s.now()
	scratch, err := scratchURL(s.backups.dbURL, started)
	if err != nil {
		return RestoreReport{}, err
	}
	defer dropDatabase(context.WithoutCancel(ctx), scratch, s.log)
	rep, err := s.backups.Restore(ctx, RestoreOptions{Manifest: filepath.Join(set.Dir, "manifest.json"), TargetURL: scratch})
	detail := fmt.Sprintf("restored %s into a scratch database; %d tables match the snapshot's rows and checksums", set.BackupID, rep.Verified)
	if err != nil {
		detail = firstLine(err.Error())
	}
	took := s.now().Sub(started)
	if rerr := s.store.RecordDrill(ctx, set.BackupID, err == nil, detail, started, took); rerr != nil && err == nil {
		err = rerr
	}
	outcome := audit.OutcomeSuccess
	if err != nil {
		outcome = audit.OutcomeFailure
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeRestoreDrill, Outcome: outcome, ActorType: audit.ActorSystem, ResourceType: "backup_set", ResourceID: set.BackupID,
		Metadata: map[string]any{"duration_ms": took.Milliseconds(), "verified_tables": rep.Verified}})
	return rep, err
}

// scratchURL names a drill's database after the source's.
func scratchURL(dbURL string, at time.Time) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/" + name[:min(len(name), 30)] + "_drill_" + fmt.Sprint(at.UnixNano())
	return u.String(), nil
}

func dropDatabase(ctx context.Context, dbURL string, log *slog.Logger) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		log.Warn("drill database not dropped", "database", name, "err", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		log.Warn("drill database not dropped", "database", name, "err", err)
	}
}

// Tasks are the failover service's maintenance tasks.
func (s *Server) Tasks() []maintenance.Task {
	return []maintenance.Task{
		{Name: "backup_create_scheduled", Run: func(ctx context.Context) (maintenance.Result, error) {
			m, dir, err := s.CreateBackup(ctx, "all")
			if err != nil {
				return maintenance.Result{}, err
			}
			return maintenance.Result{Affected: 1, Detail: fmt.Sprintf("backup %s in %s (encrypted: %t)", m.BackupID, dir, m.Encrypted)}, nil
		}},
		{Name: "backup_prune_retention", Run: func(ctx context.Context) (maintenance.Result, error) {
			deleted, kept, err := s.Prune(ctx)
			detail := fmt.Sprintf("deleted %d backup sets older than BACKUP_RETENTION_DAYS (%d days)", len(deleted), s.cfg.RetentionDays)
			if len(kept) > 0 {
				detail += fmt.Sprintf("; kept %s under legal hold", strings.Join(kept, ", "))
			}
			return maintenance.Result{Affected: int64(len(deleted)), Detail: detail}, err
		}},
		{Name: "restore_drill_scheduled", Run: func(ctx context.Context) (maintenance.Result, error) {
			rep, err := s.Drill(ctx)
			if err != nil {
				return maintenance.Result{}, err
			}
			return maintenance.Result{Affected: int64(rep.Verified), Detail: fmt.Sprintf("restored %s in %s; %d tables match", rep.BackupID, rep.Duration.Round(time.Millisecond), rep.Verified)}, nil
		}},
	}
}

// WithMaintenance sets the runner of this service's maintenance tasks.
func (s *Server) WithMaintenance(r *maintenance.Runner) *Server {
	s.maintenance = r
	return s
}

// RunFailoverMaintenance runs a backup task now (internal: ops).
func (s *Server) RunFailoverMaintenance(ctx context.Context, req *failoverv1.RunFailoverMaintenanceRequest) (*failoverv1.RunFailoverMaintenanceResponse, error) {
	run, err := s.maintenance.OnDemand(ctx, req.GetTask())
	if err != nil {
		return nil, err
	}
	return &failoverv1.RunFailoverMaintenanceResponse{Run: run}, nil
}

// RunSchedule runs the backup tasks on BACKUP_SCHEDULE_CRON (one replica per round)
// while BACKUP_ENABLED, until ctx ends.
func (s *Server) RunSchedule(ctx context.Context) {
	if !s.cfg.Enabled || s.maintenance == nil {
		return
	}
	sched, err := cron.ParseStandard(s.cfg.Schedule)
	if err != nil {
		return // validated at start
	}
	for {
		next := sched.Next(s.now())
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// The claim lasts until the round after: one replica runs each round.
		s.maintenance.Tick(ctx, max(time.Minute, sched.Next(next).Sub(next)))
	}
}

// GetDrReadiness measures the last backup and drill against the objectives.
func (s *Server) GetDrReadiness(ctx context.Context, _ *failoverv1.GetDrReadinessRequest) (*failoverv1.GetDrReadinessResponse, error) {
	now := s.now()
	out := &failoverv1.GetDrReadinessResponse{BackupsEnabled: s.cfg.Enabled, EncryptionEnabled: s.cfg.EncryptionEnabled, SigningEnabled: s.cfg.SigningEnabled,
		RpoSeconds: s.cfg.RPOSeconds, RtoSeconds: s.cfg.RTOSeconds, GeneratedAt: timestamppb.New(now)}
	last, dir, err := s.store.lastBackup(ctx)
	if err != nil {
		return nil, err
	}
	out.LastBackup = last
	if out.LastDrill, err = s.store.lastDrill(ctx, false); err != nil {
		return nil, err
	}
	okDrill, err := s.store.lastDrill(ctx, true)
	if err != nil {
		return nil, err
	}
	notReady, atRisk := []string{}, []string{}
	if !s.cfg.Enabled {
		atRisk = append(atRisk, "BACKUP_ENABLED is false: no scheduled backups or drills")
	}
	switch b := out.LastBackup; {
	case b == nil:
		notReady = append(notReady, "no backup of the database exists")
	case !setIntact(dir, b.GetManifestSha256()):
		notReady = append(notReady, fmt.Sprintf("the last backup %s is recorded, but its manifest in %s is missing or changed", b.GetBackupId(), dir))
	default:
		out.LastBackupAgeSeconds = int64(now.Sub(b.GetCreatedAt().AsTime()).Seconds())
		if out.LastBackupAgeSeconds > 2*s.cfg.RPOSeconds {
			notReady = append(notReady, fmt.Sprintf("the last backup is %s old, over twice the RPO (%s)", span(out.LastBackupAgeSeconds), span(s.cfg.RPOSeconds)))
		} else if out.LastBackupAgeSeconds > s.cfg.RPOSeconds {
			atRisk = append(atRisk, fmt.Sprintf("the last backup is %s old, over the RPO (%s)", span(out.LastBackupAgeSeconds), span(s.cfg.RPOSeconds)))
		}
	}
	switch {
	case okDrill == nil:
		atRisk = append(atRisk, "no restore drill has succeeded: the backups are not proven to restore")
	default:
		out.LastSuccessfulDrillAgeSeconds = int64(now.Sub(okDrill.GetStartedAt().AsTime()).Seconds())
		if out.LastSuccessfulDrillAgeSeconds > 7*24*3600 {
			atRisk = append(atRisk, fmt.Sprintf("the last successful drill is %s old (over 7 days)", span(out.LastSuccessfulDrillAgeSeconds)))
		}
		if okDrill.GetDurationMs() > s.cfg.RTOSeconds*1000 {
			atRisk = append(atRisk, fmt.Sprintf("the last drill's restore took %s, over the RTO (%s)", span(okDrill.GetDurationMs()/1000), span(s.cfg.RTOSeconds)))
		}
	}
	if d := out.LastDrill; d != nil && !d.GetOk() {
		atRisk = append(atRisk, "the last restore drill failed: "+d.GetDetail())
	}
	if !s.cfg.EncryptionEnabled {
		atRisk = append(atRisk, "backups are not encrypted (BACKUP_ENCRYPTION_ENABLED)")
	}
	if !s.cfg.SigningEnabled {
		atRisk = append(atRisk, "backups are not signed (BACKUP_SIGNING_ENABLED)")
	}
	switch {
	case len(notReady) > 0:
		out.Status, out.Reasons = "not_ready", append(notReady, atRisk...)
	case len(atRisk) > 0:
		out.Status, out.Reasons = "at_risk", atRisk
	default:
		out.Status, out.Reasons = "ready", []string{}
	}
	return out, nil
}

// setIntact reports whether a set's manifest is where it was written, unchanged.
func setIntact(dir, manifestSHA string) bool {
	sum, _, err := hashFile(filepath.Join(dir, "manifest.json"))
	return err == nil && sum == manifestSHA
}

func span(seconds int64) string {
	return (time.Duration(seconds) * time.Second).String()
}
