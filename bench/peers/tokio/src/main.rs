// SPDX-License-Identifier: MIT
//! Peer benchmarks for weft: the five scheduler workloads and the three
//! sync-layer workloads (C1, C4: channel throughput; M1: mutex contention)
//! on tokio.
//!
//! Usage: weft-peer-tokio <W1..W5|C1|C4|M1> <mt2|ct> [scale]
//!
//! Prints exactly one line, `RESULT <workload> <runtime> <ns_per_op>`, and
//! exits non-zero if the workload's own result check fails.
//!
//! `scale` (default 1.0) multiplies the number of tasks (W1, W2, W5: spawns;
//! W3: yielding tasks; W4: pairs), never below 1. Per-task iteration counts
//! (W3 yields, W4 round trips, M1 lock/unlock pairs) stay fixed, so the
//! total op count scales linearly. For C1/C4 `scale` multiplies the message
//! count (10,000,000). Timing covers the workload only, not building the runtime.
//!
//! W6/W7 are the timer workloads (see bench/weft_time.c for the definitions):
//! W6 timers: 100,000 tasks each sleep until a deadline 1..1000 ms after their
//! spawn (fixed-seed LCG) and record their lateness; W7 idle memory:
//! 1,000,000 tasks each sleep 5 s. They print `RESULT <W6|W7> <runtime>
//! key=value ...` instead (wall, lateness, CPU time, peak RSS), and are the
//! only workloads whose runtime has the timer driver enabled. `scale`
//! multiplies their task count.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, Mutex, Notify};

const SPAWNS: usize = 1_000_000;
const YIELD_TASKS: usize = 1_000;
const YIELDS_PER_TASK: usize = 1_000;
const PAIRS: usize = 1_000;
const ROUND_TRIPS: usize = 1_000;
const MESSAGES: usize = 10_000_000;
const CHAN_CAP: usize = 1_024;
const LOCK_TASKS: usize = 1_000;
const LOCKS_PER_TASK: usize = 1_000;
const TIMER_TASKS: usize = 100_000;
const IDLE_TASKS: usize = 1_000_000;
const IDLE_SLEEP: Duration = Duration::from_secs(5);

/// Completion tracking shared by all tasks of a workload: `count` is the work
/// being verified, the task that takes `remaining` to zero signals `done`.
struct Shared {
    count: AtomicUsize,
    remaining: AtomicUsize,
    done: Notify,
}

impl Shared {
    fn new(tasks: usize) -> Arc<Self> {
        Arc::new(Shared {
            count: AtomicUsize::new(0),
            remaining: AtomicUsize::new(tasks),
            done: Notify::new(),
        })
    }

    /// Called once by every task as it ends; the last one signals.
    fn finish(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one stores a permit, so a waiter arriving later still wakes.
            self.done.notify_one();
        }
    }

    async fn wait(&self) {
        self.done.notified().await;
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// Outcome of one run: wall time, number of ops, and the check's verdict.
struct Run {
    elapsed: Duration,
    ops: usize,
    ok: Result<(), String>,
}

fn check(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, want {want}"))
    }
}

/// Runs `root` as a spawned task (so it is on a worker, not the block_on
/// thread) and returns what it returns.
fn in_root<F>(rt: &Runtime, root: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async { tokio::spawn(root).await.expect("root task panicked") })
}

/// W1 spawn_many_local: cost of spawning from inside the runtime. A root task
/// spawns `n` tasks that each bump a counter; the last to finish signals.
fn w1_spawn_many_local(rt: &Runtime, n: usize) -> Run {
    in_root(rt, async move {
        let shared = Shared::new(n);
        let start = Instant::now();
        for _ in 0..n {
            let s = shared.clone();
            tokio::spawn(async move {
                s.count.fetch_add(1, Ordering::Relaxed);
                s.finish();
            });
        }
        shared.wait().await;
        let elapsed = start.elapsed();
        Run { elapsed, ops: n, ok: check("counter", shared.count(), n) }
    })
}

