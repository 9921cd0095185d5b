package failover

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the failover schema's migrations.
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("failover", migrationsFS, "migrations")
}
