package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

func servicekeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "servicekey", Short: "Make the keys services sign and verify their calls to each other with (ADR 0011)"}
	cmd.AddCommand(servicekeyCreateCmd())
	return cmd
}

func servicekeyCreateCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "create [--out FILE]",
		Short: "Write a new keys file (mode 0600), or print a new key line to add to one",
		Long: `create makes a 256-bit service key. With --out it writes a new keys file for
SERVICE_AUTH_KEYS_FILE (it never overwrites one). Without --out it prints one key line:
to rotate, add that line second in every process's keys file, then move it first,
then remove the old line (each step is picked up within SERVICE_AUTH_RELOAD_INTERVAL).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret := svcauth.NewSecret()
			if out == "" {
				fmt.Println(secret)
				return nil
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("--out: %s exists; to rotate, run without --out and add the printed line to it", out)
			}
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			k, _ := svcauth.FromSecrets([]string{secret})
			_, err = fmt.Fprintf(f, "# NexusRAG service keys: the first line signs, every line verifies. Keep this file secret.\n%s  # key id %s\n", secret, k.KeyID())
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(os.Stderr, "wrote %s (key id %s)\n", out, k.KeyID())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write a new keys file here")
	return cmd
}
