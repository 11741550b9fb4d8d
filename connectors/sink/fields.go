package sink

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/tessera-cdp/tessera/config"
)

// commonFields are the destination fields every type uses: the runtime's.
var commonFields = []string{"name", "type", "audiences", "types", "categories", "delivery"}

// CheckFields returns an error naming the first field of dest, by its
// YAML name, that is set although dest's type does not use it: uses lists
// the type's own fields (url, secret_env, template, …). A sink's New calls
// it so that a misplaced setting (an address on a webhook) is refused
// rather than ignored, as config.Destination asks.
func CheckFields(dest config.Destination, uses ...string) error {
	v := reflect.ValueOf(dest)
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || slices.Contains(commonFields, name) || slices.Contains(uses, name) {
			continue
		}
		if !v.Field(i).IsZero() {
			return fmt.Errorf("%s is not used by %s destinations (they use %s)", name, dest.Type, strings.Join(uses, ", "))
		}
	}
	return nil
}
