//! The embedded SQLite store: one file, WAL, `synchronous = FULL` so that a commit is on disk
//! before it returns, and `BEGIN IMMEDIATE` write transactions so writers never deadlock.
//!
//! SQLite calls block, so they run on tokio's blocking pool: one writer connection (a batch
//! holds it for its whole transaction) and a few reader connections, which WAL lets read while
//! the writer writes. Statements are prepared once per connection and cached. Closing waits
//! for the reads under way (one whose caller went away runs to its end), then closes every
//! connection, the writer last, which folds the WAL into the database file.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock},
    time::Duration,
};

use async_trait::async_trait;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, params, params_from_iter,
    types::{ToSqlOutput, Value, ValueRef},
};
use time::{Date, format_description::BorrowedFormatItem, macros::format_description};
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore};

use super::{
    AccessRecord, AccessTrail, Cosignature, Cosignatures, Exports, IndexedSubmission, LIST_PAGE,
    ListFilter, LogAppend, LogRecords, LogTx, PoolState, RoundRecord, SeriesKey, SignedAt,
    StatisticsFeed, Store, StoreError, StoredCheckpoint, StoredSubmission, SubmissionRecord,
    SubmissionSummary, Submissions, WitnessState, WitnessedAt, WriteTx,
    rows::{
        self, ACCESS_COLUMNS, CHECKPOINT_COLUMNS, COSIGNATURE_COLUMNS, EXPORT_COLUMNS,
        INDEXED_COLUMNS, OBSERVATION_COLUMNS, STORED_COLUMNS, SUMMARY_COLUMNS,
        WITNESS_STATE_COLUMNS,
    },
};
use crate::{
    merkle::{Hash, NodeId, Nodes},
    schema::ValidObservation,
};

/// Migrations, applied in order, each once: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "submissions",
        include_str!("migrations/sqlite/0001_submissions.sql"),
    ),
    (
        2,
        "transparency log",
        include_str!("migrations/sqlite/0002_transparency_log.sql"),
    ),
    (
        3,
        "access trail",
        include_str!("migrations/sqlite/0003_access_trail.sql"),
    ),
    (
        4,
        "listing indexes",
        include_str!("migrations/sqlite/0004_listing_indexes.sql"),
    ),
    (
        5,
        "cosignatures",
        include_str!("migrations/sqlite/0005_cosignatures.sql"),
    ),
    (
        6,
        "witnessed checkpoints",
        include_str!("migrations/sqlite/0006_witnessed.sql"),
    ),
];

const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

/// Reader connections; WAL readers never block the writer or each other.
const READERS: usize = 4;

/// How long a statement waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    path: Arc<PathBuf>,
    /// `None` once the store is closed.
    writer: Arc<Mutex<Option<Connection>>>,
    readers: Arc<Readers>,
}

/// Idle reader connections; the semaphore counts connections that may still be opened or
/// taken, so at most [`READERS`] exist. A read holds its permit until its connection is back,
/// even if its caller went away meanwhile; closing the semaphore closes the store to reads.
struct Readers {
    idle: std::sync::Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{
        CannotOpen, ConstraintViolation, DatabaseBusy, DatabaseLocked, DiskFull, SystemIoFailure,
    };
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure | DiskFull) => {
            StoreError::Unavailable(e.to_string())
        }
        Some(ConstraintViolation) => StoreError::Conflict(e.to_string()),
        _ => StoreError::Failed(e.to_string()),
    }
}

fn joined(e: tokio::task::JoinError) -> StoreError {
    StoreError::Failed(format!("database task failed: {e}"))
}

