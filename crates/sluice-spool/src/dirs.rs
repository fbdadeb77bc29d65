//! Which directories under the spool root are the spool's own. Sluice writes into, adopts
//! and deletes only instance directories it created: named `sluice-<ms>-<pid>-<n>`, with
//! a `SLUICE-SPOOL` marker naming the cluster they hold events for (its name and
//! bootstrap servers). A directory of another cluster, an older layout or anything else
//! is left alone and logged once. The root must not be writable by other users; instance
//! directories are created `0700`, files `0600`, and new entries are synced into their
//! directory so a power loss cannot drop a file that already holds acknowledged data.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::types::SpoolError;

/// Prefix of instance directory names.
pub const PREFIX: &str = "sluice-";
/// The marker file's name.
pub const MARKER: &str = "SLUICE-SPOOL";
const MARKER_VERSION: &str = "sluice-spool 1";

/// An I/O error naming what was done to which path.
pub(crate) fn io(e: std::io::Error, what: &str, path: &Path) -> SpoolError {
    SpoolError::Io(format!("{what} {}: {e}", path.display()))
}

/// Lock an open `LOCK` file; `None` if another process holds it.
fn try_lock(f: File, path: &Path) -> Result<Option<File>, SpoolError> {
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(io(e, "locking", path)),
    }
}

/// Take the lock of `dir` (creating its `LOCK` file); `None` if another process holds it.
pub fn lock_dir(dir: &Path) -> Result<Option<File>, SpoolError> {
    let path = dir.join("LOCK");
    let f = file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io(e, "opening", &path))?;
    try_lock(f, &path)
}

/// Take the lock of another process's `dir` (its `LOCK` file must exist: a directory
/// without one is being created or deleted); `None` if it is held or missing.
pub fn lock_existing(dir: &Path) -> Result<Option<File>, SpoolError> {
    let path = dir.join("LOCK");
    match OpenOptions::new().write(true).open(&path) {
        Ok(f) => try_lock(f, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e, "opening", &path)),
    }
}

/// Open options for a spool file: created `0600`.
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

/// Sync `dir` itself, so entries created or removed in it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(e, "syncing directory", dir))
}

/// Create the root if missing (`0700`) and check that nobody else can write into it.
pub fn prepare_root(root: &Path) -> Result<(), SpoolError> {
    if !root.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| io(e, "creating", root))?;
        if let Some(parent) = root.parent() {
            let _ = sync_dir(parent);
        }
    }
    let md = fs::metadata(root).map_err(|e| io(e, "reading", root))?;
    let mode = md.permissions().mode();
    // This process's user: the owner of its /proc entry.
    let me = fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(md.uid());
    if md.uid() != me || mode & 0o022 != 0 {
        return Err(SpoolError::Io(format!(
            "{} must be owned by this user and writable by nobody else (owner uid {}, mode {:o}): another user could plant or remove spool files",
            root.display(),
            md.uid(),
            mode & 0o7777
        )));
    }
    Ok(())
}

/// The marker text for a cluster identity.
fn marker_text(identity: &str) -> String {
    format!("{MARKER_VERSION}\n{identity}\n")
}

/// Prefix of an instance directory being created (skipped silently by adoption).
const CREATING: &str = ".sluice-new-";

/// Create this process's instance directory `root/sluice-<name>`, marked and locked: it
/// is built under a temporary name, locked, marked and synced, then renamed into place,
/// so another spool never sees it unlocked or without its marker.
pub fn create_instance(
    root: &Path,
    name: &str,
    identity: &str,
) -> Result<(PathBuf, File), SpoolError> {
    let tmp = root.join(format!("{CREATING}{name}"));
    DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| io(e, "creating", &tmp))?;
    let lock =
        lock_dir(&tmp)?.ok_or_else(|| SpoolError::Io(format!("{} is locked", tmp.display())))?;
    let path = tmp.join(MARKER);
    let mut f = file_options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io(e, "creating", &path))?;
    f.write_all(marker_text(identity).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| io(e, "writing", &path))?;
    sync_dir(&tmp)?;
    let dir = root.join(format!("{PREFIX}{name}"));
    fs::rename(&tmp, &dir).map_err(|e| io(e, "renaming", &tmp))?;
    sync_dir(root)?;
    Ok((dir, lock))
}

/// Before deleting a drained instance directory: remove its marker (synced), so a spool
/// that lists the root meanwhile leaves it alone instead of adopting it.
pub fn unmark(dir: &Path) {
    if fs::remove_file(dir.join(MARKER)).is_ok() {
        let _ = sync_dir(dir);
    }
}

/// What a directory under the root is, for this spool.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// An instance directory of this cluster: may be adopted.
    Ours,
    /// Being created by a spool: skipped silently.
    Busy,
    /// Not to be touched, with the reason to log.
    Foreign(String),
}

/// Classify `dir` (never writes to it).
pub fn classify(dir: &Path, identity: &str) -> Kind {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with(CREATING) {
        return Kind::Busy;
    }
    let legacy = name.len() > 14
        && name.as_bytes()[..13].iter().all(u8::is_ascii_digit)
        && name.as_bytes()[13] == b'-';
    if !name.starts_with(PREFIX) {
        let why = if legacy && dir.join("LOCK").exists() {
            "written by an earlier Sluice without a cluster marker: not replayed (to replay it, move it under a Sluice that writes the same cluster and add a SLUICE-SPOOL marker, see the README)"
        } else {
            "not a Sluice spool directory"
        };
        return Kind::Foreign(why.into());
    }
    match fs::read_to_string(dir.join(MARKER)) {
        Ok(text) if text == marker_text(identity) => Kind::Ours,
        Ok(text) => Kind::Foreign(format!(
            "it holds events of another cluster ({})",
            text.lines().skip(1).collect::<Vec<_>>().join(", ")
        )),
        Err(_) => Kind::Foreign("no SLUICE-SPOOL marker".into()),
    }
}

/// Directories already reported as foreign (each is logged once).
#[derive(Default)]
pub struct Reported(Mutex<HashSet<PathBuf>>);

impl Reported {
    /// Log `why` for `dir` unless it was logged before.
    pub fn once(&self, dir: &Path, why: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.insert(dir.to_path_buf()) {
            log::warn!("spool: leaving {} alone: {why}", dir.display());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sluice-dirs-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        prepare_root(&d).unwrap();
        d
    }

    #[test]
    fn only_marked_directories_of_the_same_cluster_are_ours() {
        let root = scratch("classify");
        let prod = "cluster prod\nbrokers a:9092";
        let (dir, _lock) = create_instance(&root, "1-2-3", prod).unwrap();
        assert_eq!(classify(&dir, prod), Kind::Ours);
        assert!(
            matches!(classify(&dir, "cluster staging\nbrokers b:9092"), Kind::Foreign(w) if w.contains("another cluster"))
        );
        let keep = root.join("keep-me");
        fs::create_dir_all(keep.join("sub")).unwrap();
        assert!(matches!(classify(&keep, prod), Kind::Foreign(_)));
        let fake = root.join("sluice-fake");
        fs::create_dir_all(&fake).unwrap();
        assert!(matches!(classify(&fake, prod), Kind::Foreign(w) if w.contains("marker")));
        let md = fs::metadata(&dir).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o700);
        let marker = fs::metadata(dir.join(MARKER)).unwrap();
        assert_eq!(marker.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_root_others_can_write_is_refused() {
        let root = scratch("perm");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare_root(&root).unwrap_err();
        assert!(e.to_string().contains("writable by nobody else"), "{e}");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o750)).unwrap();
        prepare_root(&root).unwrap();
    }
}
