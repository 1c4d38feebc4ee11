//! Snapshots of atomic counters, in one place: a stage keeps `AtomicU64`s, its snapshot
//! struct has plain numbers of the same names, and `load_counters!` reads one into the
//! other (`Relaxed`: each counter is read on its own; a stage that needs several read
//! together, as the spool does, keeps them under its own lock).

/// `Type { a: from.a.load(Relaxed), b: from.b.load(Relaxed), rest… }`: the fields in
/// brackets are counters of the same name in `from`; the fields after them are written
/// out as in any struct expression.
macro_rules! load_counters {
    ($ty:ident from $from:expr, [$($field:ident),* $(,)?] $(, $($rest:tt)*)?) => {
        $ty {
            $($field: $from.$field.load(::std::sync::atomic::Ordering::Relaxed),)*
            $($($rest)*)?
        }
    };
}

pub(crate) use load_counters;