fn open_connection(path: &Path, reader: bool) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(classify)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(classify)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(classify)?;
    if reader {
        conn.pragma_update(None, "query_only", "ON")
            .map_err(classify)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let opened = path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut conn = open_connection(&opened, false)?;
            migrate(&mut conn)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(joined)??;
        Ok(Self {
            path: Arc::new(path),
            writer: Arc::new(Mutex::new(Some(writer))),
            readers: Arc::new(Readers {
                idle: std::sync::Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(READERS)),
            }),
        })
    }

    /// Opens a database named by a `sqlite://PATH` URL.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| StoreError::Refused(format!("\"{url}\" is not a sqlite://PATH URL")))?;
        Self::open(Path::new(path)).await
    }

    /// Runs `f` on a reader connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let idle = self
            .readers
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let (path, readers) = (self.path.clone(), self.readers.clone());
        tokio::task::spawn_blocking(move || {
            let conn = match idle {
                Some(conn) => conn,
                None => open_connection(&path, true)?,
            };
            let result = f(&conn);
            readers
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(joined)?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(classify)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(classify)?;
    let applied: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(classify)?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > newest {
        return Err(StoreError::Refused(format!(
            "the database is at schema version {applied}, newer than this gateway knows ({newest}); upgrade the gateway"
        )));
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        tx.execute_batch(sql).map_err(classify)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
            params![version, name],
        )
        .map_err(classify)?;
    }
    tx.commit().map_err(classify)
}

fn node_query(conn: &Connection, ids: &[NodeId]) -> Result<Nodes, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT hash FROM log_nodes WHERE level = ?1 AND idx = ?2")
        .map_err(classify)?;
    let mut found = Nodes::with_capacity(ids.len());
    for id in ids {
        let hash: Option<Vec<u8>> = stmt
            .query_row(params![id.level, id.index as i64], |r| r.get(0))
            .optional()
            .map_err(classify)?;
        if let Some(hash) = hash {
            let hash = Hash::from_bytes(&hash).ok_or_else(|| {
                StoreError::corrupt("hash (not 32 bytes)", format!("node {id:?}"))
            })?;
            found.insert(*id, hash);
        }
    }
    Ok(found)
}

fn log_size_query(conn: &Connection) -> Result<u64, StoreError> {
    let size: i64 = conn
        .query_row(
            "SELECT coalesce(max(idx) + 1, 0) FROM log_entries",
            [],
            |r| r.get(0),
        )
        .map_err(classify)?;
    Ok(size as u64)
}

/// Log entries with index in `start..end`, in order.
fn entries_query(
    conn: &Connection,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    by_log_index(
        conn,
        "SELECT idx, entry FROM log_entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        start,
        end,
    )
}

/// (log index, blob) rows of `sql`, which selects them for log indices `?1..?2`.
fn by_log_index(
    conn: &Connection,
    sql: &str,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_and_then([start as i64, end as i64], |r| rows::indexed_blob(r))?;
    rows.collect()
}

/// The observations of submissions `first..=last`, grouped onto `out` by sequence number.
fn observations_of<T>(
    conn: &Connection,
    out: &mut [T],
    seq_of: impl Fn(&T) -> i64,
    push: impl Fn(&mut T, crate::schema::ValidObservation),
    with_comment: bool,
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (out.first().map(&seq_of), out.last().map(&seq_of)) else {
        return Ok(());
    };
    let mut obs = conn
        .prepare_cached(&format!(
            "SELECT {OBSERVATION_COLUMNS} FROM observations \
             WHERE submission_seq BETWEEN ?1 AND ?2 ORDER BY submission_seq, idx"
        ))
        .map_err(classify)?;
    let mut rows = obs.query(params![first, last]).map_err(classify)?;
    let mut grouping = rows::Grouping::new();
    while let Some(r) = rows.next()? {
        let submission = grouping.place(out, &seq_of, r)?;
        push(submission, rows::observation(r, with_comment)?);
    }
    Ok(())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        classify(e)
    }
}

/// A value SQLite cannot give as the type the schema says is corrupt data.
fn unreadable(row: &Row<'_>, i: usize, e: rusqlite::Error) -> StoreError {
    StoreError::Corrupt {
        what: format!("column {} ({e})", rows::Columns::name(row, i)),
        id: None,
    }
}

