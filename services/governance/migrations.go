package governance

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the governance schema's migrations (audit log).
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("governance", migrationsFS, "migrations")
}
