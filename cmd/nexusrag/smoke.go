package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// errSmokeFailed makes the command exit non-zero after it printed the provider's error.
var errSmokeFailed = errors.New("retrieval failed")

func providerSmokeCmd() *cobra.Command {
	var tenant, corpus, query string
	var topK int
	cmd := &cobra.Command{
		Use:   "provider-smoke --tenant T --corpus C --query Q [--top-k K]",
		Short: "Run one retrieval through the corpus's provider and print the results or the provider's error code",
		Long: `provider-smoke runs the retrieval service in this process against DATABASE_URL and the
cloud credentials of this environment, and retrieves once from the corpus's configured
provider (local_pgvector, aws_bedrock_kb or gcp_vertex). It exits 1 with the error code
(for example AWS_CONFIG_MISSING) when the provider refuses.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return providerSmoke(cmd.Context(), tenant, corpus, query, topK)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant id (required)")
	cmd.Flags().StringVar(&corpus, "corpus", "", "corpus id (required)")
	cmd.Flags().StringVar(&query, "query", "", "query text (required)")
	cmd.Flags().IntVar(&topK, "top-k", 5, "results to return, 1..50")
	for _, f := range []string{"tenant", "corpus", "query"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func providerSmoke(ctx context.Context, tenant, corpus, query string, topK int) error {
	a, err := openApp(ctx, "retrieval") // the retrieval service as serve runs it, causes of internal errors on standard error
	if err != nil {
		return err
	}
	defer func() { _ = a.stop() }()
	conn, err := a.conn("retrieval")
	if err != nil {
		return err
	}
	callCtx := principal.With(ctx, principal.Principal{TenantID: tenant, Role: apiv1.Role_ROLE_READER})
	start := time.Now()
	res, err := retrievalv1.NewRetrievalServiceClient(conn).Retrieve(callCtx, &retrievalv1.RetrieveRequest{CorpusId: corpus, Query: query, TopK: int32(topK)})
	elapsed := time.Since(start)
	if err != nil {
		e, _ := apierr.From(err)
		fmt.Printf("error: %s: %s\n", e.Code, e.Message)
		return errSmokeFailed
	}
	fmt.Printf("provider: %s  results: %d  took: %s\n\n", res.GetProvider(), len(res.GetChunks()), elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSCORE\tDOCUMENT\tCHUNK\tTEXT")
	for i, c := range res.GetChunks() {
		fmt.Fprintf(tw, "%d\t%.4f\t%s\t%s\t%s\n", i+1, c.GetScore(), c.GetDocumentId(), c.GetChunkId(), excerpt(c.GetText(), 80))
	}
	return tw.Flush()
}

func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