impl rows::Columns for Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.get(i).map_err(|e| unreadable(self, i, e))
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i).map_err(|e| unreadable(self, i, e))
    }
    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(i).map_err(|e| unreadable(self, i, e))
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        self.get(i).map_err(|e| unreadable(self, i, e))
    }
    fn name(&self, i: usize) -> String {
        self.as_ref().column_name(i).unwrap_or("?").to_owned()
    }
}

/// The first row `sql` selects for `params`, read by `f`, if there is one.
fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    conn.prepare_cached(sql)?
        .query_and_then(params, f)?
        .next()
        .transpose()
}

fn date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

#[async_trait]
impl LogRecords for SqliteStore {
    async fn log_size(&self) -> Result<u64, StoreError> {
        self.read(log_size_query).await
    }

    async fn nodes(&self, ids: Vec<NodeId>) -> Result<Nodes, StoreError> {
        self.read(move |conn| node_query(conn, &ids)).await
    }

    async fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(move |conn| entries_query(conn, start, end)).await
    }

    async fn entry_index(&self, leaf_hash: Hash) -> Result<Option<u64>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT min(idx) FROM log_entries WHERE leaf_hash = ?1")
                .map_err(classify)?
                .query_row([&leaf_hash.as_bytes()[..]], |r| r.get::<_, Option<i64>>(0))
                .map(|i| i.map(|i| i as u64))
                .map_err(classify)
        })
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(|conn| {
            first(
                conn,
                &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"),
                [],
                |r| rows::checkpoint(r),
            )
        })
        .await
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(move |conn| {
            first(
                conn,
                &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size = ?1"),
                [size as i64],
                |r| rows::checkpoint(r),
            )
        })
        .await
    }

    async fn checkpoint_before(
        &self,
        time_ms: i64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(move |conn| {
            first(
                conn,
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE signed_at <= ?1 \
                     ORDER BY size DESC LIMIT 1"
                ),
                [time_ms],
                |r| rows::checkpoint(r),
            )
        })
        .await
    }

    async fn log_meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.query_row("SELECT value FROM log_meta WHERE name = ?1", [&name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(classify)
        })
        .await
    }
}

#[async_trait]
impl Submissions for SqliteStore {
    async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            first(
                conn,
                &format!("SELECT {STORED_COLUMNS} FROM submissions WHERE id = ?1"),
                [&id],
                |r| rows::stored(r),
            )
        })
        .await
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before_seq: Option<i64>,
    ) -> Result<Vec<SubmissionSummary>, StoreError> {
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM submissions WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        let mut and = |clause: &str, value: Value| {
            sql.push_str(clause);
            args.push(value);
        };
        if let Some(member) = &filter.member {
            and(" AND member = ?", Value::Text(member.clone()));
        }
        if let Some(ref_area) = &filter.ref_area {
            and(" AND ref_area = ?", Value::Text(ref_area.clone()));
        }
        if let Some(dataflow) = filter.dataflow {
            and(" AND dataflow = ?", Value::Text(dataflow.id().into()));
        }
        if let Some(from) = filter.starts_from {
            and(" AND period_start >= ?", Value::Text(date(from)));
        }
        if let Some(until) = filter.ends_until {
            and(" AND period_end <= ?", Value::Text(date(until)));
            // Implied (a period starts no later than it ends), and what bounds the index range.
            and(" AND period_start <= ?", Value::Text(date(until)));
        }
        if let Some(before) = before_seq {
            and(" AND seq < ?", Value::Integer(before));
        }
        if filter.current_only {
            sql.push_str(" AND is_current = 1");
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {LIST_PAGE}"));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_and_then(params_from_iter(args), |r| rows::summary(r))?;
            rows.collect()
        })
        .await
    }

    async fn unlogged(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT count(*) FROM submissions WHERE log_index IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(classify)
        })
        .await
    }

    async fn logged_envelopes(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(move |conn| {
            by_log_index(
                conn,
                "SELECT log_index, envelope_digest FROM submissions \
                 WHERE log_index >= ?1 AND log_index < ?2 ORDER BY log_index",
                start,
                end,
            )
        })
        .await
    }
}

