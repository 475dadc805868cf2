package storetest

import (
	"sync"
	"testing"
	"time"

	"switchyard/internal/charge"
	"switchyard/internal/money"
	"switchyard/internal/paydock"
	"switchyard/internal/store"
)

// newIntent is a charge of amount cents on customer c whose sale is still
// inprogress: what CreateCharge writes before the gateway is called.
func newIntent(account, customerID string, amount int64) *charge.Charge {
	n := now()
	aud, _ := money.LookupCurrency("AUD")
	return &charge.Charge{ID: paydock.NewID(), AccountID: account, CustomerID: customerID, Amount: amount, Currency: aud,
		Status: charge.InProgress, Capture: true, CreatedAt: n, UpdatedAt: n,
		Transactions: []charge.Txn{{ID: paydock.NewID(), Type: charge.Sale, Status: charge.TxnInProgress, Amount: amount,
			NextAttemptAt: n.Add(time.Minute), CreatedAt: n, UpdatedAt: n}}}
}

// settle marks c's sale complete, as the charge service does on success.
func settle(c *charge.Charge) *charge.Stats {
	t := &c.Transactions[0]
	t.Status, t.ExternalID, t.NextAttemptAt = charge.TxnComplete, "sim_ch_"+c.ID, time.Time{}
	c.Status, c.ExternalID, c.Captured = charge.Complete, t.ExternalID, c.Amount
	return &charge.Stats{CustomerID: c.CustomerID, Count: 1, Collected: c.Amount}
}

func runCharges(t *testing.T, open Open) {
	runTable(t, open, []test{
		// Many charges of one customer settling at once all update its
		// statistics row: none may fail or lose its increment, and a
		// settle repeated (the reconciler racing the request) counts once.
		{"concurrent settles on one customer all count once", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "acme")
			cu, src := newCustomer(a.ID, "Ann")
			must(t, "CreateCustomer", s.CreateCustomer(ctx(t), cu, src))
			const n = 40
			cs := make([]*charge.Charge, n)
			for i := range cs {
				cs[i] = newIntent(a.ID, cu.ID, int64(100+i))
				must(t, "CreateCharge", s.CreateCharge(ctx(t), cs[i]))
			}
			var wg sync.WaitGroup
			type result struct {
				ok  bool
				err error
			}
			res := make(chan result, 2*n)
			for _, c := range cs {
				st := settle(c)
				for range 2 {
					wg.Go(func() {
						ok, err := s.SettleTxn(ctx(t), c, c.Transactions[0].ID, st)
						res <- result{ok, err}
					})
				}
			}
			wg.Wait()
			close(res)
			settled := 0
			for r := range res {
				must(t, "SettleTxn", r.err)
				if r.ok {
					settled++
				}
			}
			if settled != n {
				t.Fatalf("%d settles applied, want %d (one per charge)", settled, n)
			}
			got, err := s.GetCustomer(ctx(t), a.ID, cu.ID)
			must(t, "GetCustomer", err)
			var want int64
			for i := range n {
				want += int64(100 + i)
			}
			if got.Successful != n || got.Collected != want {
				t.Fatalf("statistics = %d charges, %d collected; want %d, %d", got.Successful, got.Collected, n, want)
			}
			for _, c := range cs {
				g, err := s.GetCharge(ctx(t), a.ID, c.ID)
				must(t, "GetCharge", err)
				if g.Status != charge.Complete || g.Transactions[0].Status != charge.TxnComplete {
					t.Fatalf("charge %s: status %s, sale %s; want complete", c.ID, g.Status, g.Transactions[0].Status)
				}
			}
		}},
	})
}
