package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/gateway"
)

func apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Create, list, revoke and verify API keys (operator tool; talks to Postgres directly)"}
	cmd.AddCommand(apikeyCreateCmd(), apikeyRevokeCmd(), apikeyListCmd(), apikeyVerifyCmd())
	return cmd
}

func apikeyCreateCmd() *cobra.Command {
	var tenant, role, name, output string
	var corpora []string
	cmd := &cobra.Command{
		Use:   "create --tenant T --role reader|editor|admin --name NAME [--corpus-ids C1,C2]",
		Short: "Create a key and print it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !gateway.ValidTenantID(tenant) {
				return fmt.Errorf("--tenant: %q is not a valid tenant id (letters, digits, _ . -; at most 64)", tenant)
			}
			if _, err := principal.ParseRole(role); err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if name = strings.TrimSpace(name); name == "" || len(name) > 100 {
				return errors.New("--name: 1 to 100 characters")
			}
			if output != "text" && output != "json" {
				return errors.New("--output: text or json")
			}
			scope, err := principal.NormalizeCorpusIDs(corpora)
			if err != nil {
				return fmt.Errorf("--corpus-ids: %w", err)
			}
			return withOperator(cmd.Context(), func(ctx context.Context, op *operator) error {
				k, plaintext, err := op.store.CreateKey(ctx, tenant, name, strings.ToLower(role), scope)
				if err != nil {
					return err
				}
				op.audit.Record(ctx, audit.Event{Type: audit.TypeAPIKeyCreated, Outcome: audit.OutcomeSuccess, TenantID: k.TenantID,
					ActorType: audit.ActorCLI, ActorID: cliActor(), ResourceType: "api_key", ResourceID: k.ID,
					Metadata: map[string]any{"name": k.Name, "role": k.Role, "corpus_ids": scopeText(k.CorpusIDs)}})
				if output == "json" {
					out := map[string]any{"key_id": k.ID, "tenant_id": k.TenantID, "role": k.Role, "name": k.Name, "api_key": plaintext}
					if len(k.CorpusIDs) > 0 {
						out["corpus_ids"] = k.CorpusIDs
					}
					return json.NewEncoder(os.Stdout).Encode(out)
				}
				fmt.Printf("key_id:    %s\ntenant_id: %s\nrole:      %s\nname:      %s\ncorpora:   %s\napi_key:   %s\n\nStore the api_key now: it is not stored and cannot be shown again.\n",
					k.ID, k.TenantID, k.Role, k.Name, scopeText(k.CorpusIDs), plaintext)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant id (required)")
	cmd.Flags().StringVar(&role, "role", "", "reader, editor or admin (required)")
	cmd.Flags().StringVar(&name, "name", "", "a name to recognise the key by (required)")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	cmd.Flags().StringSliceVar(&corpora, "corpus-ids", nil, "scope the key to these corpora (comma-separated, at most 100); default: every corpus")
	_ = cmd.MarkFlagRequired("tenant")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func apikeyRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke a key; every gateway replica rejects it within 5 seconds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOperator(cmd.Context(), func(ctx context.Context, op *operator) error {
				k, err := op.store.RevokeKey(ctx, "", args[0])
				if err != nil {
					return fmt.Errorf("revoke %s: %w", args[0], err)
				}
				op.audit.Record(ctx, audit.Event{Type: audit.TypeAPIKeyRevoked, Outcome: audit.OutcomeSuccess, TenantID: k.TenantID,
					ActorType: audit.ActorCLI, ActorID: cliActor(), ResourceType: "api_key", ResourceID: k.ID})
				fmt.Printf("revoked %s (tenant %s) at %s\n", k.ID, k.TenantID, k.RevokedAt.UTC().Format(time.RFC3339))
				return nil
			})
		},
	}
}

func apikeyListCmd() *cobra.Command {
	var tenant string
	var all bool
	cmd := &cobra.Command{
		Use:   "list --tenant T",
		Short: "List a tenant's keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withOperator(cmd.Context(), func(ctx context.Context, op *operator) error {
				keys, err := op.store.ListKeys(ctx, tenant, all)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KEY_ID\tNAME\tROLE\tCORPORA\tCREATED\tREVOKED")
				for _, k := range keys {
					revoked := "-"
					if k.RevokedAt != nil {
						revoked = k.RevokedAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, scopeText(k.CorpusIDs), k.CreatedAt.UTC().Format(time.RFC3339), revoked)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant id (required)")
	cmd.Flags().BoolVar(&all, "all", false, "include revoked keys")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func apikeyVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify < key-file",
		Short: "Read a key from standard input and exit 0 when it is active (keys never go on the command line)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return errors.New("no key on standard input")
			}
			return withOperator(cmd.Context(), func(ctx context.Context, op *operator) error {
				cache := gateway.NewKeyCache(op.store, logging.Discard(), time.Second, 0)
				p, err := cache.Authenticate(ctx, strings.TrimSpace(line))
				if err != nil {
					return err
				}
				fmt.Printf("active: key_id=%s tenant_id=%s role=%s\n", p.KeyID, p.TenantID, principal.RoleName(p.Role))
				return nil
			})
		},
	}
}

// operator is what the operator subcommands use: the gateway's store, and the audit
// recorder of an application started with the audit module (governance runs in this
// process unless GOVERNANCE_GRPC_ADDR says where it is), so the CLI needs no running
// platform.
type operator struct {
	store *gateway.Store
	audit *audit.Recorder
}

func withOperator(ctx context.Context, fn func(context.Context, *operator) error) error {
	a, err := openApp(ctx, modAudit)
	if err != nil {
		return fmt.Errorf("%w (did you run `nexusrag migrate`?)", err)
	}
	runErr := fn(ctx, &operator{store: gateway.NewStore(a.pool), audit: a.rec})
	if err := a.stop(); err != nil { // flushes the audit events
		return errors.Join(runErr, err)
	}
	return runErr
}

// cliActor names the operator in audit events.
func cliActor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}

// scopeText is a key's corpus scope for people: the corpus ids, or "all".
func scopeText(ids []string) string {
	if len(ids) == 0 {
		return "all"
	}
	return strings.Join(ids, ",")
}
