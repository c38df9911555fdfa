package classify

import _ "embed"

//go:embed rules/default.yaml
var defaultYAML []byte

// DefaultFile is the name under which the shipped rules report errors.
const DefaultFile = "internal/classify/rules/default.yaml"

// DefaultYAML returns the text of the shipped rules, e.g. to start a rules
// file from.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default compiles the shipped rules, used when no rules file is
// configured. Its tests keep it free of errors.
func Default() (*Rules, error) { return Parse(DefaultFile, defaultYAML) }
