// fastsut: a fast HTTP system under test for bench/bench_replay.py.
//
//	fastsut --listen 127.0.0.1:8080 --price http://127.0.0.1:9001 --stock http://127.0.0.1:9002 --review http://127.0.0.1:9003
//	fastsut --listen 127.0.0.1:8080 --deps http://127.0.0.1:9000      (one base URL for all three)
//
// GET /item/<id> fans out three outbound HTTP calls, in parallel, one per dependency:
// GET /price/<id>, GET /stock/<id>, GET /review/<id>. It copies X-Koala-Session and
// traceparent from the inbound request onto each outbound request when present (what
// `koala replay --concurrency N` needs to attribute outbound talks to sessions), and
// answers {"id":..., "price":..., "stock":..., "review":...} with the three bodies embedded
// as they came (deterministic for deterministic dependencies), Content-Length set.
// A failed dependency call gives 502 with {"error": ...}. GET /health answers "ok".
//
// Standard library only. Keep-alive on both sides; the outbound client pools enough idle
// connections per host for the replayer's concurrency.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var propagated = []string{"X-Koala-Session", "Traceparent"}

type dependency struct {
	name string // also the path prefix: /<name>/<id>
	base string // http://host:port
}

type server struct {
	deps   []dependency
	client *http.Client
}

type fetched struct {
	body []byte
	err  error
}

func (s *server) call(ctx context.Context, dep dependency, id string, inbound http.Header) fetched {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dep.base+"/"+dep.name+"/"+id, nil)
	if err != nil {
		return fetched{err: err}
	}
	for _, name := range propagated {
		if value := inbound.Get(name); value != "" {
			req.Header.Set(name, value)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fetched{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fetched{err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return fetched{err: fmt.Errorf("%s answered %d", dep.name, resp.StatusCode)}
	}
	if !json.Valid(body) {
		return fetched{err: fmt.Errorf("%s answered a body that is not JSON", dep.name)}
	}
	return fetched{body: body}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func (s *server) item(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/item/")
	if id == "" || strings.Contains(id, "/") {
		writeJSON(w, http.StatusNotFound, []byte(`{"error":"no such item"}`))
		return
	}
	results := make([]fetched, len(s.deps))
	var wg sync.WaitGroup
	for i, dep := range s.deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.call(r.Context(), dep, id, r.Header)
		}()
	}
	wg.Wait()
	var out bytes.Buffer
	out.WriteString(`{"id":`)
	quoted, _ := json.Marshal(id)
	out.Write(quoted)
	for i, dep := range s.deps {
		if results[i].err != nil {
			msg, _ := json.Marshal(map[string]string{"error": results[i].err.Error()})
			writeJSON(w, http.StatusBadGateway, msg)
			return
		}
		fmt.Fprintf(&out, `,%q:`, dep.name)
		out.Write(results[i].body)
	}
	out.WriteString("}")
	writeJSON(w, http.StatusOK, out.Bytes())
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	deps := flag.String("deps", "", "one base URL for all three dependencies (http://host:port)")
	price := flag.String("price", "", "base URL of the price service (default: --deps)")
	stock := flag.String("stock", "", "base URL of the stock service (default: --deps)")
	review := flag.String("review", "", "base URL of the review service (default: --deps)")
	idle := flag.Int("idle-per-host", 256, "idle keep-alive connections kept per dependency host")
	flag.Parse()

	var list []dependency
	for _, d := range []struct {
		name string
		url  *string
	}{{"price", price}, {"stock", stock}, {"review", review}} {
		base := *d.url
		if base == "" {
			base = *deps
		}
		if base == "" {
			log.Fatalf("no address for the %s service: give --%s or --deps", d.name, d.name)
		}
		list = append(list, dependency{d.name, strings.TrimRight(base, "/")})
	}

	transport := &http.Transport{
		Proxy:               nil, // loopback dependencies; never an environment proxy
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *idle * len(list),
		MaxIdleConnsPerHost: *idle,
		IdleConnTimeout:     90 * time.Second,
	}
	s := &server{deps: list, client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /item/", s.item)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`"ok"`))
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("cannot listen on %s: %v", *listen, err)
	}
	fmt.Fprintf(os.Stderr, "fastsut listening on %s\n", ln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
