package gateway

import (
	"embed"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the gateway schema's migrations (API keys).
func Migrations() pgstore.Migrations { return pgstore.Embedded("gateway", migrationsFS, "migrations") }
