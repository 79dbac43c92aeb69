package catalogcache

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	hits, misses, refused, notifications prometheus.Counter
	bytes                                prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shopd_catalog_cache_hits_total", Help: "Catalog reads answered from the cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shopd_catalog_cache_misses_total", Help: "Catalog reads the cache could not answer (not kept, expired, or the cache bypassed).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shopd_catalog_cache_refused_total", Help: "Reads not kept because a change they may predate was applied while they were read.",
		}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shopd_catalog_cache_notifications_total", Help: "Product change notifications applied to the cache.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shopd_catalog_cache_bytes", Help: "Size of the kept entries, as the cache's memory bound counts it.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.hits, m.misses, m.refused, m.notifications, m.bytes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register catalog cache metrics: %w", err)
			}
		}
	}
	return m, nil
}
