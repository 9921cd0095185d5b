package retrieval

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the retrieval schema's migrations (corpora, chunk index).
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("retrieval", migrationsFS, "migrations")
}
