package notify

import (
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts delivered and failed notifications by template and
// channel. Both label sets are fixed (Templates, the two channels, and
// "other" for a template this build does not know), so no row can create
// a new series.
type metrics struct {
	sent, failed *prometheus.CounterVec
}

const otherTemplate = "other"

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopd_notifications_sent_total",
			Help: "Notifications delivered to the provider (or logged, without one), by template and channel.",
		}, []string{"template", "channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopd_notifications_failed_total",
			Help: "Notifications given up after their last attempt, by template and channel.",
		}, []string{"template", "channel"}),
	}
	for _, t := range append(Templates(), otherTemplate) {
		for _, c := range []string{ChannelEmail, ChannelSMS} {
			m.sent.WithLabelValues(t, c)
			m.failed.WithLabelValues(t, c)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.sent, m.failed} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register notification metrics: %w", err)
			}
		}
	}
	return m, nil
}

func labels(n Notification) (string, string) {
	t, c := n.Template, n.Channel
	if !slices.Contains(Templates(), t) {
		t = otherTemplate
	}
	if c != ChannelSMS {
		c = ChannelEmail
	}
	return t, c
}
