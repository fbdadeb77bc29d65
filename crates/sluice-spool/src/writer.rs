//! The writer thread: it owns the active segment file, frames queued appends in batches,
//! writes each batch with one `write`, syncs it as the policy says (every batch, on an
//! interval, or when an append asked to be durable), publishes the new records to
//! readers, then reports to every append. One fsync covers all appends of a batch
//! (group commit).

use std::fs::File;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::format::encode;
use crate::source::{segment_name, Segment};
use crate::{Shared, SpoolError, SyncPolicy};

/// Called once per append with its outcome.
pub type Done = Box<dyn FnOnce(Result<(), SpoolError>) + Send>;

/// What the writer is asked to do.
pub enum Cmd {
    /// Write a record.
    Append {
        /// Record timestamp.
        timestamp_ms: i64,
        /// Record payload.
        payload: Vec<u8>,
        /// Sync before reporting, whatever the policy.
        durable: bool,
        /// The report.
        done: Done,
    },
    /// Sync what was written, then report.
    Sync(Done),
    /// Sync and stop.
    Stop,
}

/// Most appends framed into one write.
const BATCH: usize = 1024;

pub struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Cmd>,
    file: Option<File>,
    seg_first: u64,
    seg_len: u64,
    next_seq: u64,
    dirty: bool,
    last_sync: Instant,
}

impl Writer {
    pub fn new(shared: Arc<Shared>, rx: Receiver<Cmd>) -> Self {
        Self {
            shared,
            rx,
            file: None,
            seg_first: 1,
            seg_len: 0,
            next_seq: 1,
            dirty: false,
            last_sync: Instant::now(),
        }
    }

    pub fn run(mut self) {
        let mut stop = false;
        while !stop {
            let wait = match self.shared.opts.sync {
                SyncPolicy::Interval(i) if self.dirty => i.saturating_sub(self.last_sync.elapsed()),
                _ => Duration::from_secs(1),
            };
            let mut batch = Vec::new();
            match self.rx.recv_timeout(wait) {
                Ok(c) => batch.push(c),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            while batch.len() < BATCH {
                match self.rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            stop |= batch.iter().any(|c| matches!(c, Cmd::Stop));
            self.process(batch, stop);
        }
    }

    fn process(&mut self, batch: Vec<Cmd>, stopping: bool) {
        let mut buf = Vec::new();
        let mut appended: Vec<(u64, usize, Done)> = Vec::new();
        let mut syncs: Vec<Done> = Vec::new();
        let mut force_sync = stopping;
        let mut first_ts = None;
        for cmd in batch {
            match cmd {
                Cmd::Append {
                    timestamp_ms,
                    payload,
                    durable,
                    done,
                } => {
                    let start = buf.len();
                    encode(
                        self.next_seq + appended.len() as u64,
                        timestamp_ms,
                        &payload,
                        &mut buf,
                    );
                    first_ts.get_or_insert(timestamp_ms);
                    force_sync |= durable;
                    appended.push((
                        self.next_seq + appended.len() as u64,
                        buf.len() - start,
                        done,
                    ));
                }
                Cmd::Sync(done) => {
                    force_sync = true;
                    syncs.push(done);
                }
                Cmd::Stop => {}
            }
        }
        let framed: u64 = appended.iter().map(|(_, n, _)| *n as u64).sum();
        let result = self.write(&buf, first_ts, appended.len() as u64, force_sync);
        self.shared
            .pending_bytes
            .fetch_sub(framed, Ordering::AcqRel);
        self.shared
            .queued
            .fetch_sub(appended.len() as u64, Ordering::AcqRel);
        match &result {
            Ok(()) => {
                self.shared.disk_bytes.fetch_add(framed, Ordering::AcqRel);
                self.shared
                    .appended
                    .fetch_add(appended.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                log::error!("spool: writing {} records failed: {e}", appended.len());
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        for (_, _, done) in appended {
            done(result.clone());
        }
        for done in syncs {
            done(result.clone());
        }
    }

    /// Write `buf` (holding `count` records) to the active segment and sync if needed;
    /// on failure the segment is cut back so no partial record stays.
    fn write(
        &mut self,
        buf: &[u8],
        first_ts: Option<i64>,
        count: u64,
        force_sync: bool,
    ) -> Result<(), SpoolError> {
        if count > 0 {
            self.roll_if_needed()?;
            let Some(f) = self.file.as_mut() else {
                return Err(SpoolError::Io("no active segment".into()));
            };
            if let Err(e) = f.write_all(buf) {
                let _ = f.set_len(self.seg_len);
                return Err(SpoolError::Io(format!("writing the spool: {e}")));
            }
            self.dirty = true;
        }
        let due = match self.shared.opts.sync {
            SyncPolicy::Batch => true,
            SyncPolicy::Interval(i) => self.last_sync.elapsed() >= i,
        };
        if self.dirty && (force_sync || due) {
            if let Some(f) = self.file.as_mut() {
                if let Err(e) = f.sync_data() {
                    let _ = f.set_len(self.seg_len);
                    return Err(SpoolError::Io(format!("syncing the spool: {e}")));
                }
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        if count > 0 {
            self.seg_len += buf.len() as u64;
            let last = self.next_seq + count - 1;
            self.next_seq += count;
            let mut st = self.shared.lock();
            let own = &mut st.own;
            match own.segments.back_mut() {
                Some(seg) if seg.first_seq == self.seg_first => {
                    seg.last_seq = last;
                    seg.bytes = self.seg_len;
                    seg.first_ts = seg.first_ts.or(first_ts);
                }
                _ => own.segments.push_back(Segment {
                    path: own.dir.join(segment_name(self.seg_first)),
                    first_seq: self.seg_first,
                    last_seq: last,
                    bytes: self.seg_len,
                    first_ts,
                }),
            }
            own.unacked += count;
            own.readable_upto = last;
            self.shared
                .held
                .fetch_add(count, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(())
    }

    fn roll_if_needed(&mut self) -> Result<(), SpoolError> {
        if self.file.is_some() && self.seg_len < self.shared.opts.segment_bytes {
            return Ok(());
        }
        if let Some(f) = self.file.as_mut() {
            f.sync_data()
                .map_err(|e| SpoolError::Io(format!("syncing the spool: {e}")))?;
        }
        self.seg_first = self.next_seq;
        let path = self.shared.own_dir.join(segment_name(self.seg_first));
        let f = crate::dirs::file_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| SpoolError::Io(format!("creating {}: {e}", path.display())))?;
        // The new file's directory entry must be durable before records in it are
        // reported synced.
        crate::dirs::sync_dir(&self.shared.own_dir)?;
        self.file = Some(f);
        self.seg_len = 0;
        Ok(())
    }
}
