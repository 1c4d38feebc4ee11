//! Who a sample is: the run it was taken in and its place in that run. Fixed when the
//! sample is taken, carried with it through the queue, the window and the spool, and turned
//! into the Elasticsearch `_id` by [`crate::record::VerdictRecord::document_id`].
//!
//! The run id is 64 random bits drawn once per start from the kernel (`getrandom(2)`, or
//! `/dev/urandom` where that call is missing), never from the clock: a Pi's clock at boot
//! can repeat a time it already showed, and two Pis on default settings share everything
//! else. Any two runs share an id with probability 2⁻⁶⁴; a fleet that starts a million runs
//! in all has a chance of about 3 × 10⁻⁸ that any two of them do (birthday bound n²/2⁶⁵).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The random id of one run of the sampler: 16 lowercase hex digits in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(u64);

/// The kernel would not give random bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot draw a random run id from the kernel: {0}")]
pub struct RandomnessError(pub String);

impl RunId {
    /// Draws a fresh run id from the kernel's random source.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; 8];
        fill_random(&mut bytes)?;
        Ok(RunId(u64::from_le_bytes(bytes)))
    }

    /// A given id, for tests and for tools that re-read stored samples.
    pub const fn from_raw(raw: u64) -> Self {
        RunId(raw)
    }

    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for RunId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 16 {
            return Err(format!("a run id has 16 hex digits, got {}", text.len()));
        }
        u64::from_str_radix(text, 16)
            .map(RunId)
            .map_err(|e| format!("run id {text:?}: {e}"))
    }
}

// Text, not a number: JSON readers that hold numbers as doubles (Kibana, jq) would round a
// 64-bit id, and Elasticsearch keeps it as a keyword.
impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(target_os = "linux")]
fn fill_random(bytes: &mut [u8]) -> Result<(), RandomnessError> {
    let mut filled = 0;
    // A short read is possible only for large requests or on a signal; loop until full.
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable buffer.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got < 0 {
            let error = std::io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                // Kernels before 3.17 have no getrandom: the device gives the same bytes.
                Some(libc::ENOSYS) => return read_urandom(rest),
                _ => return Err(RandomnessError(error.to_string())),
            }
        }
        filled += usize::try_from(got).unwrap_or(0).min(rest.len());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn fill_random(bytes: &mut [u8]) -> Result<(), RandomnessError> {
    read_urandom(bytes)
}

fn read_urandom(bytes: &mut [u8]) -> Result<(), RandomnessError> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(bytes))
        .map_err(|e| RandomnessError(format!("/dev/urandom: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_random_and_round_trip_as_text() {
        let ids: std::collections::BTreeSet<RunId> =
            (0..64).map(|_| RunId::generate().unwrap()).collect();
        assert_eq!(ids.len(), 64, "64 draws, 64 distinct ids");
        let id = RunId::from_raw(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), id);
        assert!("xyz".parse::<RunId>().is_err());
    }

    #[test]
    fn urandom_fills_the_buffer() {
        let mut bytes = [0u8; 32];
        read_urandom(&mut bytes).unwrap();
        assert!(bytes.iter().any(|b| *b != 0));
    }
}
