package loadgen

import "strconv"

// cpuModes and their share of one CPU's time; the shares sum to one so
// sum by (instance) (rate(node_cpu_seconds_total[5m])) is close to 4.
var cpuModes = []struct {
	mode  string
	share float64
}{
	{"idle", 0.62}, {"iowait", 0.02}, {"irq", 0.003}, {"nice", 0.005},
	{"softirq", 0.01}, {"steal", 0.002}, {"system", 0.09}, {"user", 0.25},
}

const (
	cpusPerNode = 4
	// stepSeconds is the nominal scrape interval the rates are tuned for.
	// Values do not depend on the real interval a caller chooses.
	stepSeconds = 15
)

func (b *builder) nodeSeries(instance string) {
	base := []string{"job", "node", "instance", instance}
	for i, name := range []string{"node_load1", "node_load5", "node_load15"} {
		smooth := []int{1, 5, 15}[i]
		b.add(spec{kind: kindLoad, idx: smooth, key: b.groupKey("load")}, with(base, "__name__", name)...)
	}
	b.cpuSeries(base)
	b.memorySeries(base)
	b.filesystemSeries(base)
	b.deviceCounters(base)
}

func (b *builder) cpuSeries(base []string) {
	for cpu := 0; cpu < cpusPerNode; cpu++ {
		c := strconv.Itoa(cpu)
		for _, m := range cpuModes {
			key := b.nextKey()
			rate := m.share * stepSeconds * uniform(key, 10, 0.7, 1.3)
			b.add(spec{kind: kindCounter, key: key, counter: newCounterShape(key, rate)},
				with(base, "__name__", "node_cpu_seconds_total", "cpu", c, "mode", m.mode)...)
		}
	}
	for cpu := 0; cpu < cpusPerNode; cpu++ {
		c := strconv.Itoa(cpu)
		b.counter(false, 0.0005*stepSeconds, with(base, "__name__", "node_cpu_guest_seconds_total", "cpu", c, "mode", "nice")...)
		b.counter(false, 0.003*stepSeconds, with(base, "__name__", "node_cpu_guest_seconds_total", "cpu", c, "mode", "user")...)
	}
}

// memorySeries shares one key so the five fields move together and stay
// consistent: free+buffers+cached < total and available <= total.
func (b *builder) memorySeries(base []string) {
	key := b.groupKey("memory")
	total := float64(int64(8)<<30) * float64(int64(1)<<(b.inst%4))
	names := []string{
		"node_memory_MemTotal_bytes", "node_memory_MemFree_bytes", "node_memory_Buffers_bytes",
		"node_memory_Cached_bytes", "node_memory_MemAvailable_bytes",
	}
	for i, name := range names {
		b.add(spec{kind: kindMemory, integer: true, idx: i, key: key, scale: total}, with(base, "__name__", name)...)
	}
}

func (b *builder) filesystemSeries(base []string) {
	filesystems := []struct {
		device, mountpoint string
		size, files        float64
	}{
		{"/dev/sda1", "/", 100 << 30, 6.5e6},
		{"/dev/sdb1", "/data", 1 << 40, 6.5e7},
	}
	for _, fs := range filesystems {
		lbls := with(base, "device", fs.device, "mountpoint", fs.mountpoint, "fstype", "ext4")
		b.add(spec{kind: kindFSAvail, integer: true, key: b.nextKey(), scale: fs.size},
			with(lbls, "__name__", "node_filesystem_avail_bytes")...)
		b.add(spec{kind: kindConst, integer: true, key: b.nextKey(), scale: fs.size},
			with(lbls, "__name__", "node_filesystem_size_bytes")...)
		b.add(spec{kind: kindFilesFree, integer: true, key: b.nextKey(), scale: fs.files},
			with(lbls, "__name__", "node_filesystem_files_free")...)
	}
}

func (b *builder) deviceCounters(base []string) {
	for _, dev := range []string{"sda", "sdb"} {
		key := b.groupKey("disk-" + dev)
		b.counter(true, uniform(key, 1, 2e5, 2e7), with(base, "__name__", "node_disk_read_bytes_total", "device", dev)...)
		b.counter(true, uniform(key, 2, 1e5, 1e7), with(base, "__name__", "node_disk_written_bytes_total", "device", dev)...)
	}
	nets := []struct {
		dev    string
		lo, hi float64
	}{{"eth0", 1e6, 5e7}, {"lo", 1e4, 1e5}}
	for _, n := range nets {
		key := b.groupKey("net-" + n.dev)
		b.counter(true, uniform(key, 1, n.lo, n.hi), with(base, "__name__", "node_network_receive_bytes_total", "device", n.dev)...)
		b.counter(true, uniform(key, 2, n.lo, n.hi)/2, with(base, "__name__", "node_network_transmit_bytes_total", "device", n.dev)...)
	}
}

// with returns base followed by kv in a new slice, so callers can share a
// base without aliasing its backing array.
func with(base []string, kv ...string) []string {
	out := make([]string, 0, len(base)+len(kv))
	out = append(out, base...)
	return append(out, kv...)
}