#[async_trait]
impl StatisticsFeed for SqliteStore {
    async fn submissions_since(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IndexedSubmission>, StoreError> {
        self.read(move |conn| {
            let mut subs = conn.prepare_cached(&format!(
                "SELECT {INDEXED_COLUMNS} FROM submissions WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let mut out = subs
                .query_and_then(params![after_seq, limit], |r| rows::indexed(r))?
                .collect::<Result<Vec<_>, _>>()?;
            observations_of(
                conn,
                &mut out,
                |s| s.seq,
                |s, o| s.observations.push(o),
                // Comments too: downloads of the observations read them back.
                true,
            )?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl AccessTrail for SqliteStore {
    async fn record_access(&self, records: Vec<AccessRecord>) -> Result<(), StoreError> {
        // SQLite has one writer: the trail's transaction is one like any other.
        let mut tx = self.begin().await?;
        tx.insert_access(records).await?;
        tx.commit().await
    }

    async fn access_trail(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ACCESS_COLUMNS} FROM access_trail WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_and_then(params![before_id.unwrap_or(i64::MAX), limit], |r| {
                rows::access(r)
            })?;
            rows.collect()
        })
        .await
    }
}

#[async_trait]
impl Cosignatures for SqliteStore {
    async fn record_round(&self, round: RoundRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        super::write_round(tx.as_mut(), round).await?;
        tx.commit().await
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<Cosignature>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COSIGNATURE_COLUMNS} FROM cosignatures WHERE size = ?1 ORDER BY witness"
            ))?;
            let rows = stmt.query_and_then([size as i64], |r| rows::cosignature(r))?;
            rows.collect()
        })
        .await
    }

    async fn witnessed_sizes(&self, limit: u32) -> Result<Vec<WitnessedAt>, StoreError> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT size, at FROM witnessed ORDER BY size DESC LIMIT ?1")?;
            let rows = stmt.query_and_then([limit], |r| rows::witnessed_at(r))?;
            rows.collect()
        })
        .await
    }

    async fn witness_states(&self) -> Result<Vec<WitnessState>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {WITNESS_STATE_COLUMNS} FROM witness_state ORDER BY witness"
            ))?;
            let rows = stmt.query_and_then([], |r| rows::witness_state(r))?;
            rows.collect()
        })
        .await
    }
}

