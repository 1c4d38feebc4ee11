//! Time for the sensor stage, behind a trait so the same code runs on wall time, on an
//! accelerated demo clock (`--simulate --speed X`) and on a virtual clock in tests.
//!
//! Two readings of time are kept apart on purpose: a monotonic one that drives the sampling
//! schedule and every wait (so a wall-clock step from NTP cannot stretch or squash periods),
//! and a Unix one that only stamps samples. A third reading says whether the Unix one can
//! be believed: [`ClockSync`], from the kernel's NTP state (`adjtimex`) or, failing that,
//! systemd-timesyncd's flag file. What is done with a step or an unsynchronised clock is
//! the timeline module's business (`sensor/timeline.rs`, which imports this one), not this
//! module's.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time and of waiting.
pub trait Clock: Send + Sync + Debug {
    /// Time elapsed since the clock's origin; never goes backwards.
    fn monotonic(&self) -> Duration;
    /// Current time as Unix milliseconds (UTC), used only for timestamps.
    fn unix_millis(&self) -> i64;
    /// Whether `unix_millis` is synchronised to a time source now.
    fn sync_state(&self) -> ClockSync;
    /// Which boot this is and how long since it began (suspend included): lets a duration
    /// be measured across a restart of the agent, though not across a reboot, whatever the
    /// wall clock does. `None` where the system cannot say.
    fn boot_mark(&self) -> Option<BootMark> {
        None
    }
    /// Blocks (or, for a virtual clock, advances) for `duration` of this clock's time.
    fn sleep(&self, duration: Duration);
    /// Sleeps until `monotonic()` reaches `deadline`; returns at once if it already has.
    fn sleep_until(&self, deadline: Duration) {
        let now = self.monotonic();
        if deadline > now {
            self.sleep(deadline - now);
        }
    }
}

/// A clock shared between the sampler, the driver's delays and (for simulation) the chip.
pub type SharedClock = Arc<dyn Clock>;

/// Whether the wall clock is synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSync {
    /// The kernel (or timesyncd) says an NTP source disciplines the clock.
    Synced,
    /// The kernel says it is not (no NTP yet: a Pi that just booted, or one offline).
    Unsynced,
    /// Nobody could be asked (not Linux, or `adjtimex` failed and there is no flag file).
    /// Treated as unsynchronised wherever it matters.
    Unknown,
}

impl ClockSync {
    pub fn is_synced(self) -> bool {
        self == ClockSync::Synced
    }

    fn to_code(self) -> u8 {
        match self {
            ClockSync::Synced => 0,
            ClockSync::Unsynced => 1,
            ClockSync::Unknown => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            0 => ClockSync::Synced,
            1 => ClockSync::Unsynced,
            _ => ClockSync::Unknown,
        }
    }
}

/// A point on the boot clock: the kernel's random id of this boot and `CLOCK_BOOTTIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootMark {
    /// `/proc/sys/kernel/random/boot_id`, a UUID drawn at each boot.
    pub boot_id: u128,
    /// Time since the boot began, suspend included.
    pub since_boot: Duration,
}

/// Where Linux publishes the boot's random id.
const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";

/// This boot's id, read once: it cannot change while we run.
fn boot_id() -> Option<u128> {
    static BOOT_ID: std::sync::OnceLock<Option<u128>> = std::sync::OnceLock::new();
    *BOOT_ID.get_or_init(|| {
        let text = std::fs::read_to_string(BOOT_ID_FILE).ok()?;
        parse_boot_id(&text)
    })
}

