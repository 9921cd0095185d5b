// Package config parses typed configuration structs from the environment (and a .env
// file when present), so that a bad value stops start-up with the variable's name.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/caarlos0/env/v11"
	"github.com/joho/godotenv"
)

// LoadDotEnv reads path (usually ".env") into the process environment without
// overriding variables that are already set. A missing file is not an error.
func LoadDotEnv(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := godotenv.Load(path); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// Validator is implemented by config structs with rules beyond types and defaults.
type Validator interface{ Validate() error }

// Parse fills a T from environ (os.Environ() when nil) using `env` struct tags, then runs
// its Validate method. Errors name the offending variable.
func Parse[T any](environ map[string]string) (T, error) {
	var cfg T
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	if r, ok := any(&cfg).(Renamer); ok {
		opts.Environment, _ = applyRenames(environ, r.Renames())
	}
	if err := env.ParseWithOptions(&cfg, opts); err != nil {
		return cfg, fmt.Errorf("configuration: %s", flatten(err, varNames(reflect.TypeFor[T](), "")))
	}
	if v, ok := any(&cfg).(Validator); ok {
		if err := v.Validate(); err != nil {
			return cfg, fmt.Errorf("configuration: %w", err)
		}
	}
	return cfg, nil
}

// flatten joins the aggregated errors of caarlos0/env into one line, naming the
// environment variable rather than the Go field where the library names the field.
func flatten(err error, vars map[string]string) string {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err.Error()
	}
	parts := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			name := vars[pe.Name]
			if name == "" {
				name = pe.Name
			}
			parts = append(parts, fmt.Sprintf("%s: invalid value: %v", name, unwrapParse(pe.Err)))
			continue
		}
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "; ")
}

// unwrapParse drops strconv's "strconv.ParseInt: " prefix, which means nothing to an operator.
func unwrapParse(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return fmt.Errorf("%q is not a valid %s", ne.Num, numKind(ne.Func))
	}
	return err
}

func numKind(fn string) string {
	switch fn {
	case "ParseBool":
		return "boolean (true or false)"
	case "ParseFloat":
		return "number"
	default:
		return "integer"
	}
}

// varNames maps each field name of a config struct (nested structs included) to its
// environment variable.
func varNames(t reflect.Type, prefix string) map[string]string {
	out := map[string]string{}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := f.Tag.Get("env"); tag != "" {
			out[f.Name] = prefix + strings.Split(tag, ",")[0]
			continue
		}
		if ft := f.Type; ft.Kind() == reflect.Struct || (ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct) {
			for k, v := range varNames(ft, prefix+f.Tag.Get("envPrefix")) {
				if _, dup := out[k]; !dup {
					out[k] = v
				}
			}
		}
	}
	return out
}
