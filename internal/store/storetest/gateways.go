package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/page"
	"switchyard/internal/paydock"
	"switchyard/internal/store"
)

func newGateway(account, typ, name, mode string, at time.Time) *gateway.Gateway {
	g := &gateway.Gateway{ID: paydock.NewID(), AccountID: account, Type: typ, Name: name, Mode: mode, CreatedAt: at, UpdatedAt: at}
	if typ == gateway.Stripe {
		g.Credentials = []byte("sealed:" + g.ID)
		g.KeyVersion = 3
	}
	return g
}

func mustCreate(t *testing.T, s *store.Store, g *gateway.Gateway) gateway.Gateway {
	t.Helper()
	must(t, "CreateGateway "+g.Name, s.CreateGateway(ctx(t), g))
	return *g
}

func mustGet(t *testing.T, s *store.Store, account, id string) gateway.Gateway {
	t.Helper()
	g, err := s.GetGateway(ctx(t), account, id)
	must(t, "GetGateway", err)
	return g
}

// defaults lists the ids of the account's default gateways, archived too.
func defaults(t *testing.T, s *store.Store, account string) []string {
	t.Helper()
	var ids []string
	for _, arch := range []bool{false, true} {
		gs, _, err := s.ListGateways(ctx(t), account, gateway.Filter{}, page.Params{Limit: page.MaxLimit, Archived: arch})
		must(t, "ListGateways", err)
		for _, g := range gs {
			if g.Default {
				ids = append(ids, g.ID)
			}
		}
	}
	return ids
}

func wantDefaults(t *testing.T, s *store.Store, account string, want ...string) {
	t.Helper()
	got := defaults(t, s, account)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("default gateways of %s = %v, want %v", account, got, want)
	}
}

func ids(gs []gateway.Gateway) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.ID
	}
	return out
}

var errStop = errors.New("storetest: fn refused")