/// W2 spawn_many_remote: cost of spawning from a plain OS thread outside the
/// runtime via `Handle::spawn` (tasks go through the injection queue).
fn w2_spawn_many_remote(rt: &Runtime, n: usize) -> Run {
    let shared = Shared::new(n);
    let handle = rt.handle().clone();
    let start = Instant::now();
    let spawner = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            for _ in 0..n {
                let s = shared.clone();
                handle.spawn(async move {
                    s.count.fetch_add(1, Ordering::Relaxed);
                    s.finish();
                });
            }
        })
    };
    // block_on also drives the current_thread runtime while the thread spawns.
    rt.block_on(shared.wait());
    let elapsed = start.elapsed();
    spawner.join().expect("spawner thread panicked");
    Run { elapsed, ops: n, ok: check("counter", shared.count(), n) }
}

/// W3 yield_many: cost of a task yielding back to the scheduler and being
/// polled again. `tasks` tasks each yield `YIELDS_PER_TASK` times.
fn w3_yield_many(rt: &Runtime, tasks: usize) -> Run {
    in_root(rt, async move {
        let shared = Shared::new(tasks);
        let start = Instant::now();
        for _ in 0..tasks {
            let s = shared.clone();
            tokio::spawn(async move {
                // count locally, publish once: the shared counter must not
                // be what is measured
                let mut n = 0;
                for _ in 0..YIELDS_PER_TASK {
                    tokio::task::yield_now().await;
                    n += 1;
                }
                s.count.fetch_add(n, Ordering::Relaxed);
                s.finish();
            });
        }
        shared.wait().await;
        let elapsed = start.elapsed();
        let ops = tasks * YIELDS_PER_TASK;
        Run { elapsed, ops, ok: check("yields", shared.count(), ops) }
    })
}

/// W4 ping_pong: cost of a message handoff that wakes the peer task. Each
/// pair passes a counter back and forth `ROUND_TRIPS` times over two
/// capacity-1 channels, adding one per hop.
fn w4_ping_pong(rt: &Runtime, pairs: usize) -> Run {
    in_root(rt, async move {
        // `count` counts tasks whose final value checked out.
        let shared = Shared::new(2 * pairs);
        let start = Instant::now();
        for _ in 0..pairs {
            let (to_pong, mut from_ping) = mpsc::channel::<usize>(1);
            let (to_ping, mut from_pong) = mpsc::channel::<usize>(1);
            let s = shared.clone();
            tokio::spawn(async move {
                let mut v = 0;
                for _ in 0..ROUND_TRIPS {
                    to_pong.send(v).await.expect("ponger gone");
                    v = from_pong.recv().await.expect("ponger gone") + 1;
                }
                if v == 2 * ROUND_TRIPS {
                    s.count.fetch_add(1, Ordering::Relaxed);
                }
                s.finish();
            });
            let s = shared.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..ROUND_TRIPS {
                    last = from_ping.recv().await.expect("pinger gone");
                    to_ping.send(last + 1).await.expect("pinger gone");
                }
                if last == 2 * ROUND_TRIPS - 2 {
                    s.count.fetch_add(1, Ordering::Relaxed);
                }
                s.finish();
            });
        }
        shared.wait().await;
        let elapsed = start.elapsed();
        let ops = pairs * ROUND_TRIPS * 2;
        Run { elapsed, ops, ok: check("pair tasks with correct final value", shared.count(), 2 * pairs) }
    })
}

/// W5 chained_spawn: cost of spawn + first poll when each task spawns the
/// next one, `n` tasks in all; the last one signals.
fn w5_chained_spawn(rt: &Runtime, n: usize) -> Run {
    fn link(s: Arc<Shared>, left: usize) {
        tokio::spawn(async move {
            s.count.fetch_add(1, Ordering::Relaxed);
            if left > 1 {
                link(s, left - 1);
            } else {
                s.done.notify_one();
            }
        });
    }
    in_root(rt, async move {
        let shared = Shared::new(n);
        let start = Instant::now();
        link(shared.clone(), n);
        shared.wait().await;
        let elapsed = start.elapsed();
        Run { elapsed, ops: n, ok: check("chain length", shared.count(), n) }
    })
}

