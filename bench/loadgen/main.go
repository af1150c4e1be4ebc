// loadgen: the load side of bench/bench_record.py, in Go so the client is not what limits
// the figures.
//
//	loadgen deps --listen 127.0.0.1:9000
//	    a dependency server: GET /<name>/<id> answers deterministic JSON (keep-alive), for
//	    bench/fastsut's price, stock and review calls.
//	loadgen load --url http://127.0.0.1:8080 --connections 16 --duration 5s [--requests N]
//	    GET /item/<i> on keep-alive connections; prints one JSON line: requests, errors,
//	    seconds, rps, p50_ms, p90_ms, p99_ms, max_ms.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func deps(args []string) {
	fs := flag.NewFlagSet("deps", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "address to serve on")
	fs.Parse(args)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(parts) != 2 {
			http.NotFound(w, r)
			return
		}
		id, err := strconv.Atoi(parts[1])
		if err != nil {
			http.NotFound(w, r)
			return
		}
		body := fmt.Sprintf(`{"id":%d,"kind":%q,"value":%d,"note":"deterministic"}`, id, parts[0], (id*7919)%100000)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("cannot listen on %s: %v", *listen, err)
	}
	log.Fatal(http.Serve(ln, handler))
}

type result struct {
	Requests    int     `json:"requests"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_ms"`
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	Connections int     `json:"connections"`
}

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "base URL")
	connections := fs.Int("connections", 1, "keep-alive connections, one request at a time each")
	duration := fs.Duration("duration", 5*time.Second, "how long to send (unless --requests)")
	requests := fs.Int("requests", 0, "stop after this many requests in all (0: run for --duration)")
	fs.Parse(args)
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: *connections, MaxConnsPerHost: *connections, DisableCompression: true}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	var next, errors atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	deadline := time.Now().Add(*duration)
	started := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < *connections; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := next.Add(1)
				if *requests > 0 && i > int64(*requests) || *requests == 0 && time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				resp, err := client.Get(fmt.Sprintf("%s/item/%d", *url, i))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errors.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	out := result{len(latencies), errors.Load(), elapsed, float64(len(latencies)) / elapsed, pct(0.5), pct(0.9), pct(0.99), pct(1), *connections}
	json.NewEncoder(os.Stdout).Encode(out)
}

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: loadgen deps|load [flags]")
	}
	switch os.Args[1] {
	case "deps":
		deps(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		log.Fatalf("unknown mode %q: deps or load", os.Args[1])
	}
}