/// A UUID's 32 hex digits, dashes and the trailing newline ignored.
fn parse_boot_id(text: &str) -> Option<u128> {
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// The system's boot mark: the boot id and `CLOCK_BOOTTIME`; `None` off Linux.
pub fn system_boot_mark() -> Option<BootMark> {
    Some(BootMark {
        boot_id: boot_id()?,
        since_boot: boot_time()?,
    })
}

#[cfg(target_os = "linux")]
fn boot_time() -> Option<Duration> {
    // SAFETY: `timespec` is plain data; clock_gettime writes into the one we own.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(not(target_os = "linux"))]
fn boot_time() -> Option<Duration> {
    None
}

/// systemd-timesyncd creates this file once it has synchronised the clock.
pub const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";
/// The kernel marks the clock unsynchronised once its maximum error passes 16 s
/// (`NTP_PHASE_LIMIT`); so do we, in microseconds as `adjtimex` reports it.
const MAX_ERROR_US: i64 = 16_000_000;

/// The system clock's state: `adjtimex(2)` in read-only mode (modes = 0, allowed without
/// privileges): synchronised when it does not return `TIME_ERROR`, `STA_UNSYNC` is clear
/// and `maxerror` is below 16 s. Where the call fails, timesyncd's flag file decides.
pub fn system_clock_sync() -> ClockSync {
    match kernel_clock_sync() {
        Some(state) => state,
        None if std::path::Path::new(TIMESYNCD_FLAG).exists() => ClockSync::Synced,
        None => ClockSync::Unknown,
    }
}

#[cfg(target_os = "linux")]
fn kernel_clock_sync() -> Option<ClockSync> {
    // SAFETY: `timex` is plain data for which all-zero is valid, and with `modes == 0`
    // adjtimex only writes the current state into the struct we own.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut timex) };
    if state < 0 {
        return None;
    }
    // `maxerror` is a C long: i64 on aarch64 and x86_64, i32 on 32-bit ARM.
    #[allow(clippy::useless_conversion)]
    let unsync = state == libc::TIME_ERROR
        || timex.status & libc::STA_UNSYNC != 0
        || i64::from(timex.maxerror) >= MAX_ERROR_US;
    Some(if unsync {
        ClockSync::Unsynced
    } else {
        ClockSync::Synced
    })
}

#[cfg(not(target_os = "linux"))]
fn kernel_clock_sync() -> Option<ClockSync> {
    None
}

fn system_unix_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        // A clock set before 1970 is broken; negative stamps say so rather than hiding it.
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Wall time: `std::thread::sleep` and the system clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
    fn unix_millis(&self) -> i64 {
        system_unix_millis()
    }
    fn sync_state(&self) -> ClockSync {
        system_clock_sync()
    }
    fn boot_mark(&self) -> Option<BootMark> {
        system_boot_mark()
    }
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Real time run `speed` times faster, for the simulated demo: an hour of scenario in a
/// minute at speed 60. Timestamps start at the real current time and advance at `speed`.
#[derive(Debug)]
pub struct ScaledClock {
    origin: Instant,
    unix_origin_ms: i64,
    speed: f64,
}

impl ScaledClock {
    /// `speed` below or at 0, or not finite, is taken as 1 (real time).
    pub fn new(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            origin: Instant::now(),
            unix_origin_ms: system_unix_millis(),
            speed,
        }
    }
}

impl Clock for ScaledClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed().mul_f64(self.speed)
    }
    fn unix_millis(&self) -> i64 {
        let elapsed_ms = i64::try_from(self.monotonic().as_millis()).unwrap_or(i64::MAX);
        self.unix_origin_ms.saturating_add(elapsed_ms)
    }
    /// The demo's timeline is the system clock's at start, sped up: as trustworthy as the
    /// system clock is now.
    fn sync_state(&self) -> ClockSync {
        system_clock_sync()
    }
    /// Only at real speed: sped-up durations would not match the boot clock's.
    fn boot_mark(&self) -> Option<BootMark> {
        if self.speed == 1.0 {
            system_boot_mark()
        } else {
            None
        }
    }
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration.div_f64(self.speed));
    }
}

/// Test time: sleeping advances the clock instantly, so an hour of sampling runs in
/// milliseconds and every run is deterministic. Clones share the same time, the same wall
/// steps and the same sync state, so a test can step the wall clock under a running
/// sampler the way NTP or a user would.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    elapsed_nanos: Arc<AtomicU64>,
    unix_origin_ms: i64,
    /// Sum of the wall-clock steps so far (ms); the monotonic reading never sees them.
    wall_offset_ms: Arc<AtomicI64>,
    sync: Arc<AtomicU8>,
    /// The boot this clock pretends to run in, and how long it had run at the origin.
    boot: Option<(u128, Duration)>,
}

impl VirtualClock {
    /// A clock whose Unix time starts at `unix_origin_ms`, synchronised.
    pub fn starting_at(unix_origin_ms: i64) -> Self {
        Self {
            elapsed_nanos: Arc::new(AtomicU64::new(0)),
            unix_origin_ms,
            wall_offset_ms: Arc::new(AtomicI64::new(0)),
            sync: Arc::new(AtomicU8::new(ClockSync::Synced.to_code())),
            boot: None,
        }
    }

    /// Gives the clock a boot mark: boot `boot_id`, `since_boot` at the clock's origin.
    /// Two clocks with the same id stand for two runs of the agent in one boot.
    pub fn with_boot(mut self, boot_id: u128, since_boot: Duration) -> Self {
        self.boot = Some((boot_id, since_boot));
        self
    }

    /// Steps the wall clock by `delta_ms` (negative: back), as `date -s` or an NTP step
    /// would; the monotonic clock does not move.
    pub fn step_wall(&self, delta_ms: i64) {
        self.wall_offset_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }

    /// What [`Clock::sync_state`] answers from now on.
    pub fn set_sync(&self, state: ClockSync) {
        self.sync.store(state.to_code(), Ordering::SeqCst);
    }

