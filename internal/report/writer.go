package report

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Writer writes one subscriber's report in one format.
type Writer interface {
	// Format is the name of the format: csv, json, xarf or stix, as
	// subscribers choose them.
	Format() string
	// ContentType is the media type of what Write writes.
	ContentType() string
	// Extension is the file name extension, without the dot.
	Extension() string
	// Write writes r to w.
	Write(w io.Writer, r *Report) error
}

// Operator is who runs the sinkhole and sends the reports.
type Operator struct {
	// Name is the team or organisation, e.g. "Example CERT sinkhole team".
	Name string
	// Email is where replies and questions go: X-ARF's Reported-From,
	// the contact of the texts. Its domain ends the X-ARF Report-IDs.
	Email string
	// URL is a page about the operation, for the texts; optional.
	URL string
}

// Options are what the writers need besides the report.
type Options struct {
	Operator Operator
	// Generated is when the reports are made: the created and modified
	// times of STIX objects. Zero means the end of the report's period, so
	// that the same data gives the same bytes.
	Generated time.Time
	// UserAgent names the software in X-ARF reports; "takedown" if empty.
	UserAgent string
}

func (o Options) generated(r *Report) time.Time {
	if !o.Generated.IsZero() {
		return o.Generated.UTC()
	}
	return r.To
}

func (o Options) userAgent() string {
	if o.UserAgent != "" {
		return o.UserAgent
	}
	return "takedown"
}

// emailDomain is the domain of the operator's address, "invalid" (RFC
// 2606) when it has none.
func (o Options) emailDomain() string {
	if i := strings.LastIndexByte(o.Operator.Email, '@'); i >= 0 && i < len(o.Operator.Email)-1 {
		return strings.ToLower(o.Operator.Email[i+1:])
	}
	return "invalid"
}

// Formats lists the formats NewWriter knows, in the order subscribers are
// offered them.
func Formats() []string { return []string{"csv", "json", "xarf", "stix"} }

// NewWriter returns the Writer of format.
func NewWriter(format string, opt Options) (Writer, error) {
	switch strings.ToLower(format) {
	case "csv":
		return CSV{}, nil
	case "json":
		return JSONLines{Options: opt}, nil
	case "xarf":
		return XARF{Options: opt}, nil
	case "stix":
		return STIX{Options: opt}, nil
	}
	return nil, fmt.Errorf("report: format %q is not one of %s", format, strings.Join(Formats(), ", "))
}