/// C1/C4 channel throughput: `producers` tasks send the values 1..=n (each a
/// contiguous range, in order) through bounded channels to `producers`
/// consumer tasks, which count the messages and add them up; the check is
/// the exact count and sum. The channels close when every sender is dropped.
///
/// tokio 1.24 has no multi-consumer channel (mpsc is multi-producer,
/// single-consumer; broadcast delivers every message to every receiver), so
/// with 4 consumers (C4) the queue is sharded: 4 mpsc channels, one per
/// consumer, each bounded to CHAN_CAP / 4 = 256 so that the total buffer is
/// the 1024 of weft's and Go's single channel; producer p sends its i-th
/// message to channel (p + i) % 4 (round-robin), so each channel has all 4
/// producers and one consumer. This uses mpsc as designed and adds no lock;
/// the alternative, one channel whose Receiver sits in a tokio Mutex shared
/// by the 4 consumers (`rx.lock().await.recv().await`), would add an async
/// lock per message and hold it across the wait for the next one; measured
/// on a 2-CPU machine it was about 3.5x slower than sharding, so sharding is
/// the variant that favours tokio. It also splits the one queue's contention
/// over 4 queues, which weft's and Go's single channel do not get. What it
/// gives up is load balancing between consumers, which this even
/// round-robin workload does not need. C1 is one plain mpsc channel of 1024.
fn chan_throughput(rt: &Runtime, n: usize, producers: usize) -> Run {
    in_root(rt, async move {
        let per = (n / producers).max(1);
        let total = per * producers;
        let shards = producers;
        let cap = CHAN_CAP / shards;
        let shared = Shared::new(producers); // consumers
        let sum = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut txs = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (tx, mut rx) = mpsc::channel::<usize>(cap);
            txs.push(tx);
            let (s, sum) = (shared.clone(), sum.clone());
            tokio::spawn(async move {
                let (mut count, mut total) = (0usize, 0usize);
                while let Some(v) = rx.recv().await {
                    count += 1;
                    total = total.wrapping_add(v);
                }
                s.count.fetch_add(count, Ordering::Relaxed);
                sum.fetch_add(total, Ordering::Relaxed);
                s.finish();
            });
        }
        for p in 0..producers {
            let txs = txs.clone();
            tokio::spawn(async move {
                for (i, v) in (1 + p * per..1 + (p + 1) * per).enumerate() {
                    txs[(p + i) % shards].send(v).await.expect("consumer gone");
                }
            });
        }
        drop(txs);
        shared.wait().await;
        let elapsed = start.elapsed();
        let want_sum = (total as u64 * (total as u64 + 1) / 2) as usize;
        let ok = check("messages received", shared.count(), total)
            .and_then(|_| check("checksum", sum.load(Ordering::Acquire), want_sum));
        Run { elapsed, ops: total, ok }
    })
}

/// M1 mutex contention: `tasks` tasks each lock a tokio::sync::Mutex
/// LOCKS_PER_TASK times and bump the counter inside it; the check is that
/// no increment was lost. op = one lock/unlock pair.
fn m1_mutex(rt: &Runtime, tasks: usize) -> Run {
    in_root(rt, async move {
        let shared = Shared::new(tasks);
        let m = Arc::new(Mutex::new(0usize));
        let start = Instant::now();
        for _ in 0..tasks {
            let (s, m) = (shared.clone(), m.clone());
            tokio::spawn(async move {
                for _ in 0..LOCKS_PER_TASK {
                    *m.lock().await += 1;
                }
                s.finish();
            });
        }
        shared.wait().await;
        let elapsed = start.elapsed();
        let ops = tasks * LOCKS_PER_TASK;
        let got = *m.lock().await;
        Run { elapsed, ops, ok: check("protected counter", got, ops) }
    })
}

