package httpapi

import (
	"net/http"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/paydock"
)

// gatewayJSON is the wire gateway (spec §4.1); credentials never appear.
type gatewayJSON struct {
	ID        string       `json:"_id"`
	CompanyID string       `json:"company_id"`
	Type      string       `json:"type"`
	Name      string       `json:"name"`
	Mode      string       `json:"mode"`
	Default   bool         `json:"default"`
	Archived  bool         `json:"archived"`
	CreatedAt paydock.Time `json:"created_at"`
	UpdatedAt paydock.Time `json:"updated_at"`
}

func toGatewayJSON(g gateway.Gateway) gatewayJSON {
	return gatewayJSON{ID: g.ID, CompanyID: g.AccountID, Type: g.Type, Name: g.Name, Mode: g.Mode, Default: g.Default,
		Archived: g.Archived, CreatedAt: paydock.Time(g.CreatedAt), UpdatedAt: paydock.Time(g.UpdatedAt)}
}

// gatewayInput decodes a gateway body in the field order of spec §4.1. A
// field of the wrong JSON type is kept in in.Bad, so the service reports it
// in its turn of the table order (spec §3.4).
func gatewayInput(b paydock.Object) gateway.Input {
	in := gateway.Input{Bad: map[string]error{}}
	var err error
	if in.Type, in.TypeSet, err = b.StringSet("type"); err != nil {
		in.Bad["type"] = err
	}
	if in.Name, in.NameSet, err = b.StringSet("name"); err != nil {
		in.Bad["name"] = err
	}
	if in.Mode, in.ModeSet, err = b.StringSet("mode"); err != nil {
		in.Bad["mode"] = err
	}
	if in.Key, in.KeySet, err = b.StringSet("key"); err != nil {
		in.Bad["key"] = err
	}
	if in.Default, in.DefaultSet, err = b.Bool("default"); err != nil {
		in.Bad["default"] = err
	}
	// "" means absent (L7): a PUT with "name":"" keeps the name (§4.1:
	// name is optional on update); a create still requires one.
	in.NameSet = in.NameSet && in.Name != ""
	in.TypeSet = in.TypeSet && in.Type != ""
	in.ModeSet = in.ModeSet && in.Mode != ""
	in.KeySet = in.KeySet && in.Key != ""
	return in
}

func (s *Server) createGateway(c *call) (int, any, error) {
	g, err := s.Gateways.Create(c.ctx, c.account.ID, gatewayInput(c.body))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, toGatewayJSON(g), nil
}

func (s *Server) listGateways(c *call) (int, any, error) {
	p, err := pageParams(c, "created_at", "updated_at", "name")
	if err != nil {
		return 0, nil, err
	}
	var f gateway.Filter
	if v := c.query.Get("type"); v != "" {
		if f.Type = gateway.CanonicalType(v); f.Type == "" {
			return 0, nil, errs.Query("type", "type must be one of: Simulator, Stripe")
		}
	}
	if v := c.query.Get("mode"); v != "" {
		if v != gateway.ModeTest && v != gateway.ModeLive {
			return 0, nil, errs.Query("mode", "mode must be one of: test, live")
		}
		f.Mode = v
	}
	gs, n, err := s.Gateways.List(c.ctx, c.account.ID, f, p)
	if err != nil {
		return 0, nil, err
	}
	out := make([]gatewayJSON, len(gs))
	for i, g := range gs {
		out[i] = toGatewayJSON(g)
	}
	return http.StatusOK, paydock.List{Data: out, Count: n, Skip: p.Skip, Limit: p.Limit}, nil
}

func (s *Server) gatewayExists(c *call) error {
	_, err := s.Gateways.Get(c.ctx, c.account.ID, c.param("id"))
	return err
}

func (s *Server) getGateway(c *call) (int, any, error) {
	g, err := s.Gateways.Get(c.ctx, c.account.ID, c.param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toGatewayJSON(g), nil
}

func (s *Server) updateGateway(c *call) (int, any, error) {
	g, err := s.Gateways.Update(c.ctx, c.account.ID, c.param("id"), gatewayInput(c.body))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toGatewayJSON(g), nil
}

func (s *Server) archiveGateway(c *call) (int, any, error) {
	g, err := s.Gateways.Archive(c.ctx, c.account.ID, c.param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toGatewayJSON(g), nil
}

// listServices is the compatibility stub of spec §4.4: always empty.
func (s *Server) listServices(c *call) (int, any, error) {
	p, err := pageParams(c, "created_at", "updated_at")
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, paydock.List{Data: []struct{}{}, Count: 0, Skip: p.Skip, Limit: p.Limit}, nil
}
