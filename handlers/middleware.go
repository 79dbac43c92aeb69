package handlers

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus instruments.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request latency by method, route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe logs one structured line per request and records its metrics. It
// runs inside the request-id middleware and outside Recover, so it sees the
// final status of errors and panics too.
func observe(log *slog.Logger, m *metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Write the problem now so the status below is the real one.
				c.Error(err)
			}
			res := c.Response()
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := strconv.Itoa(res.Status)
			elapsed := time.Since(start)
			m.requests.WithLabelValues(c.Request().Method, route, status).Inc()
			m.latency.WithLabelValues(c.Request().Method, route, status).Observe(elapsed.Seconds())
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("request_id", res.Header().Get(echo.HeaderXRequestID)),
				slog.String("method", c.Request().Method),
				slog.String("route", route),
				slog.String("path", c.Request().URL.Path),
				slog.Int("status", res.Status),
				slog.Int64("bytes", res.Size),
				slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
				slog.String("ip", c.RealIP()),
			)
			return nil
		}
	}
}
