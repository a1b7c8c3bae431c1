// SPDX-License-Identifier: MIT
// Peer benchmarks for weft: the five scheduler workloads and the three
// sync-layer workloads (C1, C4: channel throughput; M1: mutex contention) on
// Go's runtime.
//
// Usage: weft-peer-go <W1..W5|C1|C4|M1> [scale]
//
// Prints exactly one line, "RESULT <workload> go2 <ns_per_op>", and exits
// non-zero if the workload's own result check fails. The program sets
// GOMAXPROCS=2 itself.
//
// scale (default 1.0) multiplies the number of tasks (W1, W2, W5: spawns;
// W3: yielding goroutines; W4: pairs; C1, C4: messages; M1: goroutines),
// never below 1. Per-task iteration counts (W3 yields, W4 round trips, M1
// lock/unlock pairs) stay fixed, so the total op count scales linearly.
// Timing covers the workload only.
//
// W6/W7 are the timer workloads (see bench/weft_time.c for the definitions):
// W6 timers: 100,000 goroutines each sleep until a deadline 1..1000 ms after
// their start (fixed-seed LCG) and record their lateness; W7 idle memory:
// 1,000,000 goroutines each sleep 5 s. They print "RESULT <W6|W7> go2
// key=value ..." instead (wall, lateness, CPU time, peak RSS); scale
// multiplies their goroutine count.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	spawns        = 1_000_000
	yieldTasks    = 1_000
	yieldsPerTask = 1_000
	pairs         = 1_000
	roundTrips    = 1_000
	messages      = 10_000_000
	chanCap       = 1_024
	lockTasks     = 1_000
	locksPerTask  = 1_000
	timerTasks    = 100_000
	idleTasks     = 1_000_000
	idleSleep     = 5 * time.Second
)

// shared tracks completion for one workload: count is the work being
// verified; the goroutine that takes remaining to zero closes done.
type shared struct {
	count     atomic.Int64
	remaining atomic.Int64
	done      chan struct{}
}

func newShared(tasks int) *shared {
	s := &shared{done: make(chan struct{})}
	s.remaining.Store(int64(tasks))
	return s
}

// finish is called once by every goroutine as it ends; the last one signals.
func (s *shared) finish() {
	if s.remaining.Add(-1) == 0 {
		close(s.done)
	}
}

// result of one run: wall time, number of ops, and the check's verdict.
type result struct {
	elapsed time.Duration
	ops     int
	err     error
}

func check(what string, got, want int) error {
	if got != want {
		return fmt.Errorf("%s: got %d, want %d", what, got, want)
	}
	return nil
}

// W1 spawn_many_local: cost of spawning from inside the runtime. The main
// goroutine (the root task) starts n goroutines that each bump a counter;
// the last to finish signals.
func w1SpawnManyLocal(n int) result {
	s := newShared(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			s.count.Add(1)
			s.finish()
		}()
	}
	<-s.done
	elapsed := time.Since(start)
	return result{elapsed, n, check("counter", int(s.count.Load()), n)}
}

// W2 spawn_many_remote: cost of spawning from outside the scheduler. Go has
// no "outside": every Go thread runs goroutines. The closest analogue is a
// goroutine pinned to its own OS thread with runtime.LockOSThread doing the
// spawning, while the main goroutine just waits.
func w2SpawnManyRemote(n int) result {
	s := newShared(n)
	start := time.Now()
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := 0; i < n; i++ {
			go func() {
				s.count.Add(1)
				s.finish()
			}()
		}
	}()
	<-s.done
	elapsed := time.Since(start)
	return result{elapsed, n, check("counter", int(s.count.Load()), n)}
}

// W3 yield_many: cost of a goroutine yielding to the scheduler and running
// again. tasks goroutines each call runtime.Gosched yieldsPerTask times.
func w3YieldMany(tasks int) result {
	s := newShared(tasks)
	start := time.Now()
	for i := 0; i < tasks; i++ {
		go func() {
			// count locally, publish once: the shared counter must not be
			// what is measured
			n := 0
			for j := 0; j < yieldsPerTask; j++ {
				runtime.Gosched()
				n++
			}
			s.count.Add(int64(n))
			s.finish()
		}()
	}
	<-s.done
	elapsed := time.Since(start)
	ops := tasks * yieldsPerTask
	return result{elapsed, ops, check("yields", int(s.count.Load()), ops)}
}

