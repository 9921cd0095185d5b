package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Memory is a serving process's memory: live heap and goroutine stacks right after a
// forced collection (pprof's heap?gc=1), goroutines, resident set.
type Memory struct {
	Heap, Stacks, RSS int64
	Goroutines        int64
}

// ReadMemory reads the memory of process pid through its pprof endpoints (metricsURL,
// PPROF_ENABLED=true) and /proc.
func ReadMemory(ctx context.Context, pid int, metricsURL string) (Memory, error) {
	var s Memory
	heap, err := get(ctx, metricsURL+"/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return s, err
	}
	goroutines, err := get(ctx, metricsURL+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	if s.RSS, err = ReadRSS(pid); err != nil {
		return s, err
	}
	var ok [3]bool
	s.Heap, ok[0] = fieldAfter(heap, "# HeapAlloc = ")
	s.Stacks, ok[1] = fieldAfter(heap, "# Stack = ") // in use / from the OS
	s.Goroutines, ok[2] = fieldAfter(goroutines, "goroutine profile: total ")
	if ok != [3]bool{true, true, true} {
		return s, errors.New("pprof: HeapAlloc, Stack or the goroutine total not found")
	}
	return s, nil
}

func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %v", url, res.Status, err)
	}
	return string(b), nil
}

// fieldAfter parses the integer that follows prefix at the start of a line of text.
func fieldAfter(text, prefix string) (int64, bool) {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.ParseInt(strings.Fields(v + " ")[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// ReadRSS reads VmRSS of pid from /proc, in bytes.
func ReadRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// PeakRSS samples the resident set of pid until ctx ends and returns the largest.
func PeakRSS(ctx context.Context, pid int) int64 {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var peak int64
	for {
		if rss, err := ReadRSS(pid); err == nil {
			peak = max(peak, rss)
		}
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
	}
}
