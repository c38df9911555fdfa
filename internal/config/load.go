package config

import (
	"fmt"
	"os"

	"github.com/takedown-project/takedown/internal/strictyaml"
)

// Load reads, decodes, fills and validates the configuration file at path.
// Every error names the file, and where it can, the line and the key.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes configuration text; name is the file name used in errors.
// An empty document gives the defaults.
func Parse(name string, data []byte) (Config, error) {
	c := Config{Store: Store{RetentionDays: DefaultRetentionDays}}
	if _, err := strictyaml.Decode(name, data, &c, strictyaml.Options{Kind: "config file"}); err != nil {
		return Config{}, err
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