// W4 ping_pong: cost of a message handoff that wakes the peer goroutine.
// Each pair passes a counter back and forth roundTrips times over two
// capacity-1 channels, adding one per hop.
func w4PingPong(n int) result {
	// count counts goroutines whose final value checked out.
	s := newShared(2 * n)
	start := time.Now()
	for i := 0; i < n; i++ {
		toPong := make(chan int, 1)
		toPing := make(chan int, 1)
		go func() { // ping
			v := 0
			for j := 0; j < roundTrips; j++ {
				toPong <- v
				v = <-toPing + 1
			}
			if v == 2*roundTrips {
				s.count.Add(1)
			}
			s.finish()
		}()
		go func() { // pong
			last := 0
			for j := 0; j < roundTrips; j++ {
				last = <-toPong
				toPing <- last + 1
			}
			if last == 2*roundTrips-2 {
				s.count.Add(1)
			}
			s.finish()
		}()
	}
	<-s.done
	elapsed := time.Since(start)
	return result{elapsed, n * roundTrips * 2,
		check("pair goroutines with correct final value", int(s.count.Load()), 2*n)}
}

// W5 chained_spawn: cost of spawn + first run when each goroutine starts the
// next one, n in all; the last one signals.
func w5ChainedSpawn(n int) result {
	s := newShared(n)
	var link func(left int)
	link = func(left int) {
		s.count.Add(1)
		if left > 1 {
			go link(left - 1)
		} else {
			close(s.done)
		}
	}
	start := time.Now()
	go link(n)
	<-s.done
	elapsed := time.Since(start)
	return result{elapsed, n, check("chain length", int(s.count.Load()), n)}
}

// C1/C4 channel throughput: producers goroutines send the values 1..n (each a
// contiguous range, in order) over one chan of capacity chanCap to as many
// consumer goroutines, which count the messages and add them up; the last
// producer to finish closes the chan. The check is the exact count and sum.
// op = one message.
func chanThroughput(n, producers int) result {
	per := n / producers
	if per < 1 {
		per = 1
	}
	total := per * producers
	s := newShared(producers) // consumers
	var sum atomic.Int64
	var left atomic.Int64
	left.Store(int64(producers))
	start := time.Now()
	ch := make(chan int, chanCap)
	for c := 0; c < producers; c++ {
		go func() {
			count, acc := 0, 0
			for v := range ch {
				count++
				acc += v
			}
			s.count.Add(int64(count))
			sum.Add(int64(acc))
			s.finish()
		}()
	}
	for p := 0; p < producers; p++ {
		first := 1 + p*per
		go func() {
			for v := first; v < first+per; v++ {
				ch <- v
			}
			if left.Add(-1) == 0 {
				close(ch)
			}
		}()
	}
	<-s.done
	elapsed := time.Since(start)
	err := check("messages received", int(s.count.Load()), total)
	if err == nil {
		err = check("checksum", int(sum.Load()), total*(total+1)/2)
	}
	return result{elapsed, total, err}
}

// M1 mutex contention: tasks goroutines each lock a sync.Mutex locksPerTask
// times and bump the counter it protects; the check is that no increment
// was lost. op = one lock/unlock pair.
func m1Mutex(tasks int) result {
	s := newShared(tasks)
	var mu sync.Mutex
	counter := 0
	start := time.Now()
	for i := 0; i < tasks; i++ {
		go func() {
			for j := 0; j < locksPerTask; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			s.finish()
		}()
	}
	<-s.done
	elapsed := time.Since(start)
	ops := tasks * locksPerTask
	mu.Lock()
	got := counter
	mu.Unlock()
	return result{elapsed, ops, check("protected counter", got, ops)}
}

// ---- W6, W7: timers ------------------------------------------------------------

// cpuTime is user + sys time of the whole process (every thread).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatusKB reads a "Vm...:" line of /proc/self/status, in kB (0 if missing).
func procStatusKB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, key+":") {
			rest := strings.TrimSpace(strings.TrimPrefix(line, key+":"))
			v, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(rest, "kB")), 10, 64)
			return v
		}
	}
	return 0
}

// lcg is the benchmarks' shared duration sequence: a 64-bit LCG, seed 42.
type lcg uint64

func (l *lcg) nextMS() uint64 {
	*l = *l*6364136223846793005 + 1442695040888963407
	return 1 + (uint64(*l)>>33)%1000
}

