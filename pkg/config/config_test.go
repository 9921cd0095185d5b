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
