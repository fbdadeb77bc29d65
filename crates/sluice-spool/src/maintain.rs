//! Keeping the spool in shape: adopting instance directories of this cluster left by
//! processes that are gone, deleting delivered segments and drained directories,
//! persisting acknowledgements, and setting aside records Kafka will never take (a
//! quarantine file beside the instance directories).

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::dirs;
use crate::dirs::lock_existing;
use crate::source::{Damage, Source};
use crate::{Entry, Spool, SpoolError};

impl Spool {
    /// Recover every other instance directory of this cluster whose lock is free. The
    /// directories are read without holding the state lock, so appends, acknowledgements
    /// and `pending()` are not held up by a large orphan.
    pub(crate) fn adopt_orphans(&self) -> Result<(), SpoolError> {
        let root = &self.shared.opts.dir;
        let mut found: Vec<PathBuf> = fs::read_dir(root)
            .map_err(|e| SpoolError::Io(format!("reading {}: {e}", root.display())))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir() && *p != self.shared.own_dir)
            .collect();
        found.sort();
        let known: Vec<PathBuf> = {
            let st = self.shared.lock();
            st.orphans.iter().map(|(_, s)| s.dir.clone()).collect()
        };
        for dir in found {
            if known.contains(&dir) {
                continue;
            }
            match dirs::classify(&dir, &self.shared.opts.identity) {
                dirs::Kind::Ours => {}
                dirs::Kind::Busy => continue,
                dirs::Kind::Foreign(why) => {
                    self.shared.reported.once(&dir, &why);
                    continue;
                }
            }
            let Some(lock) = lock_existing(&dir)? else {
                continue;
            };
            // Still ours once locked (not unmarked for deletion meanwhile)?
            if dirs::classify(&dir, &self.shared.opts.identity) != dirs::Kind::Ours {
                continue;
            }
            let mut damage = Damage::default();
            let src = Source::recover(dir.clone(), lock, &mut damage)?;
            if src.drained() {
                dirs::unmark(&dir);
                let _ = fs::remove_dir_all(&dir);
            } else {
                log::info!(
                    "spool: replaying {} records left in {}",
                    src.unacked,
                    dir.display()
                );
            }
            let mut st = self.shared.lock();
            st.damage.tails += damage.tails;
            st.damage.bytes += damage.bytes;
            if src.drained() {
                continue;
            }
            self.shared
                .disk_bytes
                .fetch_add(src.bytes(), Ordering::AcqRel);
            self.shared.held.fetch_add(src.unacked, Ordering::AcqRel);
            let id = st.next_source;
            st.next_source += 1;
            st.orphans.push((id, src));
        }
        Ok(())
    }

    /// Delete delivered segments and drained directories, persist acknowledgements, and
    /// adopt directories of processes that have gone since.
    pub fn maintain(&self) -> Result<(), SpoolError> {
        let mut first_error = None;
        {
            let mut st = self.shared.lock();
            let (mut freed_total, r) = st.own.compact();
            first_error = first_error.or(r.err());
            let mut keep = Vec::new();
            for (id, mut s) in std::mem::take(&mut st.orphans) {
                let (freed, r) = s.compact();
                freed_total += freed;
                first_error = first_error.or(r.err());
                if s.drained() {
                    freed_total += s.bytes();
                    dirs::unmark(&s.dir);
                    let _ = fs::remove_dir_all(&s.dir);
                    log::info!("spool: {} drained and removed", s.dir.display());
                } else {
                    keep.push((id, s));
                }
            }
            st.orphans = keep;
            // What was deleted is no longer on disk, whatever failed after it.
            self.shared
                .disk_bytes
                .fetch_sub(freed_total, Ordering::AcqRel);
        }
        self.adopt_orphans()?;
        first_error.map_or(Ok(()), Err)
    }

    /// Set aside a record Kafka will never take: append it (framed as in a segment) to
    /// `<dir>/sluice-quarantine-<label>.seg` (0600), sync the file and its directory entry,
    /// then stop holding it without counting it delivered. Returns the file's path.
    pub fn set_aside(&self, entry: &Entry, label: &str) -> Result<PathBuf, SpoolError> {
        let path = self
            .shared
            .opts
            .dir
            .join(format!("sluice-quarantine-{label}.seg"));
        let mut frame = Vec::with_capacity(entry.payload.len() + 32);
        crate::format::encode(entry.id.seq, entry.timestamp_ms, &entry.payload, &mut frame);
        let io = |e: std::io::Error| SpoolError::Io(format!("writing {}: {e}", path.display()));
        let mut f = dirs::file_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        f.write_all(&frame).and_then(|_| f.sync_all()).map_err(io)?;
        dirs::sync_dir(&self.shared.opts.dir)?;
        self.release(entry.id);
        Ok(path)
    }
}
