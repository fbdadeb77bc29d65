//! The spool's public types: options, errors, record ids, statistics.

use std::path::PathBuf;
use std::time::Duration;

/// When written records are synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every batch of appends (group commit): nothing reported appended is lost.
    Batch,
    /// At most this long after a write: a crash loses at most this interval.
    Interval(Duration),
}

/// How a spool is set up.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// The spool's root directory.
    pub dir: PathBuf,
    /// Bound on bytes on disk (all instance directories) plus bytes queued for writing.
    pub max_bytes: u64,
    /// Bound on bytes queued for writing (memory).
    pub buffer_bytes: u64,
    /// Segment file size before rolling to a new one.
    pub segment_bytes: u64,
    /// Sync policy.
    pub sync: SyncPolicy,
    /// The cluster the events are for (name and bootstrap servers): only instance
    /// directories with this identity are adopted.
    pub identity: String,
}

/// Why the spool refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    /// `max_bytes` reached.
    #[error("the spool is full")]
    Full,
    /// `buffer_bytes` of appends are waiting to be written.
    #[error("the spool's write buffer is full")]
    Busy,
    /// The spool was closed.
    #[error("the spool is closed")]
    Closed,
    /// A disk error (e.g. ENOSPC).
    #[error("spool I/O error: {0}")]
    Io(String),
}

/// Identifies a record for [`Spool::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordId {
    source: u64,
    /// Sequence number within its directory.
    pub seq: u64,
}

impl RecordId {
    pub(crate) fn new(source: u64, seq: u64) -> Self {
        Self { source, seq }
    }

    pub(crate) fn source(&self) -> u64 {
        self.source
    }
}

/// A record read for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: RecordId,
    /// Its timestamp.
    pub timestamp_ms: i64,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Figures for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records held and not acknowledged.
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Timestamp of the oldest record held.
    pub oldest_ts: Option<i64>,
    /// Records appended by this process.
    pub appended: u64,
    /// Records acknowledged (delivered from the spool).
    pub acked: u64,
    /// Corrupted or torn tails cut off during recovery.
    pub corrupted_tails: u64,
    /// Bytes in those tails.
    pub corrupted_bytes: u64,
    /// Failed batch writes or syncs.
    pub write_errors: u64,
    /// Appends refused because the spool was full or busy.
    pub refused: u64,
}
