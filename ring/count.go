package ring

import (
	"slices"

	"github.com/orrery/orrery/proto/ringpb"
)

// HealthyIngesters returns how many instances own tokens in the lookup
// table, are ACTIVE and have a heartbeat within HeartbeatTimeout: the
// ingesters that share the writes right now. An ingester divides its
// tenants' cluster-wide limits by it. JOINING and LEAVING instances are
// left out because Get passes over them, so they take no new series.
func (r *Ring) HealthyIngesters() int {
	s, now := r.load(), r.now()
	n := 0
	for _, in := range s.instances {
		if _, owns := s.owned[in.GetId()]; owns && in.GetState() == ringpb.State_ACTIVE && r.IsHealthy(in, now) {
			n++
		}
	}
	return n
}

// ReplicationFactor is how many instances each series is written to.
func (r *Ring) ReplicationFactor() int { return r.replicationFactor }

// CountHealthy returns how many ACTIVE, healthy instances run component.
func (r *Ring) CountHealthy(component string) int {
	s, now := r.load(), r.now()
	n := 0
	for _, in := range s.instances {
		if in.GetState() == ringpb.State_ACTIVE && r.IsHealthy(in, now) && slices.Contains(in.GetComponents(), component) {
			n++
		}
	}
	return n
}

// HealthyIDs returns the ids of the ACTIVE, healthy instances that run
// component, sorted: who shares that component's work right now.
func (r *Ring) HealthyIDs(component string) []string {
	s, now := r.load(), r.now()
	var ids []string
	for _, in := range s.instances {
		if in.GetState() == ringpb.State_ACTIVE && r.IsHealthy(in, now) && slices.Contains(in.GetComponents(), component) {
			ids = append(ids, in.GetId())
		}
	}
	slices.Sort(ids)
	return ids
}

// HealthyHTTPAddrs returns the HTTP addresses of the ACTIVE, healthy
// instances that run component, by id; an instance that announced none
// is left out.
func (r *Ring) HealthyHTTPAddrs(component string) map[string]string {
	s, now := r.load(), r.now()
	out := map[string]string{}
	for _, in := range s.instances {
		if in.GetState() == ringpb.State_ACTIVE && r.IsHealthy(in, now) && slices.Contains(in.GetComponents(), component) && in.GetHttpAddr() != "" {
			out[in.GetId()] = in.GetHttpAddr()
		}
	}
	return out
}
