package frontend

import (
	"testing"
)

// TestAuditAvgByName: avg runs as sum / sum, and the division drops the
// metric name, so avg by (__name__) loses the label Prometheus keeps (and
// with several names, the outer division's answers collide).
func TestAuditAvgByName(t *testing.T) {
	auditCheck(t, 2,
		`avg by (__name__) (node_load1)`,
		`avg by (__name__, instance) ({__name__=~"node_load1|node_load5"})`,
	)
}
