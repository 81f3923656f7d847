package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel fixes
// it at 100 for the /proc ABI on every architecture Go runs on, whatever
// CONFIG_HZ is, and reading sysconf(_SC_CLK_TCK) would need cgo.
const userHZ = 100

// procSample is one reading of a process's resource use.
type procSample struct {
	cpuSeconds float64 // utime+stime of the process and its reaped children
	rssBytes   int64
	hwmBytes   int64 // peak RSS
}

func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("reading CPU times of pid %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	rss, hwm, err := parseStatusMemory(status)
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return procSample{cpuSeconds: cpu, rssBytes: rss, hwmBytes: hwm}, nil
}

// parseStatCPU sums utime, stime, cutime and cstime (fields 14-17). The
// command name (field 2) may contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	fields := strings.Fields(string(stat[end+1:]))
	// fields[0] is field 3 (state), so field n is fields[n-3].
	const utime, cstime = 14 - 3, 17 - 3
	if len(fields) <= cstime {
		return 0, fmt.Errorf("short /proc stat line: %d fields after the command", len(fields))
	}
	var ticks int64
	for i := utime; i <= cstime; i++ {
		v, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc stat field %d %q: %w", i+3, fields[i], err)
		}
		ticks += v
	}
	return float64(ticks) / userHZ, nil
}

// parseStatusMemory returns VmRSS and VmHWM in bytes.
func parseStatusMemory(status []byte) (rss, hwm int64, err error) {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", name, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("VmRSS or VmHWM missing from /proc status (is the process a zombie?)")
	}
	return rss, hwm, nil
}

// selfCPU returns this tool's own user+system CPU time, reported so a reader
// can tell how much of the shared machine the load generator itself took.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
