package config_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/config"
)

type nested struct {
	Timeout time.Duration `env:"TIMEOUT" envDefault:"2s"`
}

type sample struct {
	Port    int    `env:"PORT" envDefault:"8000"`
	Enabled bool   `env:"ENABLED" envDefault:"false"`
	Name    string `env:"NAME,required"`
	Inner   nested `envPrefix:"INNER_"`
}

func (s *sample) Validate() error {
	if s.Port < 1 || s.Port > 65535 {
		return errors.New("PORT: must be 1..65535")
	}
	return nil
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "defaults", env: map[string]string{"NAME": "x"}},
		{name: "bad int names the variable", env: map[string]string{"NAME": "x", "PORT": "eighty"}, wantErr: `PORT: invalid value: "eighty" is not a valid integer`},
		{name: "bad bool names the variable", env: map[string]string{"NAME": "x", "ENABLED": "yes please"}, wantErr: `ENABLED: invalid value: "yes please" is not a valid boolean`},
		{name: "bad duration in nested struct names the prefixed variable", env: map[string]string{"NAME": "x", "INNER_TIMEOUT": "soon"}, wantErr: "INNER_TIMEOUT: invalid value"},
		{name: "missing required", env: map[string]string{}, wantErr: "NAME"},
		{name: "validate runs", env: map[string]string{"NAME": "x", "PORT": "70000"}, wantErr: "PORT: must be 1..65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse[sample](tt.env)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 8000, cfg.Port)
			require.Equal(t, 2*time.Second, cfg.Inner.Timeout)
		})
	}
}

type renamed struct {
	Bulkhead int `env:"MAX_CONCURRENCY" envDefault:"64"`
	Worker   int `env:"WORKER_CONCURRENCY" envDefault:"2"`
}

func (*renamed) Renames() []config.Rename {
	return []config.Rename{
		{Old: "MAX_CONCURRENCY", New: "WORKER_CONCURRENCY", OnlyWith: "MAX_INFLIGHT"},
		{Old: "MAX_INFLIGHT", New: "MAX_CONCURRENCY"},
	}
}

// TestRenamedVariables: a configuration written before a rename keeps its meaning for a
// release, with warnings; new names win over old ones.
func TestRenamedVariables(t *testing.T) {
	tests := []struct {
		name             string
		env              map[string]string
		bulkhead, worker int
		warnings         []string
	}{
		{"new names", map[string]string{"MAX_CONCURRENCY": "10", "WORKER_CONCURRENCY": "3"}, 10, 3, nil},
		{"defaults", map[string]string{}, 64, 2, nil},
		{"old configuration", map[string]string{"MAX_INFLIGHT": "32", "MAX_CONCURRENCY": "4"}, 32, 4, []string{
			"MAX_CONCURRENCY is renamed WORKER_CONCURRENCY: it still works for this release; set WORKER_CONCURRENCY instead",
			"MAX_INFLIGHT is renamed MAX_CONCURRENCY: it still works for this release; set MAX_CONCURRENCY instead"}},
		{"old bulkhead name alone", map[string]string{"MAX_INFLIGHT": "8"}, 8, 2, []string{
			"MAX_INFLIGHT is renamed MAX_CONCURRENCY: it still works for this release; set MAX_CONCURRENCY instead"}},
		{"both names of the worker", map[string]string{"MAX_INFLIGHT": "8", "MAX_CONCURRENCY": "4", "WORKER_CONCURRENCY": "6"}, 8, 6, []string{
			"MAX_CONCURRENCY is retired and ignored: WORKER_CONCURRENCY is set",
			"MAX_INFLIGHT is renamed MAX_CONCURRENCY: it still works for this release; set MAX_CONCURRENCY instead"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse[renamed](tt.env)
			require.NoError(t, err)
			require.Equal(t, tt.bulkhead, cfg.Bulkhead)
			require.Equal(t, tt.worker, cfg.Worker)
			require.Equal(t, tt.warnings, config.Deprecations[renamed](tt.env))
		})
	}
}
