//! The sample buffer between the sampler and the windower: a `ringbuf` SPSC ring whose
//! producer never blocks and, when the consumer has stalled, overwrites the oldest sample.
//!
//! A lock-free SPSC producer cannot remove the oldest element (only the consumer may move
//! the read index). So the consumer half sits behind a mutex that the *reader* holds only
//! for the instant of a pop, and that the writer only ever `try_lock`s when the ring is
//! full: if it gets the lock it evicts the oldest sample (counted as overwritten); if the
//! reader holds it, the reader is popping right now and room is about to appear, so the
//! writer retries once and otherwise drops the new sample (counted as dropped). Either way
//! the sensor thread never waits on the consumer.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::sensor::sample::Sample;
use crate::support::wake::Wake;

/// What happened to one pushed sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Stored,
    /// Stored after evicting the oldest sample.
    OverwroteOldest,
    /// Not stored: the ring was full and the reader was mid-pop.
    DroppedNewest,
}

/// A ring of capacity 0 was requested (or could not be allocated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot create a sample buffer of capacity {capacity}: {detail}")]
pub struct QueueError {
    pub capacity: usize,
    pub detail: String,
}

/// Creates the buffer; `capacity` ≥ 1.
pub fn sample_queue(capacity: usize) -> Result<(SampleWriter, SampleReader), QueueError> {
    let ring = HeapRb::<Sample>::try_new(capacity).map_err(|error| QueueError {
        capacity,
        detail: error.to_string(),
    })?;
    let (producer, consumer) = ring.split();
    let consumer = Arc::new(Mutex::new(consumer));
    let arrival = Arc::new(Wake::new());
    Ok((
        SampleWriter {
            producer,
            consumer: consumer.clone(),
            arrival: arrival.clone(),
        },
        SampleReader { consumer, arrival },
    ))
}

/// The sampler's end.
pub struct SampleWriter {
    producer: HeapProd<Sample>,
    consumer: Arc<Mutex<HeapCons<Sample>>>,
    arrival: Arc<Wake>,
}

impl std::fmt::Debug for SampleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleWriter")
            .field("len", &self.producer.occupied_len())
            .field("capacity", &self.producer.capacity())
            .finish()
    }
}

impl SampleWriter {
    /// Stores `sample`, evicting the oldest one if the ring is full. Never blocks.
    pub fn push(&mut self, sample: Sample) -> PushOutcome {
        let outcome = self.store(sample);
        self.arrival.notify();
        outcome
    }

    fn store(&mut self, sample: Sample) -> PushOutcome {
        let sample = match self.producer.try_push(sample) {
            Ok(()) => return PushOutcome::Stored,
            Err(sample) => sample,
        };
        let evicted = match self.consumer.try_lock() {
            Ok(mut consumer) => consumer.try_pop().is_some(),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().try_pop().is_some(),
            Err(TryLockError::WouldBlock) => false,
        };
        match self.producer.try_push(sample) {
            Ok(()) if evicted => PushOutcome::OverwroteOldest,
            Ok(()) => PushOutcome::Stored,
            Err(_) => PushOutcome::DroppedNewest,
        }
    }

    pub fn len(&self) -> usize {
        self.producer.occupied_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.producer.capacity().get()
    }
}

/// The consumer's end (the windower).
#[derive(Clone)]
pub struct SampleReader {
    consumer: Arc<Mutex<HeapCons<Sample>>>,
    arrival: Arc<Wake>,
}

impl std::fmt::Debug for SampleReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleReader")
            .field("len", &self.len())
            .finish()
    }
}

impl SampleReader {
    fn lock(&self) -> MutexGuard<'_, HeapCons<Sample>> {
        self.consumer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until a sample is available or `timeout` passes; answers whether one is.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.arrival.wait_until(timeout, || !self.is_empty())
    }

    /// The oldest sample, if any.
    pub fn pop(&self) -> Option<Sample> {
        self.lock().try_pop()
    }

    /// Moves every available sample into `into`, oldest first; returns how many.
    pub fn drain_into(&self, into: &mut Vec<Sample>) -> usize {
        let mut consumer = self.lock();
        let before = into.len();
        into.extend(consumer.pop_iter());
        into.len() - before
    }

    pub fn len(&self) -> usize {
        self.lock().occupied_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sensor::sample::test_sample as sample;

    #[test]
    fn full_ring_overwrites_the_oldest() {
        let (mut writer, reader) = sample_queue(3).unwrap();
        for t in 0..3 {
            assert_eq!(writer.push(sample(t)), PushOutcome::Stored);
        }
        assert_eq!(writer.push(sample(3)), PushOutcome::OverwroteOldest);
        assert_eq!(writer.push(sample(4)), PushOutcome::OverwroteOldest);
        let mut out = Vec::new();
        assert_eq!(reader.drain_into(&mut out), 3);
        let stamps: Vec<i64> = out.iter().map(|s| s.timestamp).collect();
        assert_eq!(stamps, [2, 3, 4]);
    }

    #[test]
    fn reader_holding_the_lock_makes_the_writer_drop_not_wait() {
        let (mut writer, reader) = sample_queue(1).unwrap();
        writer.push(sample(0));
        let guard = reader.lock();
        assert_eq!(writer.push(sample(1)), PushOutcome::DroppedNewest);
        drop(guard);
        assert_eq!(reader.pop().map(|s| s.timestamp), Some(0));
    }

    #[test]
    fn zero_capacity_is_an_error() {
        assert!(sample_queue(0).is_err());
    }
}
