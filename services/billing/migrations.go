package billing

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the billing schema's migrations.
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("billing", migrationsFS, "migrations")
}
