package exhibit

import (
	"strconv"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// eventsCSVHeader is the first line of events.csv, a reader's copy of
// events.jsonl (the hashes are over events.jsonl's lines, not these).
const eventsCSVHeader = "time,src_ip,src_port,dst_ip,dst_port,protocol,transport,domain,case,family,bot_id,country,asn,as_name,city\n"

// appendEventCSV appends e's row of events.csv.
func appendEventCSV(b []byte, e *event.Event) []byte {
	fields := []string{
		e.Time.UTC().Format(time.RFC3339Nano), addr(e.SrcIP.String(), e.SrcIP.IsValid()), strconv.Itoa(int(e.SrcPort)),
		addr(e.DstIP.String(), e.DstIP.IsValid()), strconv.Itoa(int(e.DstPort)), string(e.Protocol), string(e.Transport),
		e.Domain, e.Case, e.Family, e.BotID, e.CountryCode, strconv.FormatUint(uint64(e.ASN), 10), e.ASName, e.City,
	}
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, csvField(f)...)
	}
	return append(b, '\n')
}

func addr(s string, ok bool) string {
	if !ok {
		return ""
	}
	return s
}