#[async_trait]
impl Exports for SqliteStore {
    async fn export_cosignatures(
        &self,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<Cosignature>, StoreError> {
        let (size, witness) = after.map_or((-1, String::new()), |(s, w)| (s as i64, w));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COSIGNATURE_COLUMNS} FROM cosignatures WHERE (size, witness) > (?1, ?2) \
                 ORDER BY size, witness LIMIT ?3"
            ))?;
            let rows =
                stmt.query_and_then(params![size, witness, limit], |r| rows::cosignature(r))?;
            rows.collect()
        })
        .await
    }

    async fn export(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SubmissionRecord)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EXPORT_COLUMNS} FROM submissions WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let mut out = stmt
                .query_and_then(params![after_seq, limit], |r| {
                    rows::export(r).map(|record| (record, Vec::new()))
                })?
                .collect::<Result<Vec<_>, StoreError>>()?;
            observations_of(conn, &mut out, |r| r.0.0, |r, o| r.1.push(o), true)?;
            Ok(rows::with_observations(out))
        })
        .await
    }

    async fn export_nodes(
        &self,
        after: Option<NodeId>,
        limit: u32,
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        let (level, index) = after.map_or((-1, -1), |n| (i64::from(n.level), n.index as i64));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT level, idx, hash FROM log_nodes WHERE (level, idx) > (?1, ?2) \
                 ORDER BY level, idx LIMIT ?3",
            )?;
            let rows = stmt.query_and_then(params![level, index, limit], |r| rows::node(r))?;
            rows.collect()
        })
        .await
    }

    async fn export_checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> Result<Vec<SignedAt>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size > ?1 ORDER BY size LIMIT ?2"
            ))?;
            let rows =
                stmt.query_and_then(params![after_size as i64, limit], |r| rows::signed_at(r))?;
            rows.collect()
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let guard = self.writer.clone().lock_owned().await;
        let mut tx = SqliteTx {
            conn: Some(guard),
            open: false,
        };
        tx.run(|conn| {
            if !conn.is_autocommit() {
                // A batch that failed half-way left its transaction open.
                conn.execute_batch("ROLLBACK").map_err(classify)?;
            }
            conn.execute_batch("BEGIN IMMEDIATE").map_err(classify)
        })
        .await?;
        tx.open = true;
        Ok(Box::new(tx))
    }

    fn pool(&self) -> PoolState {
        let idle = self.readers.idle.lock().map_or(0, |i| i.len());
        let in_use = READERS.saturating_sub(self.readers.permits.available_permits());
        PoolState {
            max: READERS,
            open: in_use + idle,
            idle,
            waiting: None,
        }
    }

    async fn close(&self) {
        let readers = &self.readers;
        // Every permit back means no read is under way, not even an abandoned one.
        let all = readers.permits.acquire_many(READERS as u32).await;
        readers.permits.close();
        drop(all);
        let idle = std::mem::take(&mut *readers.idle.lock().unwrap_or_else(|p| p.into_inner()));
        // A write under way finishes first; the writer, closing last, folds the WAL into the
        // database file and removes it.
        let writer = self.writer.lock().await.take();
        let closing = tokio::task::spawn_blocking(move || {
            drop(idle);
            if let Some(Err((_, e))) = writer.map(Connection::close) {
                tracing::warn!(error = %e, "closing the SQLite database");
            }
        });
        if let Err(e) = closing.await {
            tracing::warn!(error = %e, "closing the SQLite database");
        }
    }
}

impl SqliteStore {
    /// Writes a consistent copy of the whole database to `to` (a new file) while the gateway
    /// keeps running: SQLite's `VACUUM INTO` reads one snapshot.
    pub async fn backup_to(&self, to: &Path) -> Result<(), StoreError> {
        if to.exists() {
            return Err(StoreError::Refused(format!(
                "{} exists: a backup is written to a new file",
                to.display()
            )));
        }
        let (path, to) = (self.path.clone(), to.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path, false)?;
            conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
                .map(|_| ())
                .map_err(classify)
        })
        .await
        .map_err(joined)?
    }
}

/// One batch's `BEGIN IMMEDIATE` transaction on the writer connection.
struct SqliteTx {
    /// The writer connection, held for the whole transaction (`None` only while a step runs);
    /// inside, `None` once the store is closed, which fails every step.
    conn: Option<OwnedMutexGuard<Option<Connection>>>,
    /// Whether a transaction is open (to roll back if dropped).
    open: bool,
}

