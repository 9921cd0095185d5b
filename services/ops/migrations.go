package ops

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the ops schema's migrations (rollout controls).
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("ops", migrationsFS, "migrations")
}
