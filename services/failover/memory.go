package failover

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// The peak memory of the tools a backup or restore runs. getrusage's maxrss cannot say it:
// Linux keeps a process's maxrss across execve, so a child reports at least what its
// parent held when it forked. VmHWM is the high-water mark of the process's own address
// space, which exec replaces; it is sampled while the tool runs.

// ToolPeakKiB is the largest VmHWM seen of a tool this process ran.
var toolPeakKiB atomic.Int64

// ToolPeakKiB reports the largest peak resident memory of pg_dump, pg_restore or psql
// runs so far, in KiB (0 when none was seen).
func ToolPeakKiB() int64 { return toolPeakKiB.Load() }

// SelfPeakKiB is this process's own peak resident memory, in KiB.
func SelfPeakKiB() int64 { return vmHWM("/proc/self/status") }

func vmHWM(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			var kib int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
			return kib
		}
	}
	return 0
}

// runSampled runs cmd, sampling its peak memory every 20 ms until it exits.
func runSampled(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		path := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if kib := vmHWM(path); kib > toolPeakKiB.Load() {
				toolPeakKiB.Store(kib)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return err
}
