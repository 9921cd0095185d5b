package run

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the run schema's migrations (sessions, messages, checkpoints, audio).
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("run", migrationsFS, "migrations")
}
