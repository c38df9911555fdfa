package report

// IntelMQ's Shadowserver parser and harmonisation types, as far as the
// sinkhole event reports and the JSON lines use them, ported from IntelMQ
// 3.2.1 (commit tagged 3.2.1 of certtools/intelmq), the last release that
// carries the sinkhole reports' column maps in its own source:
//
//	intelmq/bots/parsers/shadowserver/_config.py  event_sinkhole, event_sinkhole_http,
//	                                              validate_ip, convert_int, invalidate_zero,
//	                                              validate_to_none, validate_fqdn,
//	                                              convert_http_host_and_url, add_UTC_to_timestamp
//	intelmq/bots/parsers/shadowserver/parser.py   file name rule, required and optional fields
//	intelmq/lib/harmonization.py                  DateTime, IPAddress, Integer, ASN, FQDN, URL,
//	                                              LowercaseString, UppercaseString, TLP
//	intelmq/etc/harmonization.conf                the type, regex and length of each key
//
// Later releases read the same maps from a schema Shadowserver publishes
// for download. CI reaches neither IntelMQ's source nor Python's registry,
// so the checks live here; the golden files were also fed to IntelMQ 3.2.1's
// parser bot itself (testdata/intelmq/check.py), which took every row.
//
// Stricter than the parser in one way: a value that fails its type is an
// error here, where the parser would quietly move it to "extra".

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// intelmqFileName is parser.py's rule for the report's file name.
var intelmqFileName = regexp.MustCompile(`^(?:\d{4}-\d{2}-\d{2}-)?(\w+)(-\w+)*\.csv$`)

// intelmqSinkholeFields maps the columns of _config.py's event_sinkhole
// (and, with the last six, event_sinkhole_http) onto IntelMQ's keys and
// checks: required columns first.
type intelmqField struct {
	key, column string
	required    bool
	check       func(v string, row map[string]string) error
}

func intelmqSinkholeFields(http bool) []intelmqField {
	f := []intelmqField{
		{"time.source", "timestamp", true, imqDateTime},
		{"source.ip", "src_ip", true, imqIP},
		{"source.port", "src_port", true, imqInteger(5)},
		{"classification.identifier", "infection", false, imqToNone(imqString)},
		{"malware.name", "family", false, imqToNone(imqLower(`^[ -~]+$`, 0))},
		{"extra.tag", "tag", false, imqToNone(imqString)},
		{"protocol.transport", "protocol", false, imqLower(``, 11)},
		{"source.asn", "src_asn", false, imqASN},
		{"source.geolocation.cc", "src_geo", false, imqUpper2},
		{"source.geolocation.region", "src_region", false, imqString},
		{"source.geolocation.city", "src_city", false, imqString},
		{"source.reverse_dns", "src_hostname", false, imqFQDN},
		{"destination.ip", "dst_ip", false, imqIP},
		{"destination.port", "dst_port", false, imqInteger(0)},
		{"destination.asn", "dst_asn", false, imqASN},
		{"destination.geolocation.cc", "dst_geo", false, imqUpper2},
		{"extra.application", "application", false, imqToNone(imqString)},
		{"extra.version", "version", false, imqToNone(imqString)},
	}
	if http {
		f[3] = intelmqField{"classification.identifier", "tag", false, imqString}
		f = append(f,
			intelmqField{"destination.url", "http_url", false, imqURL},
			intelmqField{"destination.fqdn", "http_host", false, imqFQDN},
			intelmqField{"extra.http_agent", "http_agent", false, imqToNone(imqString)},
			intelmqField{"extra.forwarded_by", "forwarded_by", false, imqToNone(imqString)},
			intelmqField{"extra.ssl_cipher", "ssl_cipher", false, imqToNone(imqString)},
			intelmqField{"extra.http_referer", "http_referer", false, imqToNone(imqString)},
		)
	}
	return f
}

