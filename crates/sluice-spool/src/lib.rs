//! Sluice's disk spool: a bounded, checksummed, crash-safe FIFO of records on local disk,
//! for events that could not be handed to Kafka in time (and for divert routes that
//! answer once an event is durably stored).
//!
//! # Layout
//!
//! ```text
//! <dir>/sluice-<instance>/SLUICE-SPOOL              marker: the cluster (name, brokers)
//! <dir>/sluice-<instance>/LOCK                      exclusive lock: the process writing here
//! <dir>/sluice-<instance>/00000000000000000001.seg  records 1..n, framed (see `format`)
//! <dir>/sluice-<instance>/ACKED                     every seq up to this one was delivered
//! ```
//!
//! Each process writes only to its own instance directory (`sluice-<start ms>-<pid>-<n>`),
//! so a graceful upgrade (old and new process side by side) never shares a file.
//! Instance directories of the same cluster whose lock is free belong to a process that
//! is gone; they are recovered, replayed and removed. Nothing else under the root is
//! ever written to or removed ([`dirs`]).
//!
//! # Invariants
//!
//! - Sequence numbers in a directory are consecutive from 1, across segment files.
//! - A record is reported appended only after its whole frame was written (and synced,
//!   when the policy or the append asks for it); a failed write is cut back off the file.
//! - Recovery accepts a segment's records up to the first frame that is incomplete, has a
//!   bad CRC or an unexpected sequence number; the rest of that file is cut off and
//!   counted ([`SpoolStats::corrupted_tails`]). Nothing panics on bad data.
//! - A segment file is deleted only when every record in it was acknowledged, and never
//!   while it is being written.
//! - Bytes on disk plus bytes queued for writing never exceed `max_bytes`; bytes queued
//!   for writing never exceed `buffer_bytes` (memory bound).
//! - Acknowledgements are persisted (`ACKED`) by [`Spool::maintain`]; records acknowledged
//!   after the last persist may be delivered again after a crash (at least once).

mod dirs;
pub mod format;
mod maintain;
mod source;
mod types;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::SystemTime;

use source::{Damage, Source};
pub use types::{Entry, RecordId, SpoolError, SpoolOptions, SpoolStats, SyncPolicy};
pub use writer::Done;
use writer::{Cmd, Writer};

struct State {
    orphans: Vec<(u64, Source)>,
    own: Source,
    next_source: u64,
    damage: Damage,
}

