// Package version is the one place the product's version lives (RELEASING.md). It is
// stamped into `nexusrag version`, GET /v1/health, the OpenAPI document's info.version and
// every backup's manifest.
package version

import "runtime/debug"

// Version is the release this source is, or will be: bumped with CHANGELOG.md.
const Version = "0.15.0"

// Revision is the VCS revision the binary was built from ("" when unknown), with
// "+dirty" when the tree had uncommitted changes.
func Revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev[:min(12, len(rev))] + dirty
}

// String is the version with its revision: "0.15.0 (a1b2c3d4e5f6)".
func String() string {
	if r := Revision(); r != "" {
		return Version + " (" + r + ")"
	}
	return Version
}
