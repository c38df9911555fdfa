package exhibit

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"
)

// readmeText is README.txt after its first part, which names the exhibit.
//
//go:embed readme.txt
var readmeText string

func (x *exporter) readme(context.Context) error {
	c := x.caseFile
	var b strings.Builder
	fmt.Fprintf(&b, "EXHIBIT OF CASE %s\n\n", c.Case.Name)
	fmt.Fprintf(&b, "  Case:        %s, %s, docket %s\n", c.Case.Name, c.Case.Court, c.Case.Docket)
	fmt.Fprintf(&b, "  Period:      %s to %s (UTC, the end excluded)\n", c.Period.From, c.Period.To)
	fmt.Fprintf(&b, "  Made:        %s\n", c.Exported)
	fmt.Fprintf(&b, "  Events:      %d of the case in the period\n", x.counts.Events)
	if s := x.counts.Sample; s != nil {
		fmt.Fprintf(&b, "  Sample:      events.jsonl and events.csv hold %d of them: %s.\n", s.Size, s.Method)
		b.WriteString("               The counts are over all of them; the leaves are whole.\n")
	} else {
		b.WriteString("               events.jsonl holds every one of them.\n")
	}
	cp := x.res.Checkpoint
	fmt.Fprintf(&b, "  Checkpoint:  %s, %d leaves, root %s, signed %s\n", cp.Origin, cp.Size, rootB64(cp.Root), cp.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "  Key:         %s\n\n", x.c.VerifierKey)
	b.WriteString(readmeText)
	return x.write(FileReadme, []byte(b.String()))
}