func runGateways(t *testing.T, open Open) {
	runTable(t, open, []test{
		{"create and get round trip", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			at := now()
			g := newGateway(a.ID, gateway.Stripe, "Main", gateway.ModeLive, at)
			g.UpdatedAt = at.Add(1500 * time.Millisecond)
			want := mustCreate(t, s, g)
			if !want.Default {
				t.Errorf("first gateway not marked default on create")
			}
			got := mustGet(t, s, a.ID, g.ID)
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("stored gateway (-want +got):\n%s", diff)
			}
			sim := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "Sim", gateway.ModeTest, at))
			got = mustGet(t, s, a.ID, sim.ID)
			if got.Credentials != nil || got.KeyVersion != 0 {
				t.Errorf("gateway without credentials: Credentials=%v KeyVersion=%d", got.Credentials, got.KeyVersion)
			}
		}},
		{"first active gateway becomes default", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			b, _, _ := mustAccount(t, s, "Other")
			g1 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "one", gateway.ModeTest, now()))
			g2 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "two", gateway.ModeTest, now()))
			if !g1.Default || g2.Default {
				t.Fatalf("Default after create: first=%v second=%v, want true false", g1.Default, g2.Default)
			}
			wantDefaults(t, s, a.ID, g1.ID)
			// Another account's first gateway is its own default.
			gb := mustCreate(t, s, newGateway(b.ID, gateway.Simulator, "b", gateway.ModeTest, now()))
			if !gb.Default {
				t.Fatalf("other account's first gateway is not default")
			}
			wantDefaults(t, s, a.ID, g1.ID)
			wantDefaults(t, s, b.ID, gb.ID)
		}},
		{"first gateway after archiving all becomes default", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			g1 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "one", gateway.ModeTest, now()))
			_, err := s.UpdateGateway(ctx(t), a.ID, g1.ID, func(g *gateway.Gateway) error {
				g.Archived, g.Default = true, false
				return nil
			})
			must(t, "archive", err)
			wantDefaults(t, s, a.ID)
			g2 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "two", gateway.ModeTest, now()))
			if !g2.Default {
				t.Fatalf("first active gateway (after archive) not default")
			}
			wantDefaults(t, s, a.ID, g2.ID)
		}},
		{"a new default clears the old", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			b, _, _ := mustAccount(t, s, "Other")
			gb := mustCreate(t, s, newGateway(b.ID, gateway.Simulator, "b", gateway.ModeTest, now()))
			g1 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "one", gateway.ModeTest, now()))
			g2 := newGateway(a.ID, gateway.Simulator, "two", gateway.ModeTest, now())
			g2.Default = true
			mustCreate(t, s, g2)
			wantDefaults(t, s, a.ID, g2.ID)
			if mustGet(t, s, a.ID, g1.ID).Default {
				t.Fatalf("old default still set")
			}
			// Through an update.
			g3 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "three", gateway.ModeTest, now()))
			up, err := s.UpdateGateway(ctx(t), a.ID, g3.ID, func(g *gateway.Gateway) error {
				g.Default = true
				return nil
			})
			must(t, "UpdateGateway", err)
			if !up.Default {
				t.Fatalf("updated gateway not default")
			}
			wantDefaults(t, s, a.ID, g3.ID)
			// Setting the default again on the default keeps it.
			_, err = s.UpdateGateway(ctx(t), a.ID, g3.ID, func(g *gateway.Gateway) error { return nil })
			must(t, "UpdateGateway", err)
			wantDefaults(t, s, a.ID, g3.ID)
			// The other account is untouched.
			wantDefaults(t, s, b.ID, gb.ID)
		}},
		{"update applies fn", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			at := now()
			g := mustCreate(t, s, newGateway(a.ID, gateway.Stripe, "old", gateway.ModeTest, at))
			later := at.Add(time.Hour)
			var seen gateway.Gateway
			up, err := s.UpdateGateway(ctx(t), a.ID, g.ID, func(x *gateway.Gateway) error {
				seen = *x
				x.Name = "new"
				x.Mode = gateway.ModeLive
				x.Credentials = []byte("resealed")
				x.KeyVersion = 4
				x.UpdatedAt = later
				return nil
			})
			must(t, "UpdateGateway", err)
			if diff := gocmp.Diff(g, seen); diff != "" {
				t.Errorf("fn saw (-stored +seen):\n%s", diff)
			}
			want := g
			want.Name, want.Mode, want.Credentials, want.KeyVersion, want.UpdatedAt = "new", gateway.ModeLive, []byte("resealed"), 4, later
			if diff := gocmp.Diff(want, up); diff != "" {
				t.Errorf("returned (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(want, mustGet(t, s, a.ID, g.ID)); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
		}},
		{"update fn error leaves the row unchanged", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			g1 := mustCreate(t, s, newGateway(a.ID, gateway.Stripe, "one", gateway.ModeTest, now()))
			g2 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "two", gateway.ModeTest, now()))
			domainErr := errs.Unfulfilledf("", "gateway is archived")
			for _, fnErr := range []error{errStop, domainErr} {
				up, err := s.UpdateGateway(ctx(t), a.ID, g2.ID, func(g *gateway.Gateway) error {
					g.Name = "changed"
					g.Default = true
					g.Archived = true
					g.UpdatedAt = g.UpdatedAt.Add(time.Hour)
					return fnErr
				})
				if err != fnErr {
					t.Fatalf("err = %v, want fn's error %v as it is", err, fnErr)
				}
				if !gocmp.Equal(up, gateway.Gateway{}) {
					t.Errorf("returned gateway on error = %+v, want zero", up)
				}
				if diff := gocmp.Diff(g2, mustGet(t, s, a.ID, g2.ID)); diff != "" {
					t.Errorf("row changed (-want +got):\n%s", diff)
				}
				if diff := gocmp.Diff(g1, mustGet(t, s, a.ID, g1.ID)); diff != "" {
					t.Errorf("other row changed (-want +got):\n%s", diff)
				}
			}
		}},
		{"update unknown id is NotFound", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			called := false
			_, err := s.UpdateGateway(ctx(t), a.ID, paydock.NewID(), func(*gateway.Gateway) error {
				called = true
				return nil
			})
			wantKind(t, "UpdateGateway", err, errs.NotFound)
			if called {
				t.Errorf("fn called for a missing gateway")
			}
			_, err = s.GetGateway(ctx(t), a.ID, paydock.NewID())
			wantKind(t, "GetGateway", err, errs.NotFound)
		}},
		{"archive clears default", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			g1 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "one", gateway.ModeTest, now()))
			g2 := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "two", gateway.ModeTest, now()))
			up, err := s.UpdateGateway(ctx(t), a.ID, g1.ID, func(g *gateway.Gateway) error {
				g.Archived, g.Default = true, false
				return nil
			})
			must(t, "archive", err)
			if !up.Archived || up.Default {
				t.Fatalf("archived gateway: Archived=%v Default=%v", up.Archived, up.Default)
			}
			got := mustGet(t, s, a.ID, g1.ID)
			if !got.Archived || got.Default {
				t.Fatalf("stored archived gateway: Archived=%v Default=%v", got.Archived, got.Default)
			}
			wantDefaults(t, s, a.ID)
			if mustGet(t, s, a.ID, g2.ID).Default {
				t.Fatalf("another gateway became default on archive")
			}
			active, n, err := s.ListGateways(ctx(t), a.ID, gateway.Filter{}, page.Params{Limit: 10})
			must(t, "ListGateways", err)
			if n != 1 || !slices.Equal(ids(active), []string{g2.ID}) {
				t.Fatalf("active list = %v (count %d), want [%s]", ids(active), n, g2.ID)
			}
			arch, n, err := s.ListGateways(ctx(t), a.ID, gateway.Filter{}, page.Params{Limit: 10, Archived: true})
			must(t, "ListGateways", err)
			if n != 1 || !slices.Equal(ids(arch), []string{g1.ID}) {
				t.Fatalf("archived list = %v (count %d), want [%s]", ids(arch), n, g1.ID)
			}
		}},
		{"account scoping", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "Acme")
			b, _, _ := mustAccount(t, s, "Other")
			ga := mustCreate(t, s, newGateway(a.ID, gateway.Simulator, "a", gateway.ModeTest, now()))
			mustCreate(t, s, newGateway(b.ID, gateway.Simulator, "b", gateway.ModeTest, now()))
			_, err := s.GetGateway(ctx(t), b.ID, ga.ID)
			wantKind(t, "GetGateway other account", err, errs.NotFound)
			called := false
			_, err = s.UpdateGateway(ctx(t), b.ID, ga.ID, func(g *gateway.Gateway) error {
				called = true
				g.Name = "stolen"
				return nil
			})
			wantKind(t, "UpdateGateway other account", err, errs.NotFound)
			if called {
				t.Errorf("fn called for another account's gateway")
			}
			if diff := gocmp.Diff(ga, mustGet(t, s, a.ID, ga.ID)); diff != "" {
				t.Errorf("row changed (-want +got):\n%s", diff)
			}
			gs, n, err := s.ListGateways(ctx(t), b.ID, gateway.Filter{}, page.Params{Limit: 10})
			must(t, "ListGateways", err)
			if n != 1 || len(gs) != 1 || gs[0].AccountID != b.ID {
				t.Fatalf("other account's list = %+v (count %d)", gs, n)
			}
			gs, n, err = s.ListGateways(ctx(t), paydock.NewID(), gateway.Filter{}, page.Params{Limit: 10})
			must(t, "ListGateways", err)
			if n != 0 || gs == nil || len(gs) != 0 {
				t.Fatalf("unknown account's list = %#v (count %d), want empty non-nil", gs, n)
			}
		}},
		{"list filters, sorts and pages", testList},
	})
}