    /// Moves time forward without anybody sleeping (a test standing in for the world).
    pub fn advance(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Default for VirtualClock {
    /// Starts at 2026-01-01T00:00:00Z, a fixed point so test output is reproducible.
    fn default() -> Self {
        Self::starting_at(1_767_225_600_000)
    }
}

impl Clock for VirtualClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst))
    }
    fn unix_millis(&self) -> i64 {
        let elapsed_ms = i64::try_from(self.monotonic().as_millis()).unwrap_or(i64::MAX);
        self.unix_origin_ms
            .saturating_add(elapsed_ms)
            .saturating_add(self.wall_offset_ms.load(Ordering::SeqCst))
    }
    fn sync_state(&self) -> ClockSync {
        ClockSync::from_code(self.sync.load(Ordering::SeqCst))
    }
    fn boot_mark(&self) -> Option<BootMark> {
        let (boot_id, at_origin) = self.boot?;
        Some(BootMark {
            boot_id,
            since_boot: at_origin.saturating_add(self.monotonic()),
        })
    }
    fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

/// The embedded-hal delay the driver waits with, routed through a [`Clock`] so the driver's
/// conversion waits also run on virtual time.
#[derive(Debug, Clone)]
pub struct ClockDelay {
    clock: SharedClock,
}

impl ClockDelay {
    pub fn new(clock: SharedClock) -> Self {
        Self { clock }
    }
}

impl embedded_hal::delay::DelayNs for ClockDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.clock.sleep(Duration::from_nanos(u64::from(ns)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_advances_only_when_slept() {
        let clock = VirtualClock::starting_at(1_000);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.sleep(Duration::from_millis(1500));
        assert_eq!(clock.monotonic(), Duration::from_millis(1500));
        assert_eq!(clock.unix_millis(), 2_500);
        clock.sleep_until(Duration::from_millis(1000));
        assert_eq!(
            clock.monotonic(),
            Duration::from_millis(1500),
            "past deadline"
        );
        clock.sleep_until(Duration::from_secs(3));
        assert_eq!(clock.monotonic(), Duration::from_secs(3));
    }

    #[test]
    fn clones_of_a_virtual_clock_share_time() {
        let a = VirtualClock::default();
        let b = a.clone();
        a.advance(Duration::from_secs(7));
        assert_eq!(b.monotonic(), Duration::from_secs(7));
    }

    #[test]
    fn delay_goes_through_the_clock() {
        use embedded_hal::delay::DelayNs;
        let clock = VirtualClock::default();
        let mut delay = ClockDelay::new(Arc::new(clock.clone()));
        delay.delay_ms(10);
        delay.delay_us(500);
        assert_eq!(clock.monotonic(), Duration::from_micros(10_500));
    }

    #[test]
    fn wall_steps_leave_monotonic_time_alone() {
        let clock = VirtualClock::starting_at(10_000);
        let other = clock.clone();
        clock.advance(Duration::from_secs(1));
        other.step_wall(-5_000);
        assert_eq!(clock.unix_millis(), 6_000);
        assert_eq!(clock.monotonic(), Duration::from_secs(1));
        clock.step_wall(60_000);
        assert_eq!(other.unix_millis(), 66_000);
        assert_eq!(clock.sync_state(), ClockSync::Synced);
        other.set_sync(ClockSync::Unsynced);
        assert_eq!(clock.sync_state(), ClockSync::Unsynced);
    }

    #[test]
    fn the_system_clock_state_can_be_read() {
        // Whatever this machine's state, asking must not fail on Linux (read-only adjtimex).
        #[cfg(target_os = "linux")]
        assert!(super::kernel_clock_sync().is_some());
        let _ = system_clock_sync();
    }

    #[test]
    fn the_boot_mark_is_read_and_moves_on() {
        assert_eq!(
            parse_boot_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n"),
            Some(0x0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0)
        );
        assert_eq!(parse_boot_id("not a uuid"), None);
        #[cfg(target_os = "linux")]
        {
            let first = system_boot_mark().expect("Linux has a boot id and CLOCK_BOOTTIME");
            let second = system_boot_mark().unwrap();
            assert_eq!(first.boot_id, second.boot_id);
            assert!(second.since_boot >= first.since_boot);
        }
        let clock = VirtualClock::default().with_boot(7, Duration::from_secs(100));
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            clock.boot_mark(),
            Some(BootMark {
                boot_id: 7,
                since_boot: Duration::from_secs(105)
            })
        );
        assert_eq!(VirtualClock::default().boot_mark(), None);
    }

    #[test]
    fn scaled_clock_rejects_nonsense_speed() {
        let clock = ScaledClock::new(f64::NAN);
        assert!((clock.speed - 1.0).abs() < f64::EPSILON);
    }
}
