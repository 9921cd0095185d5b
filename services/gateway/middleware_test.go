package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/logging"
)

func TestPanicBecomesTheErrorEnvelope(t *testing.T) {
	e := &Edge{
		log:      logging.Discard(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"method", "route", "status"}),
		latency:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "l"}, []string{"method", "route"}),
	}
	h := e.observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/v1/anything", nil)
	r.Header.Set("X-Request-Id", "req-panic")
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusInternalServerError, w.Code)
	var env errorEnvelope
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &env))
	require.Equal(t, "INTERNAL", env.Error.Code)
	require.Equal(t, "internal error", env.Error.Message)
	require.Equal(t, "req-panic", env.Meta.RequestID)
	require.Equal(t, "req-panic", w.Header().Get("X-Request-Id"))
}
