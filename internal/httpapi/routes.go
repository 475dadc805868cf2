package httpapi

import (
	"net/http"
	"sort"
	"strings"

	"switchyard/internal/errs"
)

// routeTable is the whole API surface on one screen.
func (s *Server) routeTable() []route {
	return []route{
		{method: "POST", pattern: "/v1/gateways", rtype: "gateway", auth: authSecret, h: s.createGateway},
		{method: "GET", pattern: "/v1/gateways", rtype: "gateway", auth: authSecret, h: s.listGateways},
		{method: "GET", pattern: "/v1/gateways/{id}", rtype: "gateway", auth: authSecret, h: s.getGateway},
		{method: "PUT", pattern: "/v1/gateways/{id}", rtype: "gateway", auth: authSecret, exists: s.gatewayExists, h: s.updateGateway},
		{method: "DELETE", pattern: "/v1/gateways/{id}", rtype: "gateway", auth: authSecret, h: s.archiveGateway},
		{method: "GET", pattern: "/v1/services", rtype: "service", auth: authSecret, h: s.listServices},

		{method: "POST", pattern: "/v1/payment_sources/tokens", rtype: "token", auth: authPublic, h: s.createToken},

		{method: "POST", pattern: "/v1/vault/payment_sources", rtype: "payment_source", auth: authSecret, h: s.createVault},
		{method: "GET", pattern: "/v1/vault/payment_sources", rtype: "payment_source", auth: authSecret, h: s.listVault},
		{method: "GET", pattern: "/v1/vault/payment_sources/{token}", rtype: "payment_source", auth: authSecret, h: s.getVault},
		{method: "DELETE", pattern: "/v1/vault/payment_sources/{token}", rtype: "payment_source", auth: authSecret, h: s.archiveVault},
		{method: "GET", pattern: "/v1/vault-tokens/{token}", rtype: "payment_source", auth: authSecret, h: s.getVault},
		{method: "DELETE", pattern: "/v1/vault-tokens/{token}", rtype: "payment_source", auth: authSecret, h: s.archiveVault},

		{method: "POST", pattern: "/v1/customers", rtype: "customer", auth: authSecret, h: s.createCustomer, resumed: http.StatusCreated},
		{method: "GET", pattern: "/v1/customers", rtype: "customer", auth: authSecret, h: s.listCustomers},
		{method: "GET", pattern: "/v1/customers/payment_sources", rtype: "payment_source", auth: authPublic, h: s.publicSources},
		{method: "GET", pattern: "/v1/customers/{id}", rtype: "customer", auth: authSecret, h: s.getCustomer},
		{method: "POST", pattern: "/v1/customers/{id}", rtype: "customer", auth: authSecret, exists: s.customerExists, h: s.updateCustomer, resumed: http.StatusOK},
		{method: "DELETE", pattern: "/v1/customers/{id}", rtype: "customer", auth: authSecret, h: s.archiveCustomer},
		{method: "POST", pattern: "/v1/customers/{id}/payment_sources/{payment_source_id}", rtype: "customer", auth: authSecret, exists: s.customerExists, h: s.replaceSource},
		{method: "DELETE", pattern: "/v1/customers/{id}/payment_sources/{payment_source_id}", rtype: "customer", auth: authSecret, h: s.archiveSource},

		{method: "POST", pattern: "/v1/charges", rtype: "charge", auth: authSecret, h: s.createCharge, resumed: http.StatusCreated},
		{method: "GET", pattern: "/v1/charges", rtype: "charge", auth: authSecret, h: s.listCharges},
		{method: "GET", pattern: "/v1/charges/{id}", rtype: "charge", auth: authSecret, h: s.getCharge},
		{method: "DELETE", pattern: "/v1/charges/{id}", rtype: "charge", auth: authSecret, h: s.archiveCharge},
		{method: "POST", pattern: "/v1/charges/{id}/capture", rtype: "charge", auth: authSecret, exists: s.chargeExists, h: s.captureCharge, resumed: http.StatusCreated},
		{method: "DELETE", pattern: "/v1/charges/{id}/capture", rtype: "charge", auth: authSecret, h: s.cancelCharge},
		{method: "POST", pattern: "/v1/charges/{id}/refunds", rtype: "charge", auth: authSecret, exists: s.chargeExists, h: s.refundCharge, resumed: http.StatusOK},
	}
}

// publicPaths are the public-key endpoints, which answer CORS for any origin.
var publicPaths = map[string]bool{"/v1/payment_sources/tokens": true, "/v1/customers/payment_sources": true}

// register installs one ServeMux handler per path pattern; it dispatches on
// the method itself so that 404 and 405 get Paydock bodies.
func (s *Server) register() {
	byPattern := map[string]map[string]route{}
	var order []string
	for _, rt := range s.routes {
		if byPattern[rt.pattern] == nil {
			byPattern[rt.pattern] = map[string]route{}
			order = append(order, rt.pattern)
		}
		byPattern[rt.pattern][rt.method] = rt
	}
	for _, pattern := range order {
		methods := byPattern[pattern]
		var allowed []string
		for m := range methods {
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		allow := strings.Join(allowed, ", ")
		public := publicPaths[pattern]
		rtype := resourceTypeFor(pattern)
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			info(r.Context()).route = pattern
			if r.Method == http.MethodOptions {
				s.preflight(w, r, public)
				return
			}
			s.cors(w, r, public)
			rt, ok := methods[r.Method]
			if !ok {
				w.Header().Set("Allow", allow)
				s.writeError(w, r, &errs.Error{Kind: errs.NotAllowed, Messages: []string{"allowed: " + allow}}, rtype, nil)
				return
			}
			s.serve(rt, w, r)
		})
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /v1/openapi.yaml", s.openapi)
	ops := []string{"/healthz", "/v1/openapi.yaml"}
	if s.MetricsHandler != nil {
		s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			info(r.Context()).route = "/metrics"
			s.MetricsHandler.ServeHTTP(w, r)
		})
		ops = append(ops, "/metrics")
	}
	// Another method on an operational path: 405 with Allow (§1.1).
	for _, p := range ops {
		s.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			info(r.Context()).route = p
			w.Header().Set("Allow", "GET")
			s.writeError(w, r, &errs.Error{Kind: errs.NotAllowed, Messages: []string{"allowed: GET"}}, "path", nil)
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &errs.Error{Kind: errs.NotFound}, "path", nil)
	})
}

// cors adds the CORS headers of an actual request (spec §2.5).
func (s *Server) cors(w http.ResponseWriter, r *http.Request, public bool) {
	if public {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && s.origins[o] {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	}
}

// preflight answers OPTIONS before authentication (spec §2.5).
func (s *Server) preflight(w http.ResponseWriter, r *http.Request, public bool) {
	h := w.Header()
	switch o := r.Header.Get("Origin"); {
	case public:
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, X-User-Public-Key, Idempotency-Key")
		h.Set("Access-Control-Max-Age", "600")
	case o != "" && s.origins[o]:
		h.Set("Access-Control-Allow-Origin", o)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, X-User-Secret-Key, X-User-Public-Key, Idempotency-Key")
		h.Set("Access-Control-Max-Age", "600")
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
