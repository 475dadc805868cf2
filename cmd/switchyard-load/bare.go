package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// bareServer is the bare-HTTP baseline: it decodes the JSON request body and
// answers a Paydock-shaped 201 envelope with a random 24-hex _id, storing
// nothing. Its figure is the ceiling of net/http + JSON on this machine.
type bareServer struct {
	srv *http.Server
	ln  net.Listener
}

func startBare() (*bareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(bareHandler),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() { _ = srv.Serve(ln) }()
	return &bareServer{srv: srv, ln: ln}, nil
}

func (b *bareServer) URL() string { return "http://" + b.ln.Addr().String() }

func (b *bareServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		_ = b.srv.Close()
	}
}

func bareHandler(w http.ResponseWriter, r *http.Request) {
	var v map[string]any
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&v); err != nil {
		var mbe *http.MaxBytesError
		status := http.StatusBadRequest
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"status":400,"error":{"message":"invalid JSON body"},"resource":null}`)
		return
	}
	var raw [12]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	var id [24]byte
	hex.Encode(id[:], raw[:])

	b := make([]byte, 0, 112)
	b = append(b, `{"status":201,"error":null,"resource":{"type":"gateway","data":{"_id":"`...)
	b = append(b, id[:]...)
	b = append(b, `"}}}`...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}
