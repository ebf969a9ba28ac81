package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// scenario is what setup made through the API.
type scenario struct {
	tokenConn, fwdConn string   // two API-key connections on the local upstream
	keys               []string // tokens:read keys
	apiKey             string   // the forwarding connection's API key (the bare proxy adds it too)
	body               []byte   // the token endpoint's answer, for the bare server
}

// setup makes, through the HTTP API with the bootstrap key: a provider on the local
// upstream, two API-key connections to it (one read, one forwarded through) and nkeys tokens:read keys; it reads the token once for its body.
func setup(ctx context.Context, base, boot, upstream string, nkeys int) (scenario, error) {
	var sc scenario
	call := func(method, path, key string, body any) ([]byte, error) {
		var rd io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			rd = bytes.NewReader(j)
		}
		req, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
		return b, nil
	}
	id := func(b []byte) string {
		var m struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		}
		_ = json.Unmarshal(b, &m)
		return m.ID + m.Key
	}
	sc.apiKey = "sk_bench_" + randomKey()[3:27]
	if _, err := call("PUT", "/v1/providers/bench-upstream", boot, map[string]any{"auth_mode": "api_key", "api_base_url": upstream,
		"api_key_auth": "header", "api_key_header": "X-Api-Key"}); err != nil {
		return sc, err
	}
	b, err := call("POST", "/v1/connections", boot, map[string]any{"provider": "bench-upstream", "end_user_id": "bench", "api_key": sc.apiKey})
	if err != nil {
		return sc, err
	}
	sc.fwdConn = id(b)
	// The token endpoint reads an API-key connection of its own: the import of an OAuth
	// grant (API.md) has no handler yet, and the read path (key check, one indexed read or
	// the sealed-row cache, open, audit) is the same for both credential types.
	b, err = call("POST", "/v1/connections", boot, map[string]any{"provider": "bench-upstream", "end_user_id": "bench-token",
		"api_key": "sk_bench_" + randomKey()[3:35]})
	if err != nil {
		return sc, err
	}
	sc.tokenConn = id(b)
	for i := range nkeys {
		b, err := call("POST", "/v1/api-keys", boot, map[string]any{"name": fmt.Sprint("bench-", i), "scopes": []string{"tokens:read"}})
		if err != nil {
			return sc, err
		}
		var k struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(b, &k); err != nil || k.Key == "" {
			return sc, fmt.Errorf("POST /v1/api-keys: no key in %d bytes", len(b))
		}
		sc.keys = append(sc.keys, k.Key)
	}
	sc.body, err = call("GET", "/v1/connections/"+sc.tokenConn+"/token", sc.keys[0], nil)
	return sc, err
}

// report prints one line per target: 2xx answers per second, the ratio to its baseline
// (and each round's, for the spread), p50 and p99 (median of the rounds; the p99 ratio to
// the baseline's), and every non-2xx answer by status and problem code.
func report(out io.Writer, ts []target, rs [][]load) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\t2xx req/s\tratio\tratio by round\tp50\tp99\tp99 ratio\tnon-2xx\t")
	type agg struct {
		rate     float64
		rates    []float64
		p50, p99 time.Duration
	}
	ag := make([]agg, len(ts))
	for i, rounds := range rs {
		var ok int64
		var secs float64
		var p50, p99 []time.Duration
		for _, l := range rounds {
			ok += l.Requests - l.bad()
			secs += l.Seconds
			ag[i].rates = append(ag[i].rates, float64(l.Requests-l.bad())/l.Seconds)
			p50, p99 = append(p50, l.P50), append(p99, l.P99)
		}
		ag[i].rate = float64(ok) / secs
		ag[i].p50, ag[i].p99 = median(p50), median(p99)
	}
	for i, t := range ts {
		a := ag[i]
		ratio, byRound, p99r := "1", "", ""
		if t.base >= 0 {
			b := ag[t.base]
			ratio = fmt.Sprintf("%.2f", a.rate/b.rate)
			var rr []string
			for r := range a.rates {
				if r < len(b.rates) {
					rr = append(rr, fmt.Sprintf("%.2f", a.rates[r]/b.rates[r]))
				}
			}
			byRound = strings.Join(rr, " ")
			p99r = fmt.Sprintf("%.1fx", float64(a.p99)/float64(b.p99))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.name, a.rate, ratio, byRound,
			roundDur(a.p50), roundDur(a.p99), p99r, non2xxSummary(rs[i]))
	}
	_ = tw.Flush()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func roundDur(d time.Duration) string {
	if d >= time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// non2xxSummary is "0" or "N (n status code, ...)" over all rounds.
func non2xxSummary(rounds []load) string {
	tot := map[string]int64{}
	var n int64
	for _, l := range rounds {
		for k, v := range l.Non2xx {
			tot[k] += v
			n += v
		}
	}
	if n == 0 {
		return "0"
	}
	keys := make([]string, 0, len(tot))
	for k := range tot {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return tot[keys[i]] > tot[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d× %s", tot[k], k)
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}