// intelmqCheckSinkhole checks a sinkhole event report as IntelMQ's parser
// reads it: the file name names the report, the columns of its map are in
// the header, and every row's values pass their conversion and type.
func intelmqCheckSinkhole(name string, data []byte) (rows int, err error) {
	m := intelmqFileName.FindStringSubmatch(name)
	if m == nil {
		return 0, fmt.Errorf("%s: the parser takes no report from this file name", name)
	}
	var http bool
	switch m[1] {
	case "event4_sinkhole", "event6_sinkhole":
	case "event4_sinkhole_http", "event6_sinkhole_http":
		http = true
	default:
		return 0, fmt.Errorf("%s: %q is no sinkhole event report", name, m[1])
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if len(recs) == 0 {
		return 0, fmt.Errorf("%s: no header", name)
	}
	header := recs[0]
	fields := intelmqSinkholeFields(http)
	for _, f := range fields {
		if !strings.Contains(","+strings.Join(header, ",")+",", ","+f.column+",") {
			return 0, fmt.Errorf("%s: column %q of %s missing", name, f.column, f.key)
		}
	}
	var errs []error
	for i, rec := range recs[1:] {
		row := make(map[string]string, len(header))
		for j, h := range header {
			row[h] = rec[j]
		}
		for _, f := range fields {
			v := row[f.column]
			if v == "" {
				if f.required {
					errs = append(errs, fmt.Errorf("%s row %d: required %s (%s) empty", name, i+1, f.column, f.key))
				}
				continue // IntelMQ leaves out empty values
			}
			if err := f.check(v, row); err != nil {
				errs = append(errs, fmt.Errorf("%s row %d: %s %q is no valid %s: %w", name, i+1, f.column, v, f.key, err))
			}
		}
	}
	return len(recs) - 1, errors.Join(errs...)
}

// imqToNone is validate_to_none: "0" and "unknown" are no value.
func imqToNone(check func(string, map[string]string) error) func(string, map[string]string) error {
	return func(v string, row map[string]string) error {
		if v == "0" || v == "unknown" {
			return nil
		}
		return check(v, row)
	}
}

// imqString is String: a non-empty string.
func imqString(v string, _ map[string]string) error {
	if v == "" {
		return errors.New("empty")
	}
	return nil
}

// imqDateTime is add_UTC_to_timestamp and DateTime's sanitation: the
// parser appends " UTC" and dateutil reads the rest; our layout only.
func imqDateTime(v string, _ map[string]string) error {
	_, err := time.Parse(time.DateTime+" MST", v+" UTC")
	return err
}

// imqIP is validate_ip and IPAddress: an address, not 0.0.0.0, no prefix.
func imqIP(v string, _ map[string]string) error {
	if v == "0.0.0.0" || strings.Contains(v, "/") {
		return errors.New("the parser drops it")
	}
	_, err := netip.ParseAddr(v)
	return err
}

// imqInteger is convert_int and Integer, with the key's length if any.
func imqInteger(length int) func(string, map[string]string) error {
	return func(v string, _ map[string]string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		if length > 0 && len(strconv.Itoa(n)) > length {
			return fmt.Errorf("longer than %d", length)
		}
		return nil
	}
}

// imqASN is invalidate_zero and ASN: 1 to 4294967295.
func imqASN(v string, _ map[string]string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if n < 1 || n > 4294967295 {
		return errors.New("out of range")
	}
	return nil
}

// imqLower is LowercaseString (the parser lower-cases on the way in) with
// the key's regex and length.
func imqLower(pattern string, length int) func(string, map[string]string) error {
	re := regexp.MustCompile(pattern)
	return func(v string, _ map[string]string) error {
		v = strings.ToLower(v)
		if !re.MatchString(v) {
			return fmt.Errorf("does not match %s", pattern)
		}
		if length > 0 && len(v) > length {
			return fmt.Errorf("longer than %d", length)
		}
		return nil
	}
}

var imqCC = regexp.MustCompile(`^[a-zA-Z0-9]{2}$`)

// imqUpper2 is UppercaseString with the country code's regex.
func imqUpper2(v string, _ map[string]string) error {
	if !imqCC.MatchString(v) {
		return errors.New("no two-letter code")
	}
	return nil
}

// imqFQDN is validate_fqdn and FQDN after sanitation (trailing dots cut,
// lower case): no address, no ":", no URL parts, ASCII (IDNA) only.
func imqFQDN(v string, _ map[string]string) error {
	v = strings.ToLower(strings.Trim(v, "."))
	if v == "" || strings.Contains(v, ":") {
		return errors.New("no name")
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return errors.New("an address")
	}
	if strings.ContainsAny(v, "/?#") {
		return errors.New("URL parts")
	}
	for _, r := range v {
		if r > 0x7f {
			return errors.New("not ASCII")
		}
	}
	return nil
}

var (
	imqLeading  = regexp.MustCompile(`^[^/]*`)
	imqTrailing = regexp.MustCompile(`\s.*$`)
	imqScheme   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// imqURL is convert_http_host_and_url and URL: with a Host the parser
// makes application://host/path of the request's path; without one it
// takes the value as it is. URL wants urlsplit's network location.
func imqURL(v string, row map[string]string) error {
	if host := row["http_host"]; host != "" {
		path := imqTrailing.ReplaceAllString(imqLeading.ReplaceAllString(v, ""), "")
		app := row["application"]
		if app != "http" && app != "https" {
			app = "http"
		}
		v = app + "://" + host + path
	}
	if v == "" || strings.ContainsRune(" \t\n\r\v\f", rune(v[0])) {
		return errors.New("empty or starts with a space")
	}
	rest := imqScheme.ReplaceAllString(v, "")
	if !strings.HasPrefix(rest, "//") {
		return errors.New("no network location")
	}
	rest = rest[2:]
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		return errors.New("no network location")
	}
	return nil
}

// intelmqTLPs is the TLP type's enum.
var intelmqTLPs = []string{"WHITE", "GREEN", "AMBER", "RED"}

// imqCanonicalTime is DateTime.is_valid without sanitation: the value
// equals its own ISO form with the offset "+00:00".
func imqCanonicalTime(v string) error {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return err
	}
	if c := t.UTC().Format("2006-01-02T15:04:05+00:00"); c != v {
		return fmt.Errorf("not canonical, IntelMQ writes %q", c)
	}
	return nil
}
