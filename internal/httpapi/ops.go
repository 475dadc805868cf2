package httpapi

import (
	"context"
	"net/http"
	"time"
)

// healthz answers 200 while the store answers, 503 otherwise (spec §10).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	info(r.Context()).route = "/healthz"
	if s.Health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Health(ctx); err != nil {
			info(r.Context()).log().Warn("health check failed", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, []byte(`{"status":"unavailable"}`+"\n"))
			return
		}
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
}

// openapi serves the API description (spec §10).
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	info(r.Context()).route = "/v1/openapi.yaml"
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(s.OpenAPI)
}
