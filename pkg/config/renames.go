package config

import (
	"fmt"
	"os"
	"strings"
)

// Rename is a variable renamed in a release: for one more release the old name still
// works, with a warning that names the new one.
type Rename struct {
	Old, New string
	// OnlyWith, when set, applies the rename only if that variable is set too: it tells a
	// configuration written before the rename, when Old has a new meaning since.
	OnlyWith string
}

// Renamer is implemented by config structs with renamed variables; Parse honours them.
type Renamer interface{ Renames() []Rename }

// applyRenames returns environ (the process environment when nil) with each retired
// variable in use copied to its new name, unless the new name is set, and a warning for
// each. Renames apply in order, each to the environment as the earlier ones left it.
func applyRenames(environ map[string]string, renames []Rename) (map[string]string, []string) {
	env := make(map[string]string, len(environ))
	if environ == nil {
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	} else {
		for k, v := range environ {
			env[k] = v
		}
	}
	original := make(map[string]string, len(env))
	for k, v := range env {
		original[k] = v
	}
	var warnings []string
	moved, written := map[string]bool{}, map[string]bool{}
	isSet := func(name string) bool {
		_, ok := original[name]
		return (ok && !moved[name]) || written[name]
	}
	for _, r := range renames {
		v, set := original[r.Old]
		if !set || (r.OnlyWith != "" && original[r.OnlyWith] == "") {
			continue
		}
		if isSet(r.New) {
			moved[r.Old] = true // read under its old meaning, or not at all
			warnings = append(warnings, fmt.Sprintf("%s is retired and ignored: %s is set", r.Old, r.New))
			continue
		}
		env[r.New] = v
		moved[r.Old], written[r.New] = true, true
		warnings = append(warnings, fmt.Sprintf("%s is renamed %s: it still works for this release; set %s instead", r.Old, r.New, r.New))
	}
	for name := range moved {
		if !written[name] {
			delete(env, name)
		}
	}
	return env, warnings
}

// Deprecations lists the warnings for the retired variables of T in use in environ (the
// process environment when nil); the process logs them once at start-up.
func Deprecations[T any](environ map[string]string) []string {
	var cfg T
	r, ok := any(&cfg).(Renamer)
	if !ok {
		return nil
	}
	_, warnings := applyRenames(environ, r.Renames())
	return warnings
}
