package ingester

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// metaKey is one distinct metadata entry of a metric family: a family can
// carry several while its exporters disagree.
type metaKey struct{ typ, help, unit string }

// metadataSet is one tenant's metric metadata with when each entry was last
// received. It lives in memory only: senders repeat their metadata every
// minute (Prometheus's metadata_config.send_interval), which is also how it
// comes back after a restart.
type metadataSet struct {
	mu       sync.Mutex
	families map[string]map[metaKey]time.Time
}

func (m *metadataSet) add(mds []*ingesterpb.MetricMetadata, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.families == nil {
		m.families = map[string]map[metaKey]time.Time{}
	}
	for _, md := range mds {
		f := m.families[md.MetricFamilyName]
		if f == nil {
			f = map[metaKey]time.Time{}
			m.families[md.MetricFamilyName] = f
		}
		f[metaKey{typ: md.Type, help: md.Help, unit: md.Unit}] = now
	}
}

// expire forgets entries not received since before.
func (m *metadataSet) expire(before time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, f := range m.families {
		for k, seen := range f {
			if seen.Before(before) {
				delete(f, k)
			}
		}
		if len(f) == 0 {
			delete(m.families, name)
		}
	}
}

func (m *metadataSet) list(metric string) []*ingesterpb.MetricMetadata {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*ingesterpb.MetricMetadata
	for name, f := range m.families {
		if metric != "" && name != metric {
			continue
		}
		for k := range f {
			out = append(out, &ingesterpb.MetricMetadata{MetricFamilyName: name, Type: k.typ, Help: k.help, Unit: k.unit})
		}
	}
	slices.SortFunc(out, func(a, b *ingesterpb.MetricMetadata) int {
		return strings.Compare(a.MetricFamilyName+"\xff"+a.Type+"\xff"+a.Help, b.MetricFamilyName+"\xff"+b.Type+"\xff"+b.Help)
	})
	return out
}

// MetricsMetadata implements ingesterpb.IngesterServer.
func (i *Ingester) MetricsMetadata(ctx context.Context, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	resp := &ingesterpb.MetricsMetadataResponse{}
	if h := i.head(tenantID, false); h != nil {
		resp.Metadata = h.metadata.list(req.Metric)
	}
	return resp, nil
}