// W6 timers: n goroutines each sleep until start instant + a pseudo-random
// 1..1000 ms and store how late they woke (ns) in their own slot.
func w6Timers(n int) (string, error) {
	s := newShared(n)
	late := make([]int64, n)
	rss0 := procStatusKB("VmRSS")
	cpu0 := cpuTime()
	start := time.Now()
	l := lcg(42)
	var durSum uint64
	for i := 0; i < n; i++ {
		ms := l.nextMS()
		durSum += ms
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		go func(i int) {
			time.Sleep(time.Until(deadline))
			late[i] = int64(time.Since(deadline))
			s.count.Add(1)
			s.finish()
		}(i)
	}
	spawn := time.Since(start)
	<-s.done
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	if err := check("goroutines woken", int(s.count.Load()), n); err != nil {
		return "", err
	}
	sort.Slice(late, func(a, b int) bool { return late[a] < late[b] })
	var sum int64
	for _, v := range late {
		sum += v
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return fmt.Sprintf("tasks=%d check=%d wall_ms=%.3f spawn_ms=%.3f cpu_ms=%.3f rss_base_kb=%d "+
		"late_max_ms=%.3f late_p99_ms=%.3f late_mean_ms=%.3f late_min_ms=%.3f rss_peak_kb=%d",
		n, durSum, ms(wall.Nanoseconds()), ms(spawn.Nanoseconds()), ms(cpu.Nanoseconds()), rss0,
		ms(late[n-1]), ms(late[(n*99+99)/100-1]), float64(sum)/float64(n)/1e6, ms(late[0]),
		procStatusKB("VmHWM")), nil
}

// W7 idle memory: n goroutines each sleep 5 s; RSS per goroutine =
// (peak - before starting them) / n.
func w7Idle(n int) (string, error) {
	s := newShared(n)
	rss0 := procStatusKB("VmRSS")
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; i < n; i++ {
		deadline := time.Now().Add(idleSleep)
		go func() {
			time.Sleep(time.Until(deadline))
			s.count.Add(1)
			s.finish()
		}()
	}
	spawn := time.Since(start)
	woke := s.count.Load() // already woken: not asleep at the peak
	<-s.done
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	if err := check("goroutines woken", int(s.count.Load()), n); err != nil {
		return "", err
	}
	peak := procStatusKB("VmHWM")
	return fmt.Sprintf("tasks=%d wall_ms=%.3f spawn_ms=%.3f woke_during_spawn=%d cpu_ms=%.3f "+
		"rss_base_kb=%d rss_per_task_b=%.1f rss_peak_kb=%d",
		n, float64(wall.Nanoseconds())/1e6, float64(spawn.Nanoseconds())/1e6, woke,
		float64(cpu.Nanoseconds())/1e6, rss0,
		float64(peak-rss0)*1024/float64(n), peak), nil
}

func scaled(n int, scale float64) int {
	if m := int(float64(n) * scale); m > 1 {
		return m
	}
	return 1
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: weft-peer-go <W1|W2|W3|W4|W5|C1|C4|M1|W6|W7> [scale]")
	os.Exit(2)
}

func main() {
	runtime.GOMAXPROCS(2)
	const name = "go2"
	if len(os.Args) < 2 || len(os.Args) > 3 {
		usage()
	}
	scale := 1.0
	if len(os.Args) == 3 {
		var err error
		scale, err = strconv.ParseFloat(os.Args[2], 64)
		if err != nil || !(scale > 0) || scale > 1e6 {
			usage()
		}
	}
	if os.Args[1] == "W6" || os.Args[1] == "W7" {
		var line string
		var err error
		if os.Args[1] == "W6" {
			line, err = w6Timers(scaled(timerTasks, scale))
		} else {
			line, err = w7Idle(scaled(idleTasks, scale))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s %s: check failed: %v\n", os.Args[1], name, err)
			os.Exit(1)
		}
		fmt.Printf("RESULT %s %s %s\n", os.Args[1], name, line)
		return
	}
	var r result
	switch os.Args[1] {
	case "W1":
		r = w1SpawnManyLocal(scaled(spawns, scale))
	case "W2":
		r = w2SpawnManyRemote(scaled(spawns, scale))
	case "W3":
		r = w3YieldMany(scaled(yieldTasks, scale))
	case "W4":
		r = w4PingPong(scaled(pairs, scale))
	case "W5":
		r = w5ChainedSpawn(scaled(spawns, scale))
	case "C1":
		r = chanThroughput(scaled(messages, scale), 1)
	case "C4":
		r = chanThroughput(scaled(messages, scale), 4)
	case "M1":
		r = m1Mutex(scaled(lockTasks, scale))
	default:
		usage()
	}
	if r.err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: check failed: %v\n", os.Args[1], name, r.err)
		os.Exit(1)
	}
	ns := float64(r.elapsed.Nanoseconds()) / float64(r.ops)
	fmt.Printf("RESULT %s %s %.1f\n", os.Args[1], name, ns)
}
