//! One spool directory: its segment files, recovery after a crash, the replay cursor and
//! the acknowledgements.
//!
//! A directory belongs to one Sluice process at a time (an exclusive lock on its `LOCK`
//! file). The running process writes only to its own directory; directories whose lock
//! can be taken were left by a process that is gone (crash, `kill -9`, or the old side of
//! a graceful upgrade) and are replayed and removed by whoever takes the lock.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::dirs::io;
use crate::format::{decode, Decoded};
use crate::SpoolError;

/// Segment file name for the segment starting at `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// What is known of one segment file.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// Sequence number of its first record.
    pub first_seq: u64,
    /// Sequence number of its last record (`first_seq - 1` when empty).
    pub last_seq: u64,
    /// Valid bytes (the file is truncated to this on recovery).
    pub bytes: u64,
    /// Timestamp of its first record.
    pub first_ts: Option<i64>,
}

/// Where replay continues.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The segment (by first seq).
    segment: u64,
    /// Byte offset in it.
    offset: u64,
}

/// What recovery found wrong.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Corrupted or torn tails cut off.
    pub tails: u64,
    /// Bytes cut off.
    pub bytes: u64,
}

/// A spool directory.
pub struct Source {
    /// The directory.
    pub dir: PathBuf,
    /// Written by this process.
    pub own: bool,
    _lock: File,
    /// Segments, oldest first.
    pub segments: VecDeque<Segment>,
    /// Every seq up to this one is acknowledged.
    watermark: u64,
    persisted: u64,
    persisted_above: usize,
    acked_above: BTreeSet<u64>,
    cursor: Cursor,
    /// Records written (or recovered) and not acknowledged.
    pub unacked: u64,
    /// Highest seq a reader may read (own source: what the writer completed).
    pub readable_upto: u64,
}

impl Source {
    /// An empty directory for this process's own records.
    pub fn create_own(dir: PathBuf, lock: File) -> Self {
        Self {
            dir,
            own: true,
            _lock: lock,
            segments: VecDeque::new(),
            watermark: 0,
            persisted: 0,
            persisted_above: 0,
            acked_above: BTreeSet::new(),
            cursor: Cursor {
                segment: 1,
                offset: 0,
            },
            unacked: 0,
            readable_upto: 0,
        }
    }

    /// Recover a directory left by another process: read every segment, cut corrupted
    /// tails, drop what was acknowledged.
    pub fn recover(dir: PathBuf, lock: File, damage: &mut Damage) -> Result<Self, SpoolError> {
        let (watermark, acked_above) = read_acked(&dir);
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(&dir)
            .map_err(|e| io(e, "reading", &dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let n = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse::<u64>()
                    .ok()?;
                Some((n, p))
            })
            .collect();
        names.sort();
        let mut segments = VecDeque::new();
        let mut unacked = 0;
        let mut last = 0;
        for (first_seq, path) in names {
            let seg = scan_segment(&path, first_seq, damage)?;
            if seg.last_seq < seg.first_seq || seg.last_seq <= watermark {
                let _ = fs::remove_file(&seg.path);
                continue;
            }
            let from = seg.first_seq.max(watermark + 1);
            let acked_here = acked_above.range(from..=seg.last_seq).count() as u64;
            unacked += seg.last_seq - from + 1 - acked_here;
            last = seg.last_seq;
            segments.push_back(seg);
        }
        let cursor = Cursor {
            segment: segments.front().map_or(1, |s| s.first_seq),
            offset: 0,
        };
        Ok(Self {
            dir,
            own: false,
            _lock: lock,
            segments,
            watermark,
            persisted: watermark,
            persisted_above: acked_above.len(),
            acked_above,
            cursor,
            unacked,
            readable_upto: last,
        })
    }