// ---- W6, W7: timers -----------------------------------------------------------

/// struct rusage as Linux lays it out (two timevals, then 14 longs): enough
/// for getrusage without the libc crate.
#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// user + sys time of the whole process (every thread).
fn cpu_time() -> Duration {
    let mut ru = Rusage { utime: [0; 2], stime: [0; 2], rest: [0; 14] };
    // SAFETY: ru is a valid, writable struct rusage; RUSAGE_SELF = 0.
    if unsafe { getrusage(0, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let us = (ru.utime[0] + ru.stime[0]) * 1_000_000 + ru.utime[1] + ru.stime[1];
    Duration::from_micros(us as u64)
}

/// A "Vm...:" line of /proc/self/status, in kB (0 if missing).
fn proc_status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The benchmarks' shared duration sequence: a 64-bit LCG, seed 42.
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        1 + (self.0 >> 33) % 1000
    }
}

fn signed_ns(later: Instant, earlier: Instant) -> i64 {
    if later >= earlier {
        (later - earlier).as_nanos() as i64
    } else {
        -((earlier - later).as_nanos() as i64)
    }
}

/// W6 timers: `n` tasks each sleep until spawn instant + a pseudo-random
/// 1..1000 ms and store how late they woke (ns) in their own slot.
fn w6_timers(rt: &Runtime, name: &str, n: usize) -> Result<String, String> {
    let (line, late) = in_root(rt, async move {
        let shared = Shared::new(n);
        let late: Arc<Vec<std::sync::atomic::AtomicI64>> =
            Arc::new((0..n).map(|_| std::sync::atomic::AtomicI64::new(0)).collect());
        let rss0 = proc_status_kb("VmRSS");
        let cpu0 = cpu_time();
        let start = Instant::now();
        let mut lcg = Lcg(42);
        let mut check = 0u64;
        for i in 0..n {
            let ms = lcg.next_ms();
            check += ms;
            let deadline = Instant::now() + Duration::from_millis(ms);
            let (s, late) = (shared.clone(), late.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
                late[i].store(signed_ns(Instant::now(), deadline), Ordering::Relaxed);
                s.count.fetch_add(1, Ordering::Relaxed);
                s.finish();
            });
        }
        let spawn = start.elapsed();
        shared.wait().await;
        let wall = start.elapsed();
        let cpu = cpu_time() - cpu0;
        let line = format!(
            "tasks={n} check={check} wall_ms={:.3} spawn_ms={:.3} cpu_ms={:.3} rss_base_kb={rss0}",
            wall.as_secs_f64() * 1e3,
            spawn.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3
        );
        (check_line(line, shared.count(), n), late)
    });
    let line = line?;
    let mut v: Vec<i64> = late.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    v.sort_unstable();
    let sum: i64 = v.iter().sum();
    let ms = |ns: i64| ns as f64 / 1e6;
    Ok(format!(
        "RESULT W6 {name} {line} late_max_ms={:.3} late_p99_ms={:.3} late_mean_ms={:.3} \
         late_min_ms={:.3} rss_peak_kb={}",
        ms(v[n - 1]),
        ms(v[(n * 99 + 99) / 100 - 1]),
        sum as f64 / n as f64 / 1e6,
        ms(v[0]),
        proc_status_kb("VmHWM")
    ))
}

fn check_line(line: String, got: usize, want: usize) -> Result<String, String> {
    check("tasks woken", got, want).map(|_| line)
}

