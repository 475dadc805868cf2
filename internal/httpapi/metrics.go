package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"switchyard/internal/gateway"
)

// Metrics are the server's Prometheus series, on a private registry.
type Metrics struct {
	Registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	commitSize prometheus.Histogram
	commitTime prometheus.Histogram
	gwRequests *prometheus.CounterVec
	gwDuration *prometheus.HistogramVec
}

// NewMetrics registers the series (spec §10).
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_http_requests_total", Help: "HTTP requests by method, route pattern and status."},
			[]string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_http_request_duration_seconds", Help: "HTTP request latency by method and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"method", "route"}),
		commitSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchyard_store_commit_batch_size", Help: "Write transactions per store commit (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchyard_store_commit_duration_seconds", Help: "Duration of one store commit, batch included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
	}
	m.gwRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_gateway_requests_total", Help: "Gateway calls by gateway type, operation and outcome (ok, declined, error, unknown)."},
		[]string{"gateway_type", "operation", "outcome"})
	m.gwDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_gateway_request_duration_seconds", Help: "Gateway call latency by gateway type and operation.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"gateway_type", "operation"})
	// Every gateway series from the first scrape, at zero, rather than
	// from the first call of its kind.
	for _, typ := range gateway.Types {
		for _, op := range gateway.Operations {
			m.gwDuration.WithLabelValues(typ, op)
			for _, outcome := range gateway.Outcomes {
				m.gwRequests.WithLabelValues(typ, op, outcome)
			}
		}
	}
	m.Registry.MustRegister(m.requests, m.duration, m.commitSize, m.commitTime, m.gwRequests, m.gwDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// ObserveCommit records one store commit.
func (m *Metrics) ObserveCommit(size int, d time.Duration) {
	m.commitSize.Observe(float64(size))
	m.commitTime.Observe(d.Seconds())
}

func (m *Metrics) observe(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

// ObserveGateway records one gateway call (gateway.Observer).
func (m *Metrics) ObserveGateway(gatewayType, operation, outcome string, d time.Duration) {
	m.gwRequests.WithLabelValues(gatewayType, operation, outcome).Inc()
	m.gwDuration.WithLabelValues(gatewayType, operation).Observe(d.Seconds())
}

// InProgress exports switchyard_charges_inprogress, read from the store at
// each scrape so every node reports the shared truth.
func (m *Metrics) InProgress(count func() (int, error)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_charges_inprogress",
		Help: "Charges whose gateway outcome is not known yet (spec 8.8)."}, func() float64 {
		n, err := count()
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}