    /// Read up to `max_records` records (and about `max_bytes`) from the cursor on,
    /// skipping acknowledged ones. Returns (seq, timestamp, payload).
    pub fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, i64, Vec<u8>)>, SpoolError> {
        let mut out = Vec::new();
        let mut taken = 0usize;
        while out.len() < max_records && taken < max_bytes {
            let Some(seg) = self
                .segments
                .iter()
                .find(|s| s.first_seq >= self.cursor.segment)
                .cloned()
            else {
                break;
            };
            if seg.first_seq != self.cursor.segment {
                self.cursor = Cursor {
                    segment: seg.first_seq,
                    offset: 0,
                };
            }
            if self.cursor.offset >= seg.bytes {
                // At the end of this segment: on to the next, if there is one.
                match self.segments.iter().find(|s| s.first_seq > seg.first_seq) {
                    Some(next) => {
                        self.cursor = Cursor {
                            segment: next.first_seq,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            let remaining = seg.bytes - self.cursor.offset;
            let mut want = remaining.min((max_bytes - taken).max(64 * 1024) as u64);
            let buf = loop {
                let buf = read_at(&seg.path, self.cursor.offset, want)?;
                // A record longer than this read: read it whole.
                if matches!(decode(&buf), Decoded::Incomplete) && want < remaining {
                    want = remaining;
                    continue;
                }
                break buf;
            };
            let mut at = 0;
            let mut progressed = false;
            while out.len() < max_records {
                match decode(&buf[at..]) {
                    Decoded::Record {
                        seq,
                        timestamp_ms,
                        payload,
                        len,
                    } => {
                        if seq > self.readable_upto {
                            break;
                        }
                        at += len;
                        progressed = true;
                        if seq > self.watermark && !self.acked_above.contains(&seq) {
                            taken += len;
                            out.push((seq, timestamp_ms, payload.to_vec()));
                        }
                    }
                    Decoded::Incomplete | Decoded::Corrupt => break,
                }
            }
            self.cursor.offset += at as u64;
            if !progressed {
                break;
            }
        }
        Ok(out)
    }

    /// Mark `seq` delivered.
    pub fn ack(&mut self, seq: u64) {
        if seq <= self.watermark || !self.acked_above.insert(seq) {
            return;
        }
        self.unacked = self.unacked.saturating_sub(1);
        while self.acked_above.remove(&(self.watermark + 1)) {
            self.watermark += 1;
        }
    }

    /// Replay again from the oldest unacknowledged record.
    pub fn rewind(&mut self) {
        let first = self
            .segments
            .iter()
            .find(|s| s.last_seq > self.watermark)
            .map_or(self.cursor.segment, |s| s.first_seq);
        self.cursor = Cursor {
            segment: first,
            offset: 0,
        };
    }

    /// Delete fully acknowledged segments (never the one being written) and persist the
    /// watermark. Returns the bytes freed, also when a later step failed (so the spool's
    /// byte count stays true), and the first error.
    pub fn compact(&mut self) -> (u64, Result<(), SpoolError>) {
        let mut freed = 0;
        let keep_last = usize::from(self.own);
        while self.segments.len() > keep_last {
            let Some(first) = self.segments.front() else {
                break;
            };
            if first.last_seq > self.watermark {
                break;
            }
            if let Err(e) = fs::remove_file(&first.path) {
                return (freed, Err(io(e, "removing", &first.path)));
            }
            freed += first.bytes;
            self.segments.pop_front();
        }
        (freed, self.persist_acked())
    }

    /// Write `ACKED` when acknowledgements changed since the last write.
    fn persist_acked(&mut self) -> Result<(), SpoolError> {
        if self.watermark == self.persisted && self.acked_above.len() == self.persisted_above {
            return Ok(());
        }
        // Line 1: the watermark; line 2: acknowledged seqs above it (out of order).
        let mut text = format!("{}\n", self.watermark);
        for seq in &self.acked_above {
            text.push_str(&seq.to_string());
            text.push(' ');
        }
        let tmp = self.dir.join("ACKED.tmp");
        let mut f = crate::dirs::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io(e, "writing", &tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| io(e, "writing", &tmp))?;
        fs::rename(&tmp, self.dir.join("ACKED")).map_err(|e| io(e, "renaming", &tmp))?;
        self.persisted = self.watermark;
        self.persisted_above = self.acked_above.len();
        Ok(())
    }

    /// True when nothing is left to deliver.
    pub fn drained(&self) -> bool {
        self.unacked == 0
    }

    /// Bytes of all segments.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Timestamp of the oldest record still held.
    pub fn oldest_ts(&self) -> Option<i64> {
        self.segments
            .iter()
            .find(|s| s.last_seq > self.watermark)
            .and_then(|s| s.first_ts)
    }
}

/// The persisted acknowledgements of a directory: watermark and the seqs above it.
fn read_acked(dir: &Path) -> (u64, BTreeSet<u64>) {
    let text = fs::read_to_string(dir.join("ACKED")).unwrap_or_default();
    let mut lines = text.lines();
    let watermark = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let above = lines
        .next()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|s| s.parse().ok())
                .filter(|s| *s > watermark)
                .collect()
        })
        .unwrap_or_default();
    (watermark, above)
}

fn read_at(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, SpoolError> {
    let mut buf = vec![0u8; len as usize];
    let mut f = File::open(path).map_err(|e| io(e, "opening", path))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| io(e, "seeking", path))?;
    f.read_exact(&mut buf).map_err(|e| io(e, "reading", path))?;
    Ok(buf)
}

/// Read a segment, validating every record; cut the file at the first invalid one.
fn scan_segment(path: &Path, first_seq: u64, damage: &mut Damage) -> Result<Segment, SpoolError> {
    let data = fs::read(path).map_err(|e| io(e, "reading", path))?;
    let mut at = 0;
    let mut expect = first_seq;
    let mut first_ts = None;
    while at < data.len() {
        match decode(&data[at..]) {
            Decoded::Record {
                seq,
                timestamp_ms,
                len,
                ..
            } if seq == expect => {
                first_ts.get_or_insert(timestamp_ms);
                at += len;
                expect += 1;
            }
            _ => break,
        }
    }
    if at < data.len() {
        let cut = (data.len() - at) as u64;
        log::warn!(
            "spool: {}: cutting a corrupted or torn tail of {cut} bytes after {} valid records",
            path.display(),
            expect - first_seq
        );
        damage.tails += 1;
        damage.bytes += cut;
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io(e, "opening", path))?;
        f.set_len(at as u64)
            .and_then(|_| f.sync_data())
            .map_err(|e| io(e, "truncating", path))?;
    }
    Ok(Segment {
        path: path.to_path_buf(),
        first_seq,
        last_seq: expect - 1,
        bytes: at as u64,
        first_ts,
    })
}