// testList checks ListGateways against the same selection made in Go.
func testList(t *testing.T, s *store.Store) {
	a, _, _ := mustAccount(t, s, "Acme")
	b, _, _ := mustAccount(t, s, "Other")
	base := now().Add(-time.Hour)
	type spec struct {
		typ, name, mode string
		created, upd    int // seconds after base
		archived        bool
	}
	// Ties on every sort key, so the id tiebreak decides.
	specs := []spec{
		{gateway.Simulator, "alpha", gateway.ModeTest, 0, 50, false},
		{gateway.Stripe, "bravo", gateway.ModeTest, 0, 40, false},
		{gateway.Stripe, "bravo", gateway.ModeLive, 10, 40, false},
		{gateway.Simulator, "charlie", gateway.ModeTest, 10, 30, false},
		{gateway.Stripe, "alpha", gateway.ModeLive, 10, 30, false},
		{gateway.Stripe, "delta", gateway.ModeLive, 20, 20, false},
		{gateway.Simulator, "alpha", gateway.ModeTest, 20, 60, false},
		{gateway.Stripe, "echo", gateway.ModeTest, 30, 10, false},
		{gateway.Simulator, "bravo", gateway.ModeTest, 30, 70, false},
		{gateway.Stripe, "alpha", gateway.ModeLive, 40, 80, true},
		{gateway.Simulator, "foxtrot", gateway.ModeTest, 5, 5, true},
		{gateway.Stripe, "golf", gateway.ModeTest, 40, 90, true},
	}
	var all []gateway.Gateway
	for _, sp := range specs {
		g := newGateway(a.ID, sp.typ, sp.name, sp.mode, base.Add(time.Duration(sp.created)*time.Second))
		g.UpdatedAt = base.Add(time.Duration(sp.upd) * time.Second)
		g.Archived = sp.archived
		g.Default = false
		mustCreate(t, s, g)
		all = append(all, mustGet(t, s, a.ID, g.ID))
	}
	// Noise in another account.
	for i := range 3 {
		mustCreate(t, s, newGateway(b.ID, gateway.Stripe, "alpha", gateway.ModeLive, base.Add(time.Duration(i)*time.Second)))
	}

	key := map[string]func(g gateway.Gateway) string{
		"created_at": func(g gateway.Gateway) string { return fmt.Sprintf("%020d", g.CreatedAt.UnixMilli()) },
		"updated_at": func(g gateway.Gateway) string { return fmt.Sprintf("%020d", g.UpdatedAt.UnixMilli()) },
		"name":       func(g gateway.Gateway) string { return g.Name },
	}
	expect := func(f gateway.Filter, p page.Params) []gateway.Gateway {
		sel := []gateway.Gateway{}
		for _, g := range all {
			if g.Archived == p.Archived && (f.Type == "" || g.Type == f.Type) && (f.Mode == "" || g.Mode == f.Mode) {
				sel = append(sel, g)
			}
		}
		k := key[p.SortKey]
		if k == nil {
			k = key["created_at"]
		}
		slices.SortFunc(sel, func(x, y gateway.Gateway) int {
			c := cmp.Or(cmp.Compare(k(x), k(y)), strings.Compare(x.ID, y.ID))
			if p.Desc {
				return -c
			}
			return c
		})
		return sel
	}

	filters := []gateway.Filter{
		{},
		{Type: gateway.Stripe},
		{Type: gateway.Simulator},
		{Mode: gateway.ModeLive},
		{Mode: gateway.ModeTest},
		{Type: gateway.Stripe, Mode: gateway.ModeTest},
		{Type: gateway.Simulator, Mode: gateway.ModeLive},
	}
	for _, f := range filters {
		for _, archived := range []bool{false, true} {
			for _, sortKey := range []string{"", "created_at", "updated_at", "name"} {
				for _, desc := range []bool{false, true} {
					p := page.Params{Limit: page.MaxLimit, SortKey: sortKey, Desc: desc, Archived: archived}
					want := expect(f, p)
					got, n, err := s.ListGateways(ctx(t), a.ID, f, p)
					must(t, "ListGateways", err)
					if n != len(want) {
						t.Errorf("%+v %+v: count = %d, want %d", f, p, n, len(want))
					}
					if diff := gocmp.Diff(ids(want), ids(got)); diff != "" {
						t.Errorf("%+v %+v: ids (-want +got):\n%s", f, p, diff)
					}
					if len(want) == len(got) {
						if diff := gocmp.Diff(want, got); diff != "" {
							t.Errorf("%+v %+v: rows (-want +got):\n%s", f, p, diff)
						}
					}
				}
			}
		}
	}

	// Paging: every skip/limit window of the full order, with the same count.
	for _, sortKey := range []string{"created_at", "updated_at", "name"} {
		for _, desc := range []bool{false, true} {
			full := ids(expect(gateway.Filter{}, page.Params{SortKey: sortKey, Desc: desc}))
			for _, limit := range []int{1, 2, 4, 100} {
				var joined []string
				for skip := 0; skip <= len(full)+1; skip += limit {
					p := page.Params{Skip: skip, Limit: limit, SortKey: sortKey, Desc: desc}
					got, n, err := s.ListGateways(ctx(t), a.ID, gateway.Filter{}, p)
					must(t, "ListGateways", err)
					if n != len(full) {
						t.Errorf("%+v: count = %d, want %d (independent of paging)", p, n, len(full))
					}
					end := min(skip+limit, len(full))
					want := []string{}
					if skip < len(full) {
						want = full[skip:end]
					}
					if diff := gocmp.Diff(want, ids(got)); diff != "" {
						t.Errorf("%+v: page (-want +got):\n%s", p, diff)
					}
					joined = append(joined, ids(got)...)
				}
				if !slices.Equal(joined, full) {
					t.Errorf("sort %s desc=%v limit %d: pages joined = %v, want %v", sortKey, desc, limit, joined, full)
				}
			}
		}
	}
	// Count with a filter is independent of paging too.
	p := page.Params{Skip: 1, Limit: 1, SortKey: "name"}
	got, n, err := s.ListGateways(ctx(t), a.ID, gateway.Filter{Type: gateway.Stripe}, p)
	must(t, "ListGateways", err)
	if want := len(expect(gateway.Filter{Type: gateway.Stripe}, p)); n != want || len(got) != 1 {
		t.Errorf("filtered page: %d rows, count %d; want 1 row, count %d", len(got), n, want)
	}
}
