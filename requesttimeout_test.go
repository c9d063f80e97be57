package govirtiofs

import (
	"testing"
	"time"
)

func TestRequestTimeoutOption(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{0, DefaultRequestTimeout},
		{-1, 0}, // none: the driver's 0
		{5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		o := Options{RequestTimeout: tt.in}
		if got := o.requestTimeout(); got != tt.want {
			t.Errorf("Options{RequestTimeout: %v}.requestTimeout() = %v, want %v", tt.in, got, tt.want)
		}
	}
}
