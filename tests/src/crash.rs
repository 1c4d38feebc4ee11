//! For the tests that kill agents at random moments: the identity a document id names,
//! and a small deterministic generator of those moments, so a failing run can be
//! replayed from its seed.

/// A document's identity from its `_id` (`<host>.<sensor>.<run>.<seq>`): the run and the
/// sample's place in it, which order a run's documents.
pub type Key = (String, u64);

/// The run and sequence number of a document id; `None` if it has no such tail.
pub fn key(id: &str) -> Option<Key> {
    let mut parts = id.rsplit('.');
    let seq = parts.next()?.parse().ok()?;
    let run = parts.next()?.to_owned();
    Some((run, seq))
}

/// xorshift64: the same moments for the same seed.
pub struct Rng(u64);

impl Rng {
    /// Never zero, the one state xorshift cannot leave.
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}
