package live

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Stream kinds, the metrics' stream label.
const (
	streamAdmin = "admin"
	streamOrder = "order"
)

// metrics are the hub's instruments. Every label value comes from a fixed
// set (the two stream kinds, Types), so no event or client can create a
// series.
type metrics struct {
	open    *prometheus.GaugeVec
	events  *prometheus.CounterVec
	dropped *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopd_streams_open",
			Help: "Server-Sent Event streams open on this instance, by stream (admin, order).",
		}, []string{"stream"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopd_stream_events_total",
			Help: "Events read from the database and fanned out to this instance's streams, by type.",
		}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopd_stream_slow_consumers_dropped_total",
			Help: "Streams ended because they fell a full buffer behind the fan-out, by stream (admin, order).",
		}, []string{"stream"}),
	}
	for _, k := range []string{streamAdmin, streamOrder} {
		m.open.WithLabelValues(k)
		m.dropped.WithLabelValues(k)
	}
	for _, t := range append(Types(), otherType) {
		m.events.WithLabelValues(t)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.open, m.events, m.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register stream metrics: %w", err)
			}
		}
	}
	return m, nil
}

// fannedOut counts an event of type typ; one of another type (a newer
// build's, during a rolling upgrade) is counted as "other".
func (m *metrics) fannedOut(typ string) {
	for _, t := range Types() {
		if t == typ {
			m.events.WithLabelValues(t).Inc()
			return
		}
	}
	m.events.WithLabelValues(otherType).Inc()
}

// otherType labels the events of a type this build does not know.
const otherType = "other"