impl SqliteTx {
    /// Runs one step of the transaction. On a multi-threaded runtime the step runs in place
    /// (the worker hands its other tasks to another thread meanwhile), which spares the single
    /// writer a hop to the blocking pool and back for every step: a third more submissions
    /// per second in the submit benchmark. Elsewhere it runs on the blocking pool.
    async fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let mut guard = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Failed("the transaction is gone".into()))?;
        let step = move |conn: &mut Option<Connection>| conn.as_mut().map_or(Err(closed()), f);
        if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
            let result = tokio::task::block_in_place(|| step(&mut guard));
            self.conn = Some(guard);
            return result;
        }
        let (guard, result) = tokio::task::spawn_blocking(move || {
            let result = step(&mut guard);
            (guard, result)
        })
        .await
        .map_err(joined)?;
        self.conn = Some(guard);
        result
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let (true, Some(Some(conn))) = (self.open, self.conn.as_deref_mut()) {
            // Fast and local: undoing an uncommitted WAL transaction writes nothing.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Observations per multi-row `INSERT`: fewer statements to step, well under SQLite's
/// bound-parameter limit. The rows left over are inserted one by one, so that only two
/// statements are ever prepared, whatever the number of observations.
const OBSERVATIONS_PER_INSERT: usize = 64;

/// Columns of one inserted observation row.
const OBSERVATION_PARAMS: usize = 15;

/// `INSERT INTO observations` of [`OBSERVATIONS_PER_INSERT`] rows, and of one row.
static INSERT_OBSERVATIONS: LazyLock<[String; 2]> = LazyLock::new(|| {
    [
        insert_observations_sql(OBSERVATIONS_PER_INSERT),
        insert_observations_sql(1),
    ]
});

/// `INSERT INTO observations … VALUES (…), (…)` for `rows` rows.
fn insert_observations_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; OBSERVATION_PARAMS].join(", "));
    format!(
        "INSERT INTO observations (submission_seq, idx, drug, transport_mode, origin_area, \
         departure_area, transit_area, destination_area, unit_measure, n_seizures, quantity, \
         obs_status, conf_status, embargo_time, comment) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// The values of one observation row, in column order.
fn observation_values<'a>(
    seq: i64,
    idx: usize,
    o: &'a ValidObservation,
) -> [ToSqlOutput<'a>; OBSERVATION_PARAMS] {
    let text = |s: &'a str| ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()));
    let opt_text =
        |s: &'a Option<String>| s.as_deref().map_or(ToSqlOutput::Owned(Value::Null), text);
    let int = |i: Option<i64>| ToSqlOutput::Owned(i.map_or(Value::Null, Value::Integer));
    [
        ToSqlOutput::Owned(Value::Integer(seq)),
        ToSqlOutput::Owned(Value::Integer(idx as i64)),
        text(&o.drug),
        opt_text(&o.transport_mode),
        opt_text(&o.origin_area),
        opt_text(&o.departure_area),
        ToSqlOutput::Owned(if o.transit_area.is_empty() {
            Value::Null
        } else {
            Value::Text(o.transit_area.join(";"))
        }),
        opt_text(&o.destination_area),
        opt_text(&o.unit_measure),
        // Validation bounds counts far below i64::MAX.
        int(o.n_seizures.map(|n| n as i64)),
        int(o.quantity.map(|q| q.millionths())),
        text(&o.obs_status),
        text(&o.conf_status),
        int(o
            .embargo_time
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)),
        opt_text(&o.comment),
    ]
}

#[async_trait]
impl LogTx for SqliteTx {
    async fn log_size(&mut self) -> Result<u64, StoreError> {
        self.run(|conn| log_size_query(conn)).await
    }

    async fn entries(&mut self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.run(move |conn| entries_query(conn, start, end)).await
    }

    async fn nodes(&mut self, ids: Vec<NodeId>) -> Result<Nodes, StoreError> {
        self.run(move |conn| node_query(conn, &ids)).await
    }

