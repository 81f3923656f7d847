package frontend

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/querier/shard"
)

// TestAuditNameCollisionHiddenByShards: an argument that drops the metric
// name under a comparison filter (or unary plus) is taken as keeping it,
// so a selector of two metrics shards although their series collide into
// one label set, which Prometheus answers with an error; sharded, the two
// land in different shards and the query succeeds.
func TestAuditNameCollisionHiddenByShards(t *testing.T) {
	// Find an instance whose node_load1 and node_load5 series fall into
	// different shards of 2.
	gen := loadgen.New(42, 2)
	byInstance := map[string]map[string]int{}
	for _, ls := range gen.Series() {
		name := ls.Get(model.MetricNameLabel)
		if name != "node_load1" && name != "node_load5" {
			continue
		}
		inst := ls.Get("instance")
		if byInstance[inst] == nil {
			byInstance[inst] = map[string]int{}
		}
		for i := 1; i <= 2; i++ {
			if shard.Owns(ls, i, 2) {
				byInstance[inst][name] = i
			}
		}
	}
	instance := ""
	for inst, m := range byInstance {
		if m["node_load1"] != m["node_load5"] {
			instance = inst
		}
	}
	if instance == "" {
		t.Fatal("the fixture has no instance with node_load1 and node_load5 in different shards")
	}
	sel := fmt.Sprintf(`{__name__=~"node_load1|node_load5", instance=%q}`, instance)
	auditCheck(t, 2,
		`sum(abs(`+sel+`) > -1)`,
		`sum(+abs(`+sel+`))`,
	)
}
