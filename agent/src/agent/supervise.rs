//! The supervision loop: every tick (or at a command) it asks whether the agent still
//! makes progress ([`crate::health::Liveness`]), tells `/health` the same verdict it
//! tells the watchdog, pings the watchdog only while the agent is alive (so a stuck
//! thread gets the service restarted), and says the one-line status. It ends at a stop
//! request, when the pipeline ends, or when a finite input has ended.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use log::info;
use sd_notify::NotifyState;

use crate::health::{Health, Liveness, Progress, StallThresholds};

/// How often the loop looks at progress when there is no watchdog.
pub const TICK: Duration = Duration::from_secs(1);

/// What the agent's owner asks of it while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Re-read the function (SIGHUP).
    Reload,
    /// Stop; the text says why, for the log (`signal 15`).
    Stop(String),
}

/// Why supervision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A [`Command::Stop`].
    Requested,
    /// Nobody can send a command any more.
    Disconnected,
    /// A finite input has ended and the pipeline has judged all of it.
    InputEnded,
    /// The pipeline thread has ended (a sink error; the stop reports it).
    PipelineEnded,
}

/// What the loop needs of an agent; [`super::RunningAgent`] is one.
pub trait Supervised {
    fn progress(&self, turns: u64) -> Progress;
    fn status_line(&self) -> String;
    fn ended(&self) -> Option<Ended>;
    fn reload(&self);
    fn set_health(&self, health: Health);
    fn thresholds(&self) -> StallThresholds;
}

/// Whom the loop tells: systemd ([`SystemdNotifier`]), or a test.
pub trait Notifier {
    /// How often to look, at the longest.
    fn tick(&self) -> Duration {
        TICK
    }
    fn ready(&mut self);
    /// Alive: ping the watchdog, with the status line.
    fn alive(&mut self, status: &str);
    /// Stalled: the status line only, so the watchdog restarts the service.
    fn stalled(&mut self, status: &str);
    fn stopping(&mut self);
}

/// `sd_notify`: does nothing outside systemd.
pub struct SystemdNotifier;

impl Notifier for SystemdNotifier {
    fn tick(&self) -> Duration {
        sd_notify::watchdog_enabled().map_or(TICK, |period| (period / 2).min(TICK))
    }

    fn ready(&mut self) {
        let _ = sd_notify::notify(&[NotifyState::Ready]);
    }

    fn alive(&mut self, status: &str) {
        let _ = sd_notify::notify(&[NotifyState::Watchdog, NotifyState::Status(status)]);
    }

    fn stalled(&mut self, status: &str) {
        let _ = sd_notify::notify(&[NotifyState::Status(&format!("stalled: {status}"))]);
    }

    fn stopping(&mut self) {
        let _ = sd_notify::notify(&[NotifyState::Stopping]);
    }
}

/// The loop's state between turns.
pub struct Supervisor {
    liveness: Liveness,
    turns: u64,
}

impl Supervisor {
    pub fn new(thresholds: StallThresholds, now: Instant) -> Self {
        Self {
            liveness: Liveness::new(thresholds, now),
            turns: 0,
        }
    }

    /// One turn at `now`, after `command` (`None`: the tick passed); answers why the
    /// loop ends, if it does.
    pub fn turn(
        &mut self,
        agent: &impl Supervised,
        command: Option<Command>,
        now: Instant,
        notifier: &mut dyn Notifier,
    ) -> Option<Ended> {
        self.turns = self.turns.wrapping_add(1);
        match command {
            Some(Command::Reload) => agent.reload(),
            Some(Command::Stop(why)) => {
                info!("{why}: stopping");
                return Some(Ended::Requested);
            }
            None => {}
        }
        match agent.ended() {
            Some(Ended::InputEnded) => {
                info!("the input has ended and is judged whole: stopping");
                return Some(Ended::InputEnded);
            }
            Some(ended) => return Some(ended),
            None => {}
        }
        let verdict = self.liveness.check(agent.progress(self.turns), now);
        // The same verdict for /health as for the watchdog.
        agent.set_health(verdict);
        let status = agent.status_line();
        if verdict == Health::Alive {
            notifier.alive(&status);
        } else {
            notifier.stalled(&status);
        }
        None
    }
}

