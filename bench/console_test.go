package bench

import (
	"math"
	"testing"
)

func TestRecordLines(t *testing.T) {
	recs := []Record{
		{Workload: "stat-cold", Client: ClientGovirtiofsAuto, Unit: UnitOps, Value: 1234.5, Round: 2},
		{Workload: "seqread-cold", Client: Client9PNone, Unit: UnitMBs, Round: 1, Err: "mount: no \"channel\"\nhere"},
	}
	for _, r := range recs {
		line := FormatRecord(r)
		got, ok := ParseRecord("[   12.3] noise " + line + "\r")
		if !ok || got.Workload != r.Workload || got.Client != r.Client || got.Unit != r.Unit ||
			got.Value != r.Value || got.Round != r.Round || got.Err != r.Err {
			t.Errorf("ParseRecord(FormatRecord(%+v)) = %+v, %v", r, got, ok)
		}
	}
	for _, line := range []string{
		"", "bench: progress", RecordPrefix + "{", RecordPrefix + `{"workload":"x"}`, RecordPrefix + "null",
	} {
		if r, ok := ParseRecord(line); ok {
			t.Errorf("ParseRecord(%q) = %+v, want false", line, r)
		}
	}
	line := FormatRecord(Record{Workload: "w", Client: "c", Value: math.Inf(1)})
	if r, ok := ParseRecord(line); !ok || r.Err == "" || r.Value != 0 {
		t.Errorf("an infinite value came back as %+v, %v; want an error record", r, ok)
	}
}
