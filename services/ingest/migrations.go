package ingest

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the ingest schema's migrations (documents).
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("ingest", migrationsFS, "migrations")
}