    async fn append_log(&mut self, append: LogAppend) -> Result<(), StoreError> {
        self.run(move |conn| {
            let mut entry = conn
                .prepare_cached(
                    "INSERT INTO log_entries (idx, entry, leaf_hash) VALUES (?1, ?2, ?3)",
                )
                .map_err(classify)?;
            for e in &append.entries {
                entry
                    .execute(params![
                        e.index as i64,
                        e.entry,
                        &e.leaf_hash.as_bytes()[..]
                    ])
                    .map_err(classify)?;
            }
            let mut node = conn
                .prepare_cached("INSERT INTO log_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
                .map_err(classify)?;
            for (id, hash) in &append.nodes {
                node.execute(params![id.level, id.index as i64, &hash.as_bytes()[..]])
                    .map_err(classify)?;
            }
            if let Some((size, note)) = &append.checkpoint {
                conn.prepare_cached(
                    "INSERT INTO checkpoints (size, note, signed_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(classify)?
                .execute(params![*size as i64, note, append.signed_at_ms])
                .map_err(classify)?;
            }
            Ok(())
        })
        .await
    }

    async fn set_log_meta(&mut self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO log_meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, value],
            )
            .map(|_| ())
            .map_err(classify)
        })
        .await
    }
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn receipts_by_payload(
        &mut self,
        payload_digests: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>, StoreError> {
        let digests = payload_digests.to_vec();
        self.run(move |conn| {
            let mut found = HashMap::new();
            let mut stmt = conn
                .prepare_cached("SELECT receipt FROM submissions WHERE payload_digest = ?1")
                .map_err(classify)?;
            for d in digests {
                if let Some(receipt) = stmt
                    .query_row([&d[..]], |r| r.get(0))
                    .optional()
                    .map_err(classify)?
                {
                    found.insert(d, receipt);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn current_revisions(
        &mut self,
        series: &[SeriesKey],
    ) -> Result<HashMap<SeriesKey, u32>, StoreError> {
        let series = series.to_vec();
        self.run(move |conn| {
            let mut found = HashMap::new();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT revision FROM submissions \
                     WHERE ref_area = ?1 AND dataflow = ?2 AND time_period = ?3 AND is_current = 1",
                )
                .map_err(classify)?;
            for s in series {
                let rev: Option<u32> = stmt
                    .query_row(params![s.ref_area, s.dataflow.id(), s.time_period], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(classify)?;
                if let Some(rev) = rev {
                    found.insert(s, rev);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn insert(&mut self, records: Vec<SubmissionRecord>) -> Result<(), StoreError> {
        self.run(move |conn| {
            // 1. The series' current revisions become superseded (an index search each).
            let mut supersede = conn
                .prepare_cached(
                    "UPDATE submissions SET is_current = 0 \
                     WHERE ref_area = ?1 AND dataflow = ?2 AND time_period = ?3 AND is_current = 1",
                )
                .map_err(classify)?;
            let mut series: Vec<&SeriesKey> = records.iter().map(|r| &r.series).collect();
            series.sort_by(|a, b| {
                (&a.ref_area, a.dataflow.id(), &a.time_period).cmp(&(&b.ref_area, b.dataflow.id(), &b.time_period))
            });
            series.dedup();
            for s in series {
                supersede
                    .execute(params![s.ref_area, s.dataflow.id(), s.time_period])
                    .map_err(classify)?;
            }

            // 2. Each submission, the last of its series current, then its observations.
            let mut submission = conn
                .prepare_cached(
                    "INSERT INTO submissions (id, member, dataflow, ref_area, freq, time_period, period_start, \
                     period_end, revision, is_current, received_at, payload_digest, envelope_digest, envelope, \
                     signing_cert, receipt, observation_count, log_index) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                )
                .map_err(classify)?;
            for (i, r) in records.iter().enumerate() {
                let is_current = !records[i + 1..].iter().any(|later| later.series == r.series);
                submission
                    .execute(params![
                        r.id,
                        r.member,
                        r.series.dataflow.id(),
                        r.series.ref_area,
                        r.freq,
                        r.series.time_period,
                        date(r.period_start),
                        date(r.period_end),
                        r.revision,
                        is_current,
                        r.received_at_ms,
                        &r.payload_digest[..],
                        &r.envelope_digest[..],
                        r.envelope,
                        r.signing_cert,
                        r.receipt,
                        r.observations.len() as i64,
                        r.log_index as i64,
                    ])
                    .map_err(classify)?;
                let seq = conn.last_insert_rowid();
                let [many, one] = &*INSERT_OBSERVATIONS;
                let mut chunks = r.observations.chunks_exact(OBSERVATIONS_PER_INSERT);
                let mut idx = 0;
                for chunk in &mut chunks {
                    let values: Vec<ToSqlOutput<'_>> = chunk
                        .iter()
                        .enumerate()
                        .flat_map(|(j, o)| observation_values(seq, idx + j, o))
                        .collect();
                    conn.prepare_cached(many)
                        .map_err(classify)?
                        .execute(params_from_iter(values))
                        .map_err(classify)?;
                    idx += chunk.len();
                }
                let mut single = conn.prepare_cached(one).map_err(classify)?;
                for (j, o) in chunks.remainder().iter().enumerate() {
                    single
                        .execute(params_from_iter(observation_values(seq, idx + j, o)))
                        .map_err(classify)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn insert_checkpoints(&mut self, checkpoints: Vec<SignedAt>) -> Result<(), StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO checkpoints (size, note, signed_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(classify)?;
            for c in checkpoints {
                stmt.execute(params![
                    c.checkpoint.size as i64,
                    c.checkpoint.note,
                    c.signed_at_ms
                ])
                .map_err(classify)?;
            }
            Ok(())
        })
        .await
    }

    async fn insert_cosignatures(
        &mut self,
        cosignatures: Vec<Cosignature>,
    ) -> Result<(), StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO cosignatures (size, witness, signature, received_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size, witness) DO NOTHING",
            )?;
            for c in cosignatures {
                stmt.execute(params![
                    c.size as i64,
                    c.witness,
                    c.signature,
                    c.received_at_ms
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn insert_witnessed(&mut self, witnessed: Vec<WitnessedAt>) -> Result<(), StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO witnessed (size, at) VALUES (?1, ?2) ON CONFLICT (size) DO NOTHING",
            )?;
            for w in witnessed {
                stmt.execute(params![w.size as i64, w.at_ms])?;
            }
            Ok(())
        })
        .await
    }

    async fn record_witness_states(&mut self, states: Vec<WitnessState>) -> Result<(), StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO witness_state (witness, size, cosigned_at, last_error, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (witness) DO UPDATE SET \
                 size = ?2, cosigned_at = ?3, last_error = ?4, updated_at = ?5",
            )?;
            for w in states {
                let error = w.bounded_error();
                stmt.execute(params![
                    w.witness,
                    w.size as i64,
                    w.cosigned_at_ms,
                    error,
                    w.updated_at_ms
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn insert_access(&mut self, records: Vec<AccessRecord>) -> Result<(), StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO access_trail (at, member, method, request, tree_size, rows, suppressed) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(classify)?;
            for r in records {
                stmt.execute(params![
                    r.at_ms,
                    r.member,
                    r.method,
                    r.request,
                    r.tree_size as i64,
                    r.rows,
                    r.suppressed
                ])
                .map_err(classify)?;
            }
            Ok(())
        })
        .await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.run(|conn| conn.execute_batch("COMMIT").map_err(classify))
            .await?;
        self.open = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_waits_for_an_abandoned_read_then_leaves_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("focalgate.db");
        let store = SqliteStore::open(&db).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.set_log_meta("origin", "example.org/log").await.unwrap();
        tx.commit().await.unwrap();

        // A slow read whose caller goes away while it runs.
        let (started, running) = tokio::sync::oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let reader = store.clone();
        let caller = tokio::spawn(async move {
            reader
                .read(move |conn| {
                    let _ = started.send(());
                    std::thread::sleep(Duration::from_millis(300));
                    let n: i64 = conn
                        .query_row("SELECT count(*) FROM log_meta", [], |r| r.get(0))
                        .map_err(classify)?;
                    done.store(true, Ordering::SeqCst);
                    Ok(n)
                })
                .await
        });
        running.await.unwrap();
        caller.abort();

        store.close().await;
        assert!(
            finished.load(Ordering::SeqCst),
            "close returned before the abandoned read finished"
        );
        for suffix in ["-wal", "-shm"] {
            let left = dir.path().join(format!("focalgate.db{suffix}"));
            assert!(!left.exists(), "{} left behind", left.display());
        }
        assert!(matches!(
            store.log_meta("origin").await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.begin().await,
            Err(StoreError::Unavailable(_))
        ));

        // The file alone holds what was committed.
        let reopened = SqliteStore::open(&db).await.unwrap();
        assert_eq!(
            reopened.log_meta("origin").await.unwrap().as_deref(),
            Some("example.org/log")
        );
    }
}
