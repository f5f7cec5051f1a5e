//! A task pool whose tasks may add tasks: workers take the highest-priority queued task until
//! none is queued and none is running (a running task may still queue more). `verify --jobs`
//! (`verify::at_once`) and `crash`'s members run on it.

use std::any::Any;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::profile::clock::thread_cpu;

/// Stack of a worker thread: a member's replay runs there as it would on the main thread.
pub(crate) const WORKER_STACK: usize = 16 << 20;

/// A task and its priority: the highest is taken first, equal ones in the order queued.
pub(crate) struct Queued<T> {
    pub priority: u64,
    pub task: T,
}

struct PoolState<T> {
    /// Queued tasks with the sequence number that breaks priority ties.
    queue: Vec<(u64, Queued<T>)>,
    queued_so_far: u64,
    running: usize,
    /// The first task that panicked: no task is taken after it.
    panic: Option<Box<dyn Any + Send>>,
}

impl<T> PoolState<T> {
    fn push(&mut self, tasks: Vec<Queued<T>>) {
        for task in tasks {
            self.queue.push((self.queued_so_far, task));
            self.queued_so_far += 1;
        }
    }

    /// The highest priority, the earliest queued among equals.
    fn take_next(&mut self) -> Option<T> {
        let best = (0..self.queue.len()).max_by(|&a, &b| {
            let (sa, qa) = &self.queue[a];
            let (sb, qb) = &self.queue[b];
            qa.priority.cmp(&qb.priority).then(sb.cmp(sa))
        })?;
        Some(self.queue.swap_remove(best).1.task)
    }
}

/// A lock whose holder panicked is still taken: the pool re-raises that panic, and the data
/// behind it is not read again.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `initial` and every task `run` returns on `workers` threads: the caller's and
/// `workers - 1` spawned ones (fewer when the system has none to spare); the spawned workers'
/// CPU times (the caller's is its own). A panic in `run` stops the pool and is re-raised on the
/// caller's thread once every worker has stopped.
pub(crate) fn run_pool<T: Send>(
    initial: Vec<Queued<T>>,
    workers: usize,
    run: impl Fn(T) -> Vec<Queued<T>> + Sync,
) -> Vec<Duration> {
    let mut state = PoolState {
        queue: Vec::new(),
        queued_so_far: 0,
        running: 0,
        panic: None,
    };
    state.push(initial);
    let state = Mutex::new(state);
    let changed = Condvar::new();
    let work = || {
        let start = thread_cpu();
        loop {
            let task = {
                let mut s = lock(&state);
                loop {
                    if s.panic.is_some() {
                        break None;
                    }
                    if let Some(task) = s.take_next() {
                        s.running += 1;
                        break Some(task);
                    }
                    if s.running == 0 {
                        break None;
                    }
                    s = changed.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some(task) = task else { break };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(task)));
            let mut s = lock(&state);
            s.running -= 1;
            match outcome {
                Ok(more) => s.push(more),
                Err(panic) => {
                    s.panic.get_or_insert(panic);
                }
            }
            drop(s);
            changed.notify_all();
        }
        thread_cpu().saturating_sub(start)
    };
    let mut worker_cpu = Vec::with_capacity(workers);
    std::thread::scope(|scope| {
        // Spawned before this thread works, so they are runnable as early as can be (a thread
        // woken on an idle core may take milliseconds to run).
        let handles: Vec<_> = (1..workers)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .stack_size(WORKER_STACK)
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        work();
        for handle in handles {
            // A worker never unwinds: `run`'s panics are caught above.
            if let Ok(cpu) = handle.join() {
                worker_cpu.push(cpu);
            }
        }
    });
    if let Some(panic) = state.into_inner().unwrap_or_else(|e| e.into_inner()).panic {
        std::panic::resume_unwind(panic);
    }
    worker_cpu
}

/// `f` over `items` on `workers` threads ([`run_pool`], started in input order); the results in
/// the order of `items`.
pub(crate) fn map_in_order<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let tasks = items
        .into_iter()
        .enumerate()
        .map(|task| Queued { priority: 0, task })
        .collect();
    run_pool(tasks, workers, |(i, item)| {
        *lock(&results[i]) = Some(f(item));
        Vec::new()
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every task ran: a panic would have been re-raised")
        })
        .collect()
}

/// The workers for `jobs` (0: one per core) over `items` tasks: at least one, at most one a task.
pub(crate) fn workers_for(jobs: usize, items: usize) -> usize {
    let jobs = match jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    jobs.clamp(1, items.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Tasks that queue tasks all run, each once, whatever the number of workers.
    #[test]
    fn tasks_added_by_tasks_all_run() {
        for workers in [1, 2, 4] {
            let sum = AtomicU64::new(0);
            let count = AtomicU64::new(0);
            // Task n queues n - 1 and n - 2 (a Fibonacci tree of tasks).
            run_pool(
                vec![Queued {
                    priority: 0,
                    task: 12u64,
                }],
                workers,
                |n| {
                    sum.fetch_add(n, Ordering::Relaxed);
                    count.fetch_add(1, Ordering::Relaxed);
                    (n >= 2)
                        .then(|| {
                            [n - 1, n - 2].map(|task| Queued {
                                priority: task,
                                task,
                            })
                        })
                        .into_iter()
                        .flatten()
                        .collect()
                },
            );
            // fib-tree of 12: 465 calls; the sum of the values is checked against one recount.
            fn tree(n: u64) -> (u64, u64) {
                if n < 2 {
                    return (n, 1);
                }
                let (a, b) = (tree(n - 1), tree(n - 2));
                (n + a.0 + b.0, 1 + a.1 + b.1)
            }
            assert_eq!(
                (sum.into_inner(), count.into_inner()),
                tree(12),
                "{workers} workers"
            );
        }
    }

    /// Results come back in the order of the items, whatever the workers.
    #[test]
    fn map_in_order_keeps_the_order_of_the_items() {
        for workers in [1, 2, 3] {
            let items: Vec<u64> = (0..40).collect();
            let out = map_in_order(items, workers, |n| {
                // Uneven work, so tasks finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((n % 7) * 200));
                n * n
            });
            assert_eq!(
                out,
                (0..40u64).map(|n| n * n).collect::<Vec<_>>(),
                "{workers}"
            );
        }
    }

    /// One worker takes the highest priority first, equal priorities in the order queued.
    #[test]
    fn one_worker_takes_by_priority_then_queue_order() {
        let order = Mutex::new(Vec::new());
        let initial = [(1, 'a'), (3, 'b'), (1, 'c'), (3, 'd'), (2, 'e')]
            .map(|(priority, task)| Queued { priority, task })
            .into_iter()
            .collect();
        run_pool(initial, 1, |t| {
            lock(&order).push(t);
            Vec::new()
        });
        assert_eq!(order.into_inner().unwrap(), ['b', 'd', 'e', 'a', 'c']);
    }

    /// A panicking task stops the pool and the panic reaches the caller; no worker hangs.
    #[test]
    fn a_panic_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            run_pool(
                (0..8).map(|task| Queued { priority: 0, task }).collect(),
                2,
                |t: u32| {
                    assert!(t != 3, "task three");
                    Vec::new()
                },
            )
        });
        let panic = caught.expect_err("the panic is re-raised");
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(|s| s.as_str()));
        assert_eq!(message, Some("task three"));
    }
}
