//! One interruptible wait: a thread sleeps until a condition holds, a timeout passes, or
//! another thread says something changed. Every waiting loop in the agent (the sample
//! queue, the spool, the shipper, the function watcher, the sampler) uses it, so a stop
//! request reaches each of them at once instead of after its next poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Wakes waiters when something they wait for may have changed.
///
/// The change itself lives wherever the caller keeps it (an atomic, a queue, a database);
/// [`Wake::notify`] takes the lock after it, and [`Wake::wait_until`] checks the condition
/// under the same lock, so a notification between the check and the wait is never lost.
#[derive(Debug, Default)]
pub struct Wake {
    lock: Mutex<()>,
    condvar: Condvar,
}

impl Wake {
    pub fn new() -> Self {
        Self::default()
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes every waiter to re-check its condition.
    pub fn notify(&self) {
        drop(self.guard());
        self.condvar.notify_all();
    }

    /// Waits until `ready()` holds or `timeout` passes; answers `ready()` at the end.
    pub fn wait_until(&self, timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = self.guard();
        loop {
            if ready() {
                return true;
            }
            let remaining = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(remaining) if !remaining.is_zero() => remaining,
                    _ => return ready(),
                },
                // A timeout too long to represent: wait in long steps.
                None => Duration::from_secs(3600),
            };
            guard = self
                .condvar
                .wait_timeout(guard, remaining)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

/// A stop request that interrupts sleeps: for threads that pause between attempts.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: AtomicBool,
    wake: Wake,
}

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Sleeps `duration` unless stopped first; answers whether it was stopped.
    pub fn sleep(&self, duration: Duration) -> bool {
        self.wake.wait_until(duration, || self.is_stopped())
    }

    /// Waits until `ready()` holds, a stop is requested, or `timeout` passes; answers
    /// `ready()`. Whoever makes `ready` true calls [`Stop::notify`].
    pub fn wait_until(&self, timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
        self.wake
            .wait_until(timeout, || self.is_stopped() || ready());
        ready()
    }

    /// Waits until `ready()` holds or `timeout` passes, whether or not a stop was
    /// requested (to wait for a stopped thread to finish); answers `ready()`.
    pub fn wait_regardless(&self, timeout: Duration, ready: impl FnMut() -> bool) -> bool {
        self.wake.wait_until(timeout, ready)
    }

    /// Wakes waiters to re-check their condition without stopping them.
    pub fn notify(&self) {
        self.wake.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn a_notification_ends_the_wait_and_a_timeout_answers_false() {
        let wake = Arc::new(Wake::new());
        let value = Arc::new(AtomicU32::new(0));
        let (w, v) = (wake.clone(), value.clone());
        let setter = std::thread::spawn(move || {
            v.store(7, Ordering::Release);
            w.notify();
        });
        assert!(
            wake.wait_until(Duration::from_secs(30), || value.load(Ordering::Acquire)
                == 7)
        );
        setter.join().unwrap();
        assert!(!wake.wait_until(Duration::from_millis(1), || false));
    }

    #[test]
    fn stop_interrupts_a_long_sleep() {
        let stop = Arc::new(Stop::new());
        let s = stop.clone();
        let sleeper = std::thread::spawn(move || s.sleep(Duration::from_secs(3600)));
        stop.stop();
        assert!(sleeper.join().unwrap());
        assert!(stop.sleep(Duration::from_secs(3600)), "stays stopped");
    }

    #[test]
    fn a_stopped_waiter_can_still_wait_for_a_thread_to_finish() {
        let stop = Arc::new(Stop::new());
        let finished = Arc::new(AtomicBool::new(false));
        stop.stop();
        let (s, f) = (stop.clone(), finished.clone());
        let worker = std::thread::spawn(move || {
            f.store(true, Ordering::Release);
            s.notify();
        });
        assert!(stop.wait_regardless(Duration::from_secs(30), || finished.load(Ordering::Acquire)));
        worker.join().unwrap();
    }
}
