package retrieval

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Providers.
const (
	ProviderLocal   = "local_pgvector"
	ProviderBedrock = "aws_bedrock_kb"
	ProviderVertex  = "gcp_vertex"
)

// CodeInvalidProviderConfig is answered for a provider_config_json that does not validate.
const CodeInvalidProviderConfig = "INVALID_PROVIDER_CONFIG"

// Bounds of top_k everywhere in the product.
const (
	MinTopK         = 1
	MaxTopK         = 50
	defaultTopK     = 5
	configRoot      = "provider_config_json"
	retrievalField  = configRoot + ".retrieval"
	maxConfigString = 1024
)

// ProviderConfig is the validated, typed form of provider_config_json.retrieval.
type ProviderConfig struct {
	Provider    string
	TopKDefault int
	// aws_bedrock_kb
	KnowledgeBaseID, Region string
	// gcp_vertex
	Project, Location, ResourceID string
	// local_pgvector
	Ranking RankingConfig
}

// providerFields lists, per provider, its required string fields (top_k_default and
// provider are common to all).
var providerFields = map[string][]string{
	ProviderLocal:   nil,
	ProviderBedrock: {"knowledge_base_id", "region"},
	ProviderVertex:  {"project", "location", "resource_id"},
}

var (
	awsRegion     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d{1,2}$`)
	gcpProject    = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	noSpaceString = regexp.MustCompile(`^\S+$`)
)

// ParseProviderConfig validates a provider_config_json object. nil and {} mean
// local_pgvector with top_k_default 5. Errors name the offending field.
func ParseProviderConfig(raw map[string]any) (ProviderConfig, error) {
	cfg := ProviderConfig{Provider: ProviderLocal, TopKDefault: defaultTopK}
	for k := range raw {
		if k != "retrieval" {
			return cfg, invalidConfig(configRoot+"."+k, "unknown section (supported: retrieval)")
		}
	}
	rv, present := raw["retrieval"]
	if !present {
		return cfg, nil
	}
	r, ok := rv.(map[string]any)
	if !ok {
		return cfg, invalidConfig(retrievalField, "must be an object")
	}
	if p, present := r["provider"]; present {
		s, ok := p.(string)
		if !ok {
			return cfg, invalidConfig(retrievalField+".provider", "must be a string")
		}
		if _, known := providerFields[s]; !known {
			return cfg, invalidConfig(retrievalField+".provider",
				fmt.Sprintf("unknown provider %q (supported: %s, %s, %s)", s, ProviderLocal, ProviderBedrock, ProviderVertex))
		}
		cfg.Provider = s
	}
	allowed := append([]string{"provider", "top_k_default"}, providerFields[cfg.Provider]...)
	if cfg.Provider == ProviderLocal {
		allowed = append(allowed, rankingFields...)
	}
	for _, k := range sortedKeys(r) {
		if !slices.Contains(allowed, k) {
			return cfg, invalidConfig(retrievalField+"."+k, fmt.Sprintf("not a setting of provider %s (allowed: %s)", cfg.Provider, strings.Join(allowed, ", ")))
		}
	}
	if v, present := r["top_k_default"]; present {
		n, err := integer(v)
		if err != nil {
			return cfg, invalidConfig(retrievalField+".top_k_default", err.Error())
		}
		if n < MinTopK || n > MaxTopK {
			return cfg, invalidConfig(retrievalField+".top_k_default", fmt.Sprintf("must be %d to %d", MinTopK, MaxTopK))
		}
		cfg.TopKDefault = n
	}
	values := map[string]string{}
	for _, f := range providerFields[cfg.Provider] {
		v, present := r[f]
		if !present {
			return cfg, invalidConfig(retrievalField+"."+f, "is required for provider "+cfg.Provider)
		}
		s, ok := v.(string)
		if !ok {
			return cfg, invalidConfig(retrievalField+"."+f, "must be a string")
		}
		if s = strings.TrimSpace(s); s == "" || len(s) > maxConfigString || !noSpaceString.MatchString(s) {
			return cfg, invalidConfig(retrievalField+"."+f, fmt.Sprintf("must be a non-empty string without spaces, at most %d characters", maxConfigString))
		}
		values[f] = s
	}
	if cfg.Provider == ProviderLocal {
		rc, err := parseRanking(r)
		if err != nil {
			return cfg, err
		}
		cfg.Ranking = rc
	}
	cfg.KnowledgeBaseID, cfg.Region = values["knowledge_base_id"], values["region"]
	cfg.Project, cfg.Location, cfg.ResourceID = values["project"], values["location"], values["resource_id"]
	switch {
	case cfg.Provider == ProviderBedrock && !awsRegion.MatchString(cfg.Region):
		return cfg, invalidConfig(retrievalField+".region", "must be an AWS region such as us-east-1")
	case cfg.Provider == ProviderVertex && !gcpProject.MatchString(cfg.Project):
		return cfg, invalidConfig(retrievalField+".project", "must be a Google Cloud project id (6-30 lower-case letters, digits, hyphens)")
	}
	return cfg, nil
}

// JSON is the normalized provider_config_json of the configuration.
func (c ProviderConfig) JSON() map[string]any {
	r := map[string]any{"provider": c.Provider, "top_k_default": c.TopKDefault}
	switch c.Provider {
	case ProviderBedrock:
		r["knowledge_base_id"], r["region"] = c.KnowledgeBaseID, c.Region
	case ProviderVertex:
		r["project"], r["location"], r["resource_id"] = c.Project, c.Location, c.ResourceID
	case ProviderLocal:
		c.Ranking.addJSON(r)
	}
	return map[string]any{"retrieval": r}
}

// integer accepts JSON numbers without a fraction (JSON decoders give float64).
func integer(v any) (int, error) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || math.IsNaN(n) {
			return 0, fmt.Errorf("must be an integer")
		}
		if n > math.MaxInt32 || n < math.MinInt32 {
			return 0, fmt.Errorf("must be %d to %d", MinTopK, MaxTopK)
		}
		return int(n), nil
	case int:
		return n, nil
	case int64:
		return int(n), nil
	}
	return 0, fmt.Errorf("must be an integer, not %s", jsonType(v))
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func invalidConfig(field, reason string) error {
	return apierr.New(codes.InvalidArgument, CodeInvalidProviderConfig, field+": "+reason, "field", field, "reason", reason)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
