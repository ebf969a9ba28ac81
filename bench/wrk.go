package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkScript is the Lua script given to wrk: round-robin Authorization over the keys (each
// thread starts at its own offset) and, for every answer that is not 2xx, a count by status
// and problem code, printed by done() as "non2xx <status> <code> <n>" lines.
const wrkScript = `local keys = {%s}
local i = 0
counts = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) i = math.random(0, 1000) end
function request()
  i = i + 1
  if #keys == 0 then return wrk.format("GET") end
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. keys[(i %% #keys) + 1]})
end
function response(status, headers, body)
  if status >= 200 and status < 300 then return end
  local code = body and string.match(body, '"code"%%s*:%%s*"([^"]+)"') or "-"
  local k = status .. " " .. code
  counts[k] = (counts[k] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("counts")) do total[k] = (total[k] or 0) + n end
  end
  for k, n in pairs(total) do io.write("non2xx " .. k .. " " .. n .. "\n") end
end
`

// runWrk runs wrk (2 threads, conc connections, d) against url with the keys and parses
// its report.
func runWrk(ctx context.Context, dir, url string, conc int, d time.Duration, keys []string) (load, error) {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	script := filepath.Join(dir, "wrk.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(wrkScript, strings.Join(q, ","))), 0o600); err != nil {
		return load{}, err
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t2", fmt.Sprint("-c", conc), fmt.Sprintf("-d%ds", int(d.Seconds()+0.5)),
		"--latency", "--timeout", "10s", "-s", script, url)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return load{}, fmt.Errorf("wrk: %v: %s", err, b)
	}
	return parseWrk(string(b))
}

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\s*$`)
	wrkNon2xx   = regexp.MustCompile(`(?m)^non2xx (\d+) (\S+) (\d+)$`)
	wrkNon2xxN  = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrkDuration reads one of wrk's numbers with its unit (us, ms, s, m, h).
func wrkDuration(num, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[unit]
	return time.Duration(f * mult), nil
}

// parseWrk reads wrk's --latency report (and the lines our script's done() prints).
// Socket errors count as non-2xx ("error: socket read" etc.); wrk's own "Non-2xx or 3xx"
// total must match the script's breakdown, or the difference is reported as "? unknown".
func parseWrk(s string) (load, error) {
	var l load
	m := wrkRequests.FindStringSubmatch(s)
	if m == nil {
		return l, fmt.Errorf("wrk: no request count in output: %q", s)
	}
	l.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	d, err := wrkDuration(m[2], m[3])
	if err != nil {
		return l, err
	}
	l.Seconds = d.Seconds()
	for _, p := range wrkPct.FindAllStringSubmatch(s, -1) {
		v, err := wrkDuration(p[2], p[3])
		if err != nil {
			return l, err
		}
		if p[1] == "50" {
			l.P50 = v
		} else {
			l.P99 = v
		}
	}
	if l.P50 == 0 || l.P99 == 0 {
		return l, fmt.Errorf("wrk: no latency distribution (run with --latency): %q", s)
	}
	l.Non2xx = map[string]int64{}
	var listed int64
	for _, n := range wrkNon2xx.FindAllStringSubmatch(s, -1) {
		c, _ := strconv.ParseInt(n[3], 10, 64)
		l.Non2xx[n[1]+" "+n[2]] += c
		listed += c
	}
	if n := wrkNon2xxN.FindStringSubmatch(s); n != nil {
		total, _ := strconv.ParseInt(n[1], 10, 64)
		// wrk counts status ≥ 400; the script lists every non-2xx: a shortfall is shown.
		if total > listed {
			l.Non2xx["? unlisted"] += total - listed
		}
	}
	if m := wrkSocket.FindStringSubmatch(s); m != nil {
		for i, kind := range []string{"connect", "read", "write", "timeout"} {
			if c, _ := strconv.ParseInt(m[i+1], 10, 64); c > 0 {
				l.Non2xx["error: socket "+kind] += c
			}
		}
	}
	return l, nil
}

// haveWrk reports whether wrk is on PATH.
func haveWrk() bool {
	_, err := exec.LookPath("wrk")
	return err == nil
}
