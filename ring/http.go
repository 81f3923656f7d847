package ring

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/orrery/orrery/apierr"
)

// memberStatus is one row of the ring page and of its JSON form.
type memberStatus struct {
	ID                  string    `json:"id"`
	Addr                string    `json:"addr"`
	Zone                string    `json:"zone"`
	State               string    `json:"state"`
	OwnsTokens          bool      `json:"owns_tokens"`
	Tokens              int       `json:"tokens"`
	OwnedPercent        float64   `json:"owned_percent"`
	HeartbeatAgeSeconds float64   `json:"heartbeat_age_seconds"`
	Healthy             bool      `json:"healthy"`
	Version             uint64    `json:"version"`
	Registered          time.Time `json:"registered"`
	// Forgotten marks the tombstone of a token owner forgotten without
	// leaving: reads may miss its data until it returns or is forgotten
	// by an operator (POST /ring/forget).
	Forgotten bool `json:"forgotten"`
}

type ringStatus struct {
	Self              string `json:"self"`
	ReplicationFactor int    `json:"replication_factor"`
	ZoneAwareness     bool   `json:"zone_awareness"`
	// OwnersDigest hashes the token table lookups use: members that show
	// the same digest place every series alike.
	OwnersDigest string         `json:"owners_digest"`
	Members      []memberStatus `json:"members"`
}

func (m *Member) ringStatus() ringStatus {
	now := m.opts.now()
	owned := m.ring.OwnedFraction()
	st := ringStatus{Self: m.self.ID, ReplicationFactor: m.cfg.ReplicationFactor, ZoneAwareness: m.cfg.ZoneAwareness, OwnersDigest: m.ring.OwnersDigest()}
	for _, in := range m.ring.Instances() {
		st.Members = append(st.Members, memberStatus{
			ID:                  in.GetId(),
			Addr:                in.GetAddr(),
			Zone:                in.GetZone(),
			State:               in.GetState().String(),
			OwnsTokens:          in.GetOwnsTokens(),
			Tokens:              len(in.GetTokens()),
			OwnedPercent:        100 * owned[in.GetId()],
			HeartbeatAgeSeconds: now.Sub(time.UnixMilli(in.GetHeartbeatMs())).Seconds(),
			Healthy:             m.ring.IsHealthy(in, now),
			Version:             in.GetVersion(),
			Registered:          time.UnixMilli(in.GetRegisteredMs()).UTC(),
			Forgotten:           in.GetForgotten(),
		})
	}
	return st
}

var ringPage = template.Must(template.New("ring").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Orrery ring</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}.bad{background:#fdd}</style>
</head><body>
<h1>Ring</h1>
<p>Seen from <b>{{.Self}}</b>. Replication factor {{.ReplicationFactor}}, zone awareness {{.ZoneAwareness}}. <a href="?format=json">JSON</a></p>
<table>
<tr><th>ID</th><th>Address</th><th>Zone</th><th>State</th><th>Tokens</th><th>Owns</th><th>Last heartbeat</th><th>Healthy</th><th>Version</th><th>Registered</th></tr>
{{range .Members}}<tr{{if not .Healthy}} class="bad"{{end}}>
<td>{{.ID}}</td><td>{{.Addr}}</td><td>{{.Zone}}</td><td>{{.State}}{{if .Forgotten}} (forgotten: reads may miss its data){{end}}</td>
<td>{{if .OwnsTokens}}{{.Tokens}}{{else}}-{{end}}</td><td>{{if .OwnsTokens}}{{printf "%.1f%%" .OwnedPercent}}{{else}}-{{end}}</td>
<td>{{printf "%.1fs ago" .HeartbeatAgeSeconds}}</td><td>{{if .Healthy}}yes{{else}}no{{end}}</td>
<td>{{.Version}}</td><td>{{.Registered.Format "2006-01-02 15:04:05Z07:00"}}</td>
</tr>{{end}}
</table></body></html>
`))

// ServeRing shows every known instance with its state, zone, share of the
// token space, heartbeat age and health; ?format=json returns the same as
// JSON.
func (m *Member) ServeRing(w http.ResponseWriter, r *http.Request) {
	st := m.ringStatus()
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(st); err != nil {
			m.logger.Debug("write ring status", "err", err)
		}
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := ringPage.Execute(w, st); err != nil {
		m.logger.Debug("write ring page", "err", err)
	}
}

// ServeForget forgets the instance named by the id parameter (Forget):
// POST only. 400 for an instance that cannot be forgotten.
func (m *Member) ServeForget(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if err := m.Forget(r.FormValue("id")); err != nil {
		kind := apierr.Unavailable
		if errors.Is(err, ErrNotForgettable) {
			kind = apierr.BadData
		}
		http.Error(w, err.Error(), apierr.HTTPStatus(apierr.New(kind, "%s", err)))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type memberlistNode struct {
	Name, Address, State string
}

type memberlistStatus struct {
	Self        string
	HealthScore int
	Nodes       []memberlistNode
}

var memberlistPage = template.Must(template.New("memberlist").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Orrery memberlist</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>
</head><body>
<h1>Memberlist</h1>
{{if .Self}}<p>This node: <b>{{.Self}}</b>, health score {{.HealthScore}} (0 is best).</p>
<table><tr><th>Name</th><th>Address</th><th>State</th></tr>
{{range .Nodes}}<tr><td>{{.Name}}</td><td>{{.Address}}</td><td>{{.State}}</td></tr>{{end}}
</table>{{else}}<p>memberlist is not running.</p>{{end}}
</body></html>
`))

// ServeMemberlist shows memberlist's own view: the nodes it knows, their
// gossip addresses and its failure detector's state for each.
func (m *Member) ServeMemberlist(w http.ResponseWriter, _ *http.Request) {
	var st memberlistStatus
	if ml := m.ml.Load(); ml != nil {
		st.Self = ml.LocalNode().Name + " " + ml.LocalNode().Address()
		st.HealthScore = ml.GetHealthScore()
		for _, n := range ml.Members() {
			st.Nodes = append(st.Nodes, memberlistNode{Name: n.Name, Address: n.Address(), State: nodeState(n.State)})
		}
		slices.SortFunc(st.Nodes, func(a, b memberlistNode) int { return strings.Compare(a.Name, b.Name) })
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := memberlistPage.Execute(w, st); err != nil {
		m.logger.Debug("write memberlist page", "err", err)
	}
}

func nodeState(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}