/// Supervises `agent` until a stop is asked on `commands`, the pipeline ends or a finite
/// input has ended; says READY first and STOPPING last.
pub fn supervise(
    agent: &impl Supervised,
    commands: &Receiver<Command>,
    notifier: &mut dyn Notifier,
) -> Ended {
    notifier.ready();
    let tick = notifier.tick();
    let mut supervisor = Supervisor::new(agent.thresholds(), Instant::now());
    let ended = loop {
        let command = match commands.recv_timeout(tick) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break Ended::Disconnected,
        };
        if let Some(ended) = supervisor.turn(agent, command, Instant::now(), notifier) {
            break ended;
        }
    };
    notifier.stopping();
    agent.set_health(Health::Stopping);
    ended
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::sync::mpsc;

    use super::*;

    #[derive(Default)]
    struct Fake {
        pipeline: Cell<u64>,
        reloads: Cell<u32>,
        ended: Cell<Option<Ended>>,
        health: Cell<Option<Health>>,
    }

    impl Supervised for Fake {
        fn progress(&self, turns: u64) -> Progress {
            Progress {
                pipeline: self.pipeline.get(),
                sampler: turns,
            }
        }
        fn status_line(&self) -> String {
            format!("{} windows", self.pipeline.get())
        }
        fn ended(&self) -> Option<Ended> {
            self.ended.get()
        }
        fn reload(&self) {
            self.reloads.set(self.reloads.get() + 1);
        }
        fn set_health(&self, health: Health) {
            self.health.set(Some(health));
        }
        fn thresholds(&self) -> StallThresholds {
            StallThresholds {
                pipeline: Duration::from_secs(5),
                sampler: Duration::from_secs(30),
            }
        }
    }

    #[derive(Default)]
    struct Told(RefCell<Vec<String>>);

    impl Notifier for Told {
        fn tick(&self) -> Duration {
            Duration::ZERO
        }
        fn ready(&mut self) {
            self.0.borrow_mut().push("READY".into());
        }
        fn alive(&mut self, status: &str) {
            self.0.borrow_mut().push(format!("WATCHDOG {status}"));
        }
        fn stalled(&mut self, status: &str) {
            self.0
                .borrow_mut()
                .push(format!("STATUS stalled: {status}"));
        }
        fn stopping(&mut self) {
            self.0.borrow_mut().push("STOPPING".into());
        }
    }

    #[test]
    fn the_watchdog_is_pinged_while_the_pipeline_moves_and_not_once_it_stalls() {
        let agent = Fake::default();
        let mut told = Told::default();
        let start = Instant::now();
        let mut supervisor = Supervisor::new(agent.thresholds(), start);
        let at = |s: u64| start + Duration::from_secs(s);

        agent.pipeline.set(1);
        assert_eq!(supervisor.turn(&agent, None, at(1), &mut told), None);
        assert_eq!(agent.health.get(), Some(Health::Alive));
        // Still for 4 s: alive; still for 6 s: the pipeline has stalled.
        assert_eq!(supervisor.turn(&agent, None, at(5), &mut told), None);
        assert_eq!(supervisor.turn(&agent, None, at(7), &mut told), None);
        assert_eq!(agent.health.get(), Some(Health::PipelineStalled));
        agent.pipeline.set(2);
        assert_eq!(supervisor.turn(&agent, None, at(8), &mut told), None);
        assert_eq!(agent.health.get(), Some(Health::Alive));
        assert_eq!(
            told.0.into_inner(),
            [
                "WATCHDOG 1 windows",
                "WATCHDOG 1 windows",
                "STATUS stalled: 1 windows",
                "WATCHDOG 2 windows"
            ]
        );
    }

    #[test]
    fn a_reload_goes_on_a_stop_or_an_ended_input_ends() {
        let agent = Fake::default();
        let mut told = Told::default();
        let now = Instant::now();
        let mut supervisor = Supervisor::new(agent.thresholds(), now);
        let turn = |s: &mut Supervisor, c, told: &mut Told| s.turn(&agent, c, now, told);
        assert_eq!(
            turn(&mut supervisor, Some(Command::Reload), &mut told),
            None
        );
        assert_eq!(agent.reloads.get(), 1);
        assert_eq!(
            turn(
                &mut supervisor,
                Some(Command::Stop("signal 15".into())),
                &mut told
            ),
            Some(Ended::Requested)
        );
        agent.ended.set(Some(Ended::InputEnded));
        assert_eq!(
            turn(&mut supervisor, None, &mut told),
            Some(Ended::InputEnded)
        );
        agent.ended.set(Some(Ended::PipelineEnded));
        // A stop request is heard before the agent's own state.
        assert_eq!(
            turn(
                &mut supervisor,
                Some(Command::Stop("test".into())),
                &mut told
            ),
            Some(Ended::Requested)
        );
        assert_eq!(
            turn(&mut supervisor, None, &mut told),
            Some(Ended::PipelineEnded)
        );
    }

    #[test]
    fn supervise_says_ready_first_and_stopping_last() {
        let agent = Fake::default();
        let mut told = Told::default();
        let (tx, rx) = mpsc::channel();
        tx.send(Command::Reload).unwrap();
        tx.send(Command::Stop("signal 2".into())).unwrap();
        assert_eq!(supervise(&agent, &rx, &mut told), Ended::Requested);
        assert_eq!(agent.reloads.get(), 1);
        assert_eq!(agent.health.get(), Some(Health::Stopping));
        let told = told.0.into_inner();
        assert_eq!(told.first().map(String::as_str), Some("READY"));
        assert_eq!(told.last().map(String::as_str), Some("STOPPING"));

        drop(tx);
        let mut told = Told::default();
        assert_eq!(supervise(&agent, &rx, &mut told), Ended::Disconnected);
    }
}
