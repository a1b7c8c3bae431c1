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
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
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

func scaled(n int, scale float64) int {
	if m := int(float64(n) * scale); m > 1 {
		return m
	}
	return 1
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: weft-peer-go <W1|W2|W3|W4|W5|C1|C4|M1> [scale]")
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
