//! What a witness holds per log: the size, root and note of the checkpoint it last cosigned,
//! in one SQLite file (WAL, `synchronous = FULL`). It changes only through
//! [`State::advance`], one `BEGIN IMMEDIATE` transaction that checks and writes and is on
//! disk before it returns: two requests at the same moment (from two hub replicas, or two
//! witness processes on one file) are serialised, and a kill -9 loses nothing answered.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{checkpoint::Checkpoint, merkle::Hash};

/// The checkpoint a witness last cosigned for one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Its tree size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// The checkpoint with the witness's cosignature, as a signed note.
    pub checkpoint: String,
}

/// Why the state did not advance.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The caller's old size is not the size held: it must retry from `held`.
    #[error("the witness holds size {held}")]
    Stale {
        /// The size held (0 for a log never cosigned).
        held: u64,
    },
    /// The new checkpoint does not extend the one held.
    #[error("{0}")]
    Inconsistent(String),
    /// The state file failed, or holds what it cannot.
    #[error("witness state: {0}")]
    Store(String),
}

fn failed(e: rusqlite::Error) -> StateError {
    StateError::Store(e.to_string())
}

/// The witness's state file.
pub struct State {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl State {
    /// Opens (creating if needed) the state file at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let conn = Connection::open(path)
            .map_err(|e| StateError::Store(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(failed)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(failed)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS held (
                origin     TEXT PRIMARY KEY,
                size       INTEGER NOT NULL CHECK (size >= 0),
                root       BLOB    NOT NULL CHECK (length(root) = 32),
                checkpoint TEXT    NOT NULL
            )",
        )
        .map_err(failed)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is held for `origin`, if it was ever cosigned.
    pub fn held(&self, origin: &str) -> Result<Option<Held>, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        read(&conn, origin)
    }

    /// Holds `new` (whose cosigned note is `cosigned`) instead of what is held for its origin,
    /// if the caller's `old` size is the size held and `check` accepts the step from what is
    /// held to `new`. Checked and written in one durable transaction.
    pub fn advance(
        &self,
        new: &Checkpoint,
        old: u64,
        cosigned: &str,
        check: impl FnOnce(Option<&Held>) -> Result<(), String>,
    ) -> Result<(), StateError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        let held = read(&tx, &new.origin)?;
        let held_size = held.as_ref().map_or(0, |h| h.size);
        if old != held_size {
            return Err(StateError::Stale { held: held_size });
        }
        check(held.as_ref()).map_err(StateError::Inconsistent)?;
        let size = i64::try_from(new.size)
            .map_err(|_| StateError::Store(format!("size {} is out of range", new.size)))?;
        tx.execute(
            "INSERT INTO held (origin, size, root, checkpoint) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (origin) DO UPDATE SET size = ?2, root = ?3, checkpoint = ?4",
            params![new.origin, size, &new.root.as_bytes()[..], cosigned],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)
    }
}

fn read(conn: &Connection, origin: &str) -> Result<Option<Held>, StateError> {
    let row: Option<(i64, Vec<u8>, String)> = conn
        .query_row(
            "SELECT size, root, checkpoint FROM held WHERE origin = ?1",
            [origin],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(failed)?;
    row.map(|(size, root, checkpoint)| {
        Ok(Held {
            size: u64::try_from(size)
                .map_err(|_| StateError::Store(format!("size {size} held for {origin}")))?,
            root: Hash::from_bytes(&root).ok_or_else(|| {
                StateError::Store(format!("a root of the wrong length for {origin}"))
            })?,
            checkpoint,
        })
    })
    .transpose()
}