/// Shared between the handle and the writer thread.
pub(crate) struct Shared {
    opts: SpoolOptions,
    own_dir: PathBuf,
    /// Foreign directories already logged.
    reported: dirs::Reported,
    state: Mutex<State>,
    disk_bytes: AtomicU64,
    pending_bytes: AtomicU64,
    /// Appends queued for the writer.
    queued: AtomicU64,
    /// Records held in all directories and not acknowledged (read without the lock).
    pub(crate) held: AtomicU64,
    appended: AtomicU64,
    acked: AtomicU64,
    write_errors: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An open spool.
pub struct Spool {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Cmd>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

const OWN: u64 = 0;

impl Spool {
    /// Open (creating) the spool under `opts.dir`, adopting directories left by processes
    /// that are gone.
    pub fn open(opts: SpoolOptions) -> Result<Self, SpoolError> {
        dirs::prepare_root(&opts.dir)?;
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // Unique per open, also within one process and millisecond.
        static OPENS: AtomicU64 = AtomicU64::new(0);
        let n = OPENS.fetch_add(1, Ordering::Relaxed);
        let (own_dir, lock) = dirs::create_instance(
            &opts.dir,
            &format!("{millis:013}-{}-{n}", std::process::id()),
            &opts.identity,
        )?;
        let state = State {
            orphans: Vec::new(),
            own: Source::create_own(own_dir.clone(), lock),
            next_source: 1,
            damage: Damage::default(),
        };
        let shared = Arc::new(Shared {
            opts,
            own_dir,
            reported: dirs::Reported::default(),
            state: Mutex::new(state),
            disk_bytes: AtomicU64::new(0),
            pending_bytes: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            held: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let spool = Self::start(shared);
        spool.adopt_orphans()?;
        Ok(spool)
    }

    fn start(shared: Arc<Shared>) -> Self {
        let (tx, rx) = channel();
        let w = Writer::new(shared.clone(), rx);
        let handle = std::thread::Builder::new()
            .name("sluice-spool".into())
            .spawn(move || w.run())
            .ok();
        Self {
            shared,
            tx: Mutex::new(handle.is_some().then_some(tx)),
            writer: Mutex::new(handle),
        }
    }

    /// Queue a record for writing. `done` is called once it is written (and synced when
    /// `durable` or the policy says so) or the write failed. Refusals (`Full`, `Busy`,
    /// `Closed`) are returned at once and `done` is not called.
    pub fn append(
        &self,
        timestamp_ms: i64,
        payload: Vec<u8>,
        durable: bool,
        done: Done,
    ) -> Result<(), SpoolError> {
        let framed = format::framed_len(payload.len()) as u64;
        let s = &self.shared;
        if payload.len() > format::MAX_PAYLOAD {
            return Err(self.refuse(SpoolError::Full));
        }
        let pending = s.pending_bytes.fetch_add(framed, Ordering::AcqRel) + framed;
        let over = if s.disk_bytes.load(Ordering::Acquire) + pending > s.opts.max_bytes {
            Some(SpoolError::Full)
        } else if pending > s.opts.buffer_bytes {
            Some(SpoolError::Busy)
        } else {
            None
        };
        if let Some(e) = over {
            s.pending_bytes.fetch_sub(framed, Ordering::AcqRel);
            return Err(self.refuse(e));
        }
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        s.queued.fetch_add(1, Ordering::AcqRel);
        let sent = tx.as_ref().map(|tx| {
            tx.send(Cmd::Append {
                timestamp_ms,
                payload,
                durable,
                done,
            })
        });
        match sent {
            Some(Ok(())) => Ok(()),
            _ => {
                s.queued.fetch_sub(1, Ordering::AcqRel);
                s.pending_bytes.fetch_sub(framed, Ordering::AcqRel);
                Err(SpoolError::Closed)
            }
        }
    }

    fn refuse(&self, e: SpoolError) -> SpoolError {
        self.shared.refused.fetch_add(1, Ordering::Relaxed);
        e
    }

    /// Sync everything written so far; `done` reports the outcome.
    pub fn sync(&self, done: Done) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref() {
            Some(tx) => {
                if let Err(std::sync::mpsc::SendError(Cmd::Sync(done))) = tx.send(Cmd::Sync(done)) {
                    done(Err(SpoolError::Closed));
                }
            }
            None => done(Err(SpoolError::Closed)),
        }
    }

    /// The next records to replay (oldest directory first), at most `max_records` and
    /// about `max_bytes`.
    pub fn read(&self, max_records: usize, max_bytes: usize) -> Result<Vec<Entry>, SpoolError> {
        let mut st = self.shared.lock();
        let mut out = Vec::new();
        let State { orphans, own, .. } = &mut *st;
        let sources = orphans
            .iter_mut()
            .map(|(id, s)| (*id, s))
            .chain(std::iter::once((OWN, own)));
        for (id, src) in sources {
            let left = max_records - out.len();
            if left == 0 {
                break;
            }
            let taken: usize = out.iter().map(|e: &Entry| e.payload.len()).sum();
            for (seq, timestamp_ms, payload) in src.read(left, max_bytes.saturating_sub(taken))? {
                out.push(Entry {
                    id: RecordId::new(id, seq),
                    timestamp_ms,
                    payload,
                });
            }
        }
        Ok(out)
    }

    /// Mark a record delivered.
    pub fn ack(&self, id: RecordId) {
        if self.release(id) {
            self.shared.acked.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stop holding `id`; true when it was held.
    pub(crate) fn release(&self, id: RecordId) -> bool {
        let mut st = self.shared.lock();
        let src = if id.source() == OWN {
            Some(&mut st.own)
        } else {
            st.orphans
                .iter_mut()
                .find(|(i, _)| *i == id.source())
                .map(|(_, s)| s)
        };
        let released = src.is_some_and(|s| {
            let before = s.unacked;
            s.ack(id.seq);
            s.unacked < before
        });
        if released {
            self.shared.held.fetch_sub(1, Ordering::AcqRel);
        }
        released
    }

    /// Replay again from the oldest unacknowledged record (after a delivery failure).
    pub fn rewind(&self) {
        let mut st = self.shared.lock();
        for (_, s) in st.orphans.iter_mut() {
            s.rewind();
        }
        st.own.rewind();
    }

    /// Records not yet acknowledged, including those queued for writing.
    pub fn pending(&self) -> u64 {
        // No lock: every at-least-once request asks.
        self.shared.held.load(Ordering::Acquire) + self.shared.queued.load(Ordering::Acquire)
    }

    /// Current figures.
    pub fn stats(&self) -> SpoolStats {
        let st = self.shared.lock();
        let oldest = st
            .orphans
            .iter()
            .filter_map(|(_, s)| s.oldest_ts())
            .chain(st.own.oldest_ts())
            .min();
        SpoolStats {
            records: st.own.unacked + st.orphans.iter().map(|(_, s)| s.unacked).sum::<u64>(),
            bytes: self.shared.disk_bytes.load(Ordering::Acquire),
            oldest_ts: oldest,
            appended: self.shared.appended.load(Ordering::Relaxed),
            acked: self.shared.acked.load(Ordering::Relaxed),
            corrupted_tails: st.damage.tails,
            corrupted_bytes: st.damage.bytes,
            write_errors: self.shared.write_errors.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
        }
    }

    /// The directory this process writes to.
    pub fn own_dir(&self) -> &std::path::Path {
        &self.shared.own_dir
    }

    /// Stop the writer (syncing what it wrote) and persist acknowledgements.
    pub fn close(&self) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(Cmd::Stop);
        }
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        let mut st = self.shared.lock();
        let _ = st.own.compact();
        for (_, s) in st.orphans.iter_mut() {
            let _ = s.compact();
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.close();
    }
}
