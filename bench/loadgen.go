package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// load is one measured run of a load generator against one URL: what external prints.
type load struct {
	Requests int64            `json:"requests"` // answered, any status
	Seconds  float64          `json:"seconds"`
	P50      time.Duration    `json:"p50"`
	P99      time.Duration    `json:"p99"`
	Non2xx   map[string]int64 `json:"non2xx"` // "503 audit_unavailable" → n; "error: ..." for transport errors
}

func (l load) rate() float64 {
	if l.Seconds <= 0 {
		return 0
	}
	return float64(l.Requests) / l.Seconds
}

// bad is the number of answers that were not 2xx, transport errors included.
func (l load) bad() int64 {
	var n int64
	for _, v := range l.Non2xx {
		n += v
	}
	return n
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted: the smallest
// value with at least p% of the values at or below it; 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999999) // ceil, robust to float noise
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// problemCode is the "code" member of a problem+json body, or "-".
func problemCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) != nil || p.Code == "" {
		return "-"
	}
	return p.Code
}

// loadgenCmd is the harness's own load generator, run by external as a separate process
// (the harness re-executes itself): -c keep-alive connections for -duration against -url,
// each request carrying one of the keys of -keys-file (one per line, round robin; none:
// no Authorization header). It prints one JSON load on stdout.
func loadgenCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	url := fs.String("url", "", "target URL")
	conc := fs.Int("c", 32, "keep-alive connections")
	dur := fs.Duration("duration", 5*time.Second, "measuring time")
	keysFile := fs.String("keys-file", "", "API keys, one per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *conc < 1 || *dur <= 0 {
		return errors.New("-url, -c and -duration are required")
	}
	var auth []string
	if *keysFile != "" {
		f, err := os.Open(*keysFile)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k := strings.TrimSpace(sc.Text()); k != "" {
				auth = append(auth, "Bearer "+k)
			}
		}
		f.Close()
	}
	l, err := generate(ctx, *url, *conc, *dur, auth)
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(l)
}

// generate runs conc keep-alive clients against url for d.
func generate(ctx context.Context, url string, conc int, d time.Duration, auth []string) (load, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	non2xx := map[string]int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<16)
			bad := map[string]int64{}
			buf := make([]byte, 32<<10)
			for n := i; ctx.Err() == nil; n += conc {
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					bad["error: "+err.Error()]++
					break
				}
				if len(auth) > 0 {
					req.Header["Authorization"] = []string{auth[n%len(auth)]}
				}
				t0 := time.Now()
				res, err := client.Do(req.WithContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						bad["error: "+err.Error()]++
					}
					continue
				}
				var body []byte
				if res.StatusCode/100 != 2 {
					body, _ = io.ReadAll(io.LimitReader(res.Body, 4096))
				}
				_, _ = io.CopyBuffer(io.Discard, res.Body, buf)
				res.Body.Close()
				if ctx.Err() != nil && time.Since(start) >= d {
					break // cut off by the end of the run: not counted
				}
				mine = append(mine, time.Since(t0))
				if res.StatusCode/100 != 2 {
					bad[fmt.Sprintf("%d %s", res.StatusCode, problemCode(body))]++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			for k, v := range bad {
				non2xx[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	return load{Requests: int64(len(lat)), Seconds: el.Seconds(), P50: percentile(lat, 50), P99: percentile(lat, 99), Non2xx: non2xx}, nil
}
