//! Peer benchmarks for weft: the five scheduler workloads on tokio.
//!
//! Usage: weft-peer-tokio <W1..W5> <mt2|ct> [scale]
//!
//! Prints exactly one line, `RESULT <workload> <runtime> <ns_per_op>`, and
//! exits non-zero if the workload's own result check fails.
//!
//! `scale` (default 1.0) multiplies the number of tasks (W1, W2, W5: spawns;
//! W3: yielding tasks; W4: pairs), never below 1. Per-task iteration counts
//! (W3 yields, W4 round trips) stay fixed, so the total op count scales
//! linearly. Timing covers the workload only, not building the runtime.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, Notify};

const SPAWNS: usize = 1_000_000;
const YIELD_TASKS: usize = 1_000;
const YIELDS_PER_TASK: usize = 1_000;
const PAIRS: usize = 1_000;
const ROUND_TRIPS: usize = 1_000;

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

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale) as usize).max(1)
}

fn usage() -> ExitCode {
    eprintln!("usage: weft-peer-tokio <W1|W2|W3|W4|W5> <mt<workers>|ct> [scale]");
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
    let (rt, name) = match (flavour, workers) {
        (_, Some(n)) if n > 0 => {
            (Builder::new_multi_thread().worker_threads(n).build(), format!("tokio-mt{n}"))
        }
        ("ct", _) => (Builder::new_current_thread().build(), "tokio-ct".to_string()),
        _ => return usage(),
    };
    let rt = rt.expect("failed to build runtime");
    let run = match args[1].as_str() {
        "W1" => w1_spawn_many_local(&rt, scaled(SPAWNS, scale)),
        "W2" => w2_spawn_many_remote(&rt, scaled(SPAWNS, scale)),
        "W3" => w3_yield_many(&rt, scaled(YIELD_TASKS, scale)),
        "W4" => w4_ping_pong(&rt, scaled(PAIRS, scale)),
        "W5" => w5_chained_spawn(&rt, scaled(SPAWNS, scale)),
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
