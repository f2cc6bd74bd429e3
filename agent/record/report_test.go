package record

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/haagent/haagent/internal/availability"
)

// reportRecords are two failovers: worker-2 (listed first) fully repaired
// and handed back, worker-1 still waiting for its node to be fenced.
func reportRecords(t *testing.T) []NodeFailover {
	t.Helper()
	done := confirmed(t, "worker-2")
	done.Name = "worker-2-20260301t120001"
	s := &done.Status
	s.Cordoned, s.Tainted, s.PodsNotReady, s.EvictionsAccepted = ms(1620), ms(1650), ms(1700), ms(1980)
	s.WorkloadsRecovered, s.NodeReturned, s.Uncordoned = ms(9_870), ms(300_000), ms(420_000)
	s.Pods = PodCounts{Total: 12, Evicted: 11, FencedOnly: 1}
	s.Message = "handed back"
	for _, p := range []Phase{PhaseRecovered, PhaseNodeReturned, PhaseCompleted} {
		if err := s.Advance(p); err != nil {
			t.Fatal(err)
		}
	}
	s.Derive()

	open := confirmed(t, "worker-1")
	open.Name = "worker-1-20260301t120101"
	s = &open.Status
	shift := func(n int) { // worker-1 failed a minute later
		for _, p := range s.timestamps() {
			if *p != nil {
				(*p).Time = (*p).Add(time.Duration(n) * time.Millisecond)
			}
		}
	}
	s.Cordoned, s.Tainted, s.PodsNotReady, s.EvictionsAccepted = ms(1590), ms(1610), ms(1640), ms(1700)
	shift(60_000)
	s.Votes = append(s.Votes, Vote{Voter: "worker-3", Opinion: OpinionDead})
	s.Pods = PodCounts{Total: 4, Evicted: 3, FencedOnly: 1}
	s.Message = "waiting for\tthe fence\nbound"
	if err := s.Advance(PhaseAwaitingFence); err != nil {
		t.Fatal(err)
	}
	s.Derive()
	return []NodeFailover{*done, *open}
}

func TestWriteTable(t *testing.T) {
	records := reportRecords(t)
	const want = `NODE       STARTED                PHASE           OUTCOME     DETECT   CORDON   EVICT   RECOVER   REPAIR   VOTES
worker-2   2026-03-01T12:00:00Z   Completed       completed   1.5s     1.62s    1.98s   9.87s     9.87s    2
worker-1   2026-03-01T12:01:00Z   AwaitingFence   -           1.5s     1.59s    1.7s    -         -        3
`
	var buf bytes.Buffer
	if err := WriteTable(&buf, records, false); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Errorf("WriteTable:\n%s\nwant:\n%s", buf.String(), want)
	}

	const wantWide = `NODE       STARTED                PHASE           OUTCOME     DETECT   CORDON   EVICT   RECOVER   REPAIR   VOTES   NAME                       SUSPECT   TAINT   NOTREADY   FENCE   RETURN   UNCORDON   PODS    MESSAGE
worker-2   2026-03-01T12:00:00Z   Completed       completed   1.5s     1.62s    1.98s   9.87s     9.87s    2       worker-2-20260301t120001   600ms     1.65s   1.7s       -       5m0s     7m0s       11/12   handed back
worker-1   2026-03-01T12:01:00Z   AwaitingFence   -           1.5s     1.59s    1.7s    -         -        3       worker-1-20260301t120101   600ms     1.61s   1.64s      -       -        -          3/4     waiting for the fence bound
`
	buf.Reset()
	if err := WriteTable(&buf, records, true); err != nil {
		t.Fatal(err)
	}
	if buf.String() != wantWide {
		t.Errorf("WriteTable wide:\n%s\nwant:\n%s", buf.String(), wantWide)
	}
	if records[0].Spec.Node != "worker-2" {
		t.Error("WriteTable reordered the caller's slice")
	}

	buf.Reset()
	if err := WriteTable(&buf, nil, false); err != nil || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("empty table = %q, %v; want the header only", buf.String(), err)
	}
}

func TestWriteJSON(t *testing.T) {
	records := reportRecords(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, records); err != nil {
		t.Fatal(err)
	}
	var list NodeFailoverList
	if err := json.Unmarshal(buf.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "NodeFailoverList" || len(list.Items) != 2 || list.Items[1].Status.TimeToDetect != "1.5s" {
		t.Errorf("WriteJSON gave %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"workloadsRecovered": "2026-03-01T12:00:10.120000Z"`) {
		t.Errorf("timestamps not in RFC 3339 with microseconds:\n%s", buf.String())
	}
	buf.Reset()
	if err := WriteJSON(&buf, nil); err != nil || !strings.Contains(buf.String(), `"items": []`) {
		t.Errorf("empty list = %s, %v", buf.String(), err)
	}
}

func TestReport(t *testing.T) {
	records := reportRecords(t)
	window := availability.Window{Start: t0.Add(-time.Hour), End: t0.Add(23 * time.Hour)}
	sum, err := Report(records, window, []string{"worker-1", "worker-2", "worker-3"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Cluster.Failures != 2 || sum.Cluster.Repaired != 1 || sum.Nodes["worker-2"].MTTR != 9870*time.Millisecond {
		t.Errorf("summary = %+v", sum)
	}
	const want = `Window 2026-03-01T11:00:00Z to 2026-03-02T11:00:00Z (24h)
NODE        FAILURES   MTTD   MTTR    MTBF     AVAILABILITY   NINES   MEASURED     DOWNTIME
worker-1    1          1.5s   -       1h1m     -              -       4.23611%     22h59m
worker-2    1          1.5s   9.87s   24h      99.98858%      3.94    99.98858%    9.87s
worker-3    0          -      -       -        100.00000%     inf     100.00000%   0s
(cluster)   2          1.5s   9.87s   24h30m   99.98881%      3.95    68.07490%    22h59m
All nodes up 4.22469% of the window.
`
	var buf bytes.Buffer
	if err := WriteSummary(&buf, sum); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Errorf("WriteSummary:\n%s\nwant:\n%s", buf.String(), want)
	}

	if _, err := Report(records, availability.Window{}, nil); err == nil {
		t.Error("Report with an empty window succeeded")
	}
}
