// Command nexusrag is the one NexusRAG binary: `serve` runs any set of services (all of
// them by default), and the other subcommands are operator tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nexusrag/nexusrag/internal/version"
	"github.com/nexusrag/nexusrag/pkg/config"
)

func main() {
	if err := config.LoadDotEnv(".env"); err != nil {
		fmt.Fprintln(os.Stderr, "nexusrag:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "nexusrag",
		Short:         "NexusRAG: multi-tenant streaming RAG agent platform",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), modulesCmd(), migrateCmd(), apikeyCmd(), servicekeyCmd(), planCmd(), quotaCmd(), providerSmokeCmd(), seedDemoCmd(), evalCmd(), openapiCmd(), backupCmd(), healthcheckCmd(), versionCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errSmokeFailed) { // already reported on standard output
			fmt.Fprintln(os.Stderr, "nexusrag:", err)
		}
		os.Exit(1)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the release and the revision this binary was built from",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Println("nexusrag", version.String()) },
	}
}
