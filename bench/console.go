package bench

import (
	"encoding/json"
	"strings"
)

// RecordPrefix starts a line that carries one [Record] as JSON on the guest's console.
const RecordPrefix = "BENCH-RECORD "

// FormatRecord returns r as a console line (without the newline).
func FormatRecord(r Record) string {
	b, err := json.Marshal(r)
	if err != nil {
		// A Record holds only strings and finite numbers; NaN or Inf cannot be marshalled.
		r.Value, r.Err = 0, "unencodable value"
		b, _ = json.Marshal(r)
	}
	return RecordPrefix + string(b)
}

// ParseRecord extracts a Record from a console line; other lines, and records without a
// workload or client, give false. Text before the prefix (a kernel message that interleaved) is
// skipped.
func ParseRecord(line string) (Record, bool) {
	i := strings.Index(line, RecordPrefix)
	if i < 0 {
		return Record{}, false
	}
	var r Record
	if err := json.Unmarshal([]byte(strings.TrimSpace(line[i+len(RecordPrefix):])), &r); err != nil {
		return Record{}, false
	}
	if r.Workload == "" || r.Client == "" {
		return Record{}, false
	}
	return r, true
}
