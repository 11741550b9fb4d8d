package sink

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Recipient returns the trait named trait of a's profile: a JSON string
// (or number) that is not empty. Its callers mark the error permanent:
// retrying cannot add the trait.
func Recipient(a Activation, trait string) (string, error) {
	var p struct {
		Traits map[string]json.RawMessage `json:"traits"`
	}
	if err := json.Unmarshal(a.Profile, &p); err != nil {
		return "", fmt.Errorf("decoding the profile of activation %s: %w", a.ID, err)
	}
	raw, ok := p.Traits[trait]
	if !ok || string(raw) == "null" {
		return "", fmt.Errorf("profile %s has no %q trait to send to", a.ProfileID, trait)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("decoding trait %q of profile %s: %w", trait, a.ProfileID, err)
	}
	var to string
	switch v := v.(type) {
	case string:
		to = strings.TrimSpace(v)
	case float64:
		to = string(raw)
	}
	if to == "" {
		return "", fmt.Errorf("profile %s: trait %q is %s, not an address", a.ProfileID, trait, raw)
	}
	return to, nil
}
