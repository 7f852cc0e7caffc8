package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentstore/agentstore/tools/benchresult"
)

// clockTick is the kernel's USER_HZ, the unit of /proc CPU times: 100 on
// every Linux this runs on.
const clockTick = 10 * time.Millisecond

// cpuSnap is one reading of the CPU counters.
type cpuSnap struct {
	at          time.Time
	self        time.Duration
	server      time.Duration
	busy, total uint64
}

// readCPU reads the counters; a server process that cannot be read counts
// as an error.
func readCPU(pids []int) (cpuSnap, error) {
	s := cpuSnap{at: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, err
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range pids {
		d, err := procCPU(pid)
		if err != nil {
			return s, fmt.Errorf("server process %d: %w", pid, err)
		}
		s.server += d
	}
	var err error
	s.busy, s.total, err = machineCPU()
	return s, err
}

// usage is the CPU use between two readings.
func usage(a, b cpuSnap, withServer bool) *benchresult.WSCPU {
	u := &benchresult.WSCPU{
		WindowS: b.at.Sub(a.at).Seconds(),
		ClientS: (b.self - a.self).Seconds(),
		NProc:   runtime.NumCPU(),
	}
	if withServer {
		u.ServerS = (b.server - a.server).Seconds()
	}
	if b.total > a.total {
		u.MachineBusyPct = 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return u
}

// procCPU is the user and system CPU time of process pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name, in parentheses, may hold spaces.
func parseProcStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc/PID/stat")
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable CPU times in /proc/PID/stat")
	}
	return time.Duration(ut+st) * clockTick, nil
}

// machineCPU reads the busy and total jiffies of all CPUs from /proc/stat
// (idle and iowait count as idle; guest time is already in user time).
func machineCPU() (busy, total uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, errors.New("empty /proc/stat")
	}
	return parseStatCPU(sc.Text())
}

// parseStatCPU parses the "cpu" line of /proc/stat.
func parseStatCPU(line string) (busy, total uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, errors.New("no cpu line in /proc/stat")
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return 0, 0, err
		}
		total += v[i]
	}
	return total - v[3] - v[4], total, nil
}
