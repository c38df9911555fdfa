package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMetricsBehindToken: GET /metrics answers with Config.Metrics behind
// the token, on a sensor's API too, and is not found without it.
func TestMetricsBehindToken(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("takedown_up 1\n")) })
	for _, sensor := range []bool{false, true} {
		h := New(Config{Sensor: sensor, Token: "s3cret", Metrics: metrics})
		for tok, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized, "s3cret": http.StatusOK} {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want || want == http.StatusOK && rec.Body.String() != "takedown_up 1\n" {
				t.Errorf("sensor %v, token %q: %d %q, want %d", sensor, tok, rec.Code, rec.Body, want)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		rec := httptest.NewRecorder()
		New(Config{Sensor: sensor, Token: "s3cret"}).ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Errorf("sensor %v without Config.Metrics: %d, want 404", sensor, rec.Code)
		}
	}
}
