package storetest

import (
	"sync"
	"testing"

	"switchyard/internal/customer"
	"switchyard/internal/errs"
	"switchyard/internal/page"
	"switchyard/internal/paydock"
	"switchyard/internal/store"
	"switchyard/internal/vault"
)

// newCustomer is a customer with one new source and the source's new vault
// record (flow 1's shape), ready for CreateCustomer.
func newCustomer(account, first string) (*customer.Customer, customer.NewSource) {
	n := now()
	c := &customer.Customer{ID: paydock.NewID(), AccountID: account, Text: customer.Text{FirstName: first}, CreatedAt: n, UpdatedAt: n}
	v := &vault.Record{Token: paydock.NewID(), AccountID: account, Kind: vault.Permanent, Status: vault.Active, Last4: "4242",
		ExpMonth: 1, ExpYear: 2040, Sealed: []byte{9}, KeyVersion: 1, CreatedAt: n, UpdatedAt: n}
	src := customer.Source{ID: paydock.NewID(), CustomerID: c.ID, AccountID: account, VaultToken: v.Token, Status: "active",
		CreatedAt: n, UpdatedAt: n}
	c.DefaultSource = src.ID
	return c, customer.NewSource{Vault: v, Source: src}
}

// customerTotal is the account's active customer total, as a list reports it.
func customerTotal(t *testing.T, s *store.Store, account string) int {
	t.Helper()
	_, n, err := s.ListCustomers(ctx(t), account, customer.Filter{}, page.Params{Limit: 1})
	must(t, "ListCustomers", err)
	return n
}

func runCustomers(t *testing.T, open Open) {
	runTable(t, open, []test{
		{"create writes customer, source, vault record and total", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "acme")
			c, src := newCustomer(a.ID, "Ann")
			must(t, "CreateCustomer", s.CreateCustomer(ctx(t), c, src))
			got, err := s.GetCustomer(ctx(t), a.ID, c.ID)
			must(t, "GetCustomer", err)
			if len(got.Sources) != 1 || got.Sources[0].ID != src.Source.ID || got.Sources[0].Card.Last4 != "4242" || got.DefaultSource != src.Source.ID {
				t.Fatalf("GetCustomer = %+v", got)
			}
			if _, err := s.GetVaultRecord(ctx(t), a.ID, src.Vault.Token); err != nil {
				t.Fatalf("GetVaultRecord: %v", err)
			}
			if n := customerTotal(t, s, a.ID); n != 1 {
				t.Fatalf("total = %d, want 1", n)
			}
		}},
		// Each statement of a create failing in turn: the ones before it
		// must be undone with it.
		{"a failed create writes nothing", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "acme")
			first, firstSrc := newCustomer(a.ID, "Ann")
			must(t, "CreateCustomer", s.CreateCustomer(ctx(t), first, firstSrc))
			fails := []struct {
				name  string
				spoil func(c *customer.Customer, src *customer.NewSource)
			}{
				{"customer id taken", func(c *customer.Customer, src *customer.NewSource) {
					c.ID, src.Source.CustomerID = first.ID, first.ID
				}},
				{"vault token taken", func(c *customer.Customer, src *customer.NewSource) {
					src.Vault.Token, src.Source.VaultToken = firstSrc.Vault.Token, firstSrc.Vault.Token
				}},
				{"source id taken", func(c *customer.Customer, src *customer.NewSource) { src.Source.ID = firstSrc.Source.ID }},
			}
			for _, f := range fails {
				c, src := newCustomer(a.ID, "Bob")
				f.spoil(c, &src)
				if err := s.CreateCustomer(ctx(t), c, src); err == nil {
					t.Fatalf("%s: CreateCustomer = nil, want an error", f.name)
				}
				if c.ID != first.ID {
					_, err := s.GetCustomer(ctx(t), a.ID, c.ID)
					wantKind(t, f.name+": GetCustomer", err, errs.NotFound)
				}
				if src.Vault.Token != firstSrc.Vault.Token {
					_, err := s.GetVaultRecord(ctx(t), a.ID, src.Vault.Token)
					wantKind(t, f.name+": GetVaultRecord", err, errs.NotFound)
				}
				if n := customerTotal(t, s, a.ID); n != 1 {
					t.Fatalf("%s: total = %d after the failed create, want 1", f.name, n)
				}
			}
			got, err := s.GetCustomer(ctx(t), a.ID, first.ID)
			must(t, "GetCustomer", err)
			if got.Text.FirstName != "Ann" || len(got.Sources) != 1 {
				t.Fatalf("the first customer changed: %+v", got)
			}
		}},
		// Concurrent creates share the account's total rows: none may fail
		// or lose its increment.
		{"concurrent creates all count", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "acme")
			const n = 40
			var wg sync.WaitGroup
			errc := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					c, src := newCustomer(a.ID, seq("c", i))
					// Half the ids share a first byte, so they share a total row.
					if i%2 == 0 {
						c.ID = "00" + c.ID[2:]
						src.Source.CustomerID = c.ID
					}
					errc <- s.CreateCustomer(ctx(t), c, src)
				})
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				must(t, "CreateCustomer", err)
			}
			if got := customerTotal(t, s, a.ID); got != n {
				t.Fatalf("total = %d, want %d", got, n)
			}
		}},
	})
}