/// W7 idle memory: `n` tasks each sleep 5 s (the task is its sleep and the
/// completion counter); RSS per task = (peak - before spawning) / n.
fn w7_idle(rt: &Runtime, name: &str, n: usize) -> Result<String, String> {
    let (line, rss0) = in_root(rt, async move {
        let shared = Shared::new(n);
        let rss0 = proc_status_kb("VmRSS");
        let cpu0 = cpu_time();
        let start = Instant::now();
        for _ in 0..n {
            let deadline = tokio::time::Instant::from_std(Instant::now() + IDLE_SLEEP);
            let s = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline).await;
                s.count.fetch_add(1, Ordering::Relaxed);
                s.finish();
            });
        }
        let spawn = start.elapsed();
        let woke = shared.count();   // already woken: not asleep at the peak
        shared.wait().await;
        let wall = start.elapsed();
        let cpu = cpu_time() - cpu0;
        let line = format!(
            "tasks={n} wall_ms={:.3} spawn_ms={:.3} woke_during_spawn={woke} cpu_ms={:.3} \
             rss_base_kb={rss0}",
            wall.as_secs_f64() * 1e3,
            spawn.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3
        );
        (check_line(line, shared.count(), n), rss0)
    });
    let line = line?;
    let peak = proc_status_kb("VmHWM");
    let per_task = (peak as f64 - rss0 as f64) * 1024.0 / n as f64;
    Ok(format!("RESULT W7 {name} {line} rss_per_task_b={per_task:.1} rss_peak_kb={peak}"))
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale) as usize).max(1)
}

fn usage() -> ExitCode {
    eprintln!("usage: weft-peer-tokio <W1|W2|W3|W4|W5|C1|C4|M1|W6|W7> <mt<workers>|ct> [scale]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 4 {
        return usage();
    }
    let scale = match args.get(3).map(|s| s.parse::<f64>()) {
        None => 1.0,
        Some(Ok(s)) if s > 0.0 && s.is_finite() => s,
        _ => return usage(),
    };
    // mt<N>: multi_thread with N workers (mt2 is the one compared by default).
    let flavour = args[2].as_str();
    let workers = flavour.strip_prefix("mt").and_then(|n| n.parse::<usize>().ok());
    let (mut builder, name) = match (flavour, workers) {
        (_, Some(n)) if n > 0 => {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(n);
            (b, format!("tokio-mt{n}"))
        }
        ("ct", _) => (Builder::new_current_thread(), "tokio-ct".to_string()),
        _ => return usage(),
    };
    // The timer driver only for the timer workloads: W1-W5, C1, C4, M1 run
    // on the same runtime as before.
    let timers = matches!(args[1].as_str(), "W6" | "W7");
    if timers {
        builder.enable_time();
    }
    let rt = builder.build().expect("failed to build runtime");
    if timers {
        let line = if args[1] == "W6" {
            w6_timers(&rt, &name, scaled(TIMER_TASKS, scale))
        } else {
            w7_idle(&rt, &name, scaled(IDLE_TASKS, scale))
        };
        return match line {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{} {}: check failed: {e}", args[1], name);
                ExitCode::FAILURE
            }
        };
    }
    let run = match args[1].as_str() {
        "W1" => w1_spawn_many_local(&rt, scaled(SPAWNS, scale)),
        "W2" => w2_spawn_many_remote(&rt, scaled(SPAWNS, scale)),
        "W3" => w3_yield_many(&rt, scaled(YIELD_TASKS, scale)),
        "W4" => w4_ping_pong(&rt, scaled(PAIRS, scale)),
        "W5" => w5_chained_spawn(&rt, scaled(SPAWNS, scale)),
        "C1" => chan_throughput(&rt, scaled(MESSAGES, scale), 1),
        "C4" => chan_throughput(&rt, scaled(MESSAGES, scale), 4),
        "M1" => m1_mutex(&rt, scaled(LOCK_TASKS, scale)),
        _ => return usage(),
    };
    if let Err(e) = run.ok {
        eprintln!("{} {}: check failed: {e}", args[1], name);
        return ExitCode::FAILURE;
    }
    let ns = run.elapsed.as_nanos() as f64 / run.ops as f64;
    println!("RESULT {} {} {:.1}", args[1], name, ns);
    ExitCode::SUCCESS
}
