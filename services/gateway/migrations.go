package gateway

import (
	"embed"
	"io/fs"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the gateway schema's migrations (API keys).
func Migrations() pgstore.Migrations {
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		panic(err) // embedded at build time: cannot fail
	}
	return pgstore.Migrations{Schema: "gateway", FS: sub}
}
