//! The checkpoint the gateway last published, kept outside the store.

use std::sync::Arc;

/// The latest checkpoint the gateway signed, kept outside the store (`<data_dir>/checkpoint`)
/// so that a store restored from an older backup, or replaced, cannot make the gateway sign a
/// checkpoint inconsistent with one it already published.
///
/// Clones share one lock: the ledger and administrative appends write the file one at a time,
/// and a recorded checkpoint never replaces a larger one.
#[derive(Clone, Debug)]
pub struct Published {
    /// The file.
    path: std::path::PathBuf,
    /// The size of the checkpoint last written by this process.
    written: Arc<std::sync::Mutex<u64>>,
}

impl Published {
    /// The published checkpoint kept at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            path: path.into(),
            written: Arc::default(),
        }
    }

    /// The checkpoint last recorded, if any.
    pub(super) fn read(&self) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(&self.path) {
            Ok(note) => Ok(Some(note)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records the checkpoint (tree size, note) of a committed batch, if the log grew.
    pub(crate) fn record_committed(&self, checkpoint: Option<&(u64, String)>) {
        if let Some((size, note)) = checkpoint {
            self.record(*size, note);
        }
    }

    /// Records a newly committed checkpoint of tree size `size`, durably, before its receipts
    /// go out; unless a larger one was recorded meanwhile.
    pub(crate) fn record(&self, size: u64, note: &str) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if size <= *written {
            return;
        }
        match self.replace(note) {
            Ok(()) => *written = size,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot record the published checkpoint")
            }
        }
    }

    /// Makes `note` (of tree size `size`) the published checkpoint, even if smaller than the
    /// one there: at start, once the store has been checked against it.
    pub(super) fn write(&self, size: u64, note: &str) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        self.replace(note)?;
        *written = size;
        Ok(())
    }

    /// Replaces the file atomically and durably: a crash leaves the old note or the new one.
    fn replace(&self, note: &str) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(note.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Where it is kept.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::Published;

    #[test]
    fn published_checkpoint_never_goes_back_and_writes_never_interleave() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("checkpoint");
        let published = Published::new(&path);
        let note = |size: u64| format!("origin\n{size}\n{}\n", "r".repeat(4096));

        // Writers racing from several threads (the ledger and administrative appends).
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let published = published.clone();
                scope.spawn(move || {
                    for k in 0..25 {
                        let size = 1 + k * 4 + t;
                        published.record(size, &note(size));
                    }
                });
            }
        });
        let read = || std::fs::read_to_string(&path).expect("published checkpoint");
        assert_eq!(read(), note(100), "the largest checkpoint, whole");

        published.record(7, &note(7));
        assert_eq!(read(), note(100), "a smaller checkpoint is not recorded");

        // At start, the store's checkpoint is written as it is, after the checks.
        published.write(7, &note(7)).expect("written");
        assert_eq!(read(), note(7));
        published.record(8, &note(8));
        assert_eq!(read(), note(8));
        assert!(!path.with_extension("tmp").exists());
    }
}
