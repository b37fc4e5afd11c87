//! The PostgreSQL store: several gateway replicas share one database, and one log.
//!
//! # One writer at a time, across replicas
//! Every write transaction starts by taking a transaction-scoped advisory lock on the log
//! head, `pg_advisory_xact_lock(LOG_LOCK)`, held until it commits or rolls back (in the
//! spirit of Sunlight's lock on the log's latest checkpoint). Inside it a writer reads the
//! log's size and the tree nodes it extends, appends entries, nodes and the checkpoint it
//! signed over them, and commits; the next writer, on whichever replica, then reads the tree
//! that commit left. So indices follow each other without gap or duplicate, every checkpoint
//! extends the previous one, and no two replicas ever sign inconsistent checkpoints. Reads need
//! no lock: they see committed trees only.
//!
//! A replica that dies mid-transaction loses its connection; PostgreSQL rolls the transaction
//! back and releases the lock. A transaction dropped without commit has its connection closed
//! for the same effect, so no pooled connection ever carries a half-done transaction.
//!
//! # Failures
//! Connections come from a pool, which replaces broken ones: after the database restarts the
//! gateway recovers by itself. Every statement has a timeout (`statement_timeout`, which also
//! bounds the wait for the log lock); unreachable, restarting or overloaded databases and
//! timeouts are [`StoreError::Unavailable`], which callers see as `UNAVAILABLE`.

use std::{collections::HashMap, str::FromStr, time::Duration};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use time::{Date, format_description::BorrowedFormatItem, macros::format_description};
use tokio_postgres::{
    NoTls, Row,
    error::SqlState,
    types::{ToSql, Type},
};

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
    schema::Dataflow,
};

/// The advisory lock on the log head that serialises writers (ASCII "focalgat").
pub const LOG_LOCK: i64 = 0x666f_6361_6c67_6174;
/// The advisory lock under which migrations run, so that replicas starting together migrate
/// once.
const MIGRATION_LOCK: i64 = LOG_LOCK + 1;

/// Migrations, applied in order, each once: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "listing indexes",
        include_str!("migrations/postgres/0002_listing_indexes.sql"),
    ),
    (
        3,
        "cosignatures",
        include_str!("migrations/postgres/0003_cosignatures.sql"),
    ),
    (
        4,
        "witnessed checkpoints",
        include_str!("migrations/postgres/0004_witnessed.sql"),
    ),
];

const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

/// How the gateway talks to PostgreSQL.
#[derive(Clone, Copy, Debug)]
pub struct PgOptions {
    /// Most connections this gateway opens.
    pub pool_size: usize,
    /// Longest statement, the wait for the log lock included.
    pub statement_timeout: Duration,
    /// Longest wait for a connection (new or from the pool).
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            statement_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

fn classify(e: tokio_postgres::Error) -> StoreError {
    let transient = e.is_closed()
        || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
        || e.code().is_some_and(|c| {
            c.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::QUERY_CANCELED,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(c)
        });
    if transient {
        StoreError::Unavailable(e.to_string())
    } else if e.code().is_some_and(|c| c.code().starts_with("23")) {
        // Class 23: integrity constraint violation.
        StoreError::Conflict(e.to_string())
    } else {
        StoreError::Failed(e.to_string())
    }
}

/// Column `i` of `row`, or why it cannot be read as a `T`: a value that is not what the schema
/// says is corrupt data, never a panic.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| StoreError::Corrupt {
        what: format!(
            "column {} ({e})",
            row.columns().get(i).map_or("?", |c| c.name())
        ),
        id: None,
    })
}

impl rows::Columns for Row {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.columns().get(i).map(|c| c.type_()) {
            Some(&Type::INT2) => Ok(col::<Option<i16>>(self, i)?.map(i64::from)),
            Some(&Type::INT4) => Ok(col::<Option<i32>>(self, i)?.map(i64::from)),
            _ => col(self, i),
        }
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        col(self, i)
    }
    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        col(self, i)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        col(self, i)
    }
    fn name(&self, i: usize) -> String {
        self.columns().get(i).map_or("?", |c| c.name()).to_owned()
    }
}

/// The first row `sql` selects for `params`, read by `f`, if there is one.
async fn first<T>(
    client: &Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    f: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let stmt = client.prepare_cached(sql).await.map_err(classify)?;
    client
        .query_opt(&stmt, params)
        .await
        .map_err(classify)?
        .as_ref()
        .map(f)
        .transpose()
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => classify(e),
        other => StoreError::Unavailable(format!("database connection: {other}")),
    }
}

fn date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

/// Hides the password of a `postgres://` URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connects to the database named by a `postgres://` URL and applies pending migrations.
    pub async fn open_url(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Refused(format!("store.url {}: {e}", redact(url))))?;
        let timeout = options.statement_timeout.as_millis();
        let mut server_options = config.get_options().unwrap_or_default().to_owned();
        server_options.push_str(&format!(
            " -c statement_timeout={timeout} -c idle_in_transaction_session_timeout={}",
            timeout * 6
        ));
        config
            .options(server_options.trim())
            .application_name("focalgate")
            .connect_timeout(options.connect_timeout)
            .keepalives(true);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Refused(format!("database pool: {e}")))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(classify)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(classify)?;
        let applied: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(classify)?
            .get(0);
        let newest = MIGRATIONS.last().map_or(0, |m| m.0);
        if applied > newest {
            return Err(StoreError::Refused(format!(
                "the database is at schema version {applied}, newer than this gateway knows ({newest}); upgrade the gateway"
            )));
        }
        for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
            tx.batch_execute(sql).await.map_err(classify)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }
}

async fn log_size(client: &tokio_postgres::Client) -> Result<u64, StoreError> {
    let row = client
        .query_one("SELECT coalesce(max(idx) + 1, 0) FROM log_entries", &[])
        .await
        .map_err(classify)?;
    rows::Columns::u64(&row, 0)
}

/// Log entries with index in `start..end`, in order.
async fn entries(
    client: &tokio_postgres::Client,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    by_log_index(
        client,
        "SELECT idx, entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        start,
        end,
    )
    .await
}

/// (log index, blob) rows of `sql`, which selects them for log indices `$1..$2`.
async fn by_log_index(
    client: &tokio_postgres::Client,
    sql: &str,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let rows = client
        .query(sql, &[&(start as i64), &(end as i64)])
        .await
        .map_err(classify)?;
    rows.iter().map(rows::indexed_blob).collect()
}

async fn nodes(client: &tokio_postgres::Client, ids: &[NodeId]) -> Result<Nodes, StoreError> {
    let levels: Vec<i32> = ids.iter().map(|n| i32::from(n.level)).collect();
    let indices: Vec<i64> = ids.iter().map(|n| n.index as i64).collect();
    let rows = client
        .query(
            "SELECT level, idx, hash FROM log_nodes \
             WHERE (level, idx) IN (SELECT * FROM unnest($1::int4[], $2::int8[]))",
            &[&levels, &indices],
        )
        .await
        .map_err(classify)?;
    rows.iter().map(rows::node).collect()
}

/// The observations of submissions `first..=last`, grouped onto `out` by sequence number.
async fn observations_of<T>(
    client: &tokio_postgres::Client,
    out: &mut [T],
    seq_of: impl Fn(&T) -> i64,
    push: impl Fn(&mut T, crate::schema::ValidObservation),
    with_comment: bool,
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (out.first().map(&seq_of), out.last().map(&seq_of)) else {
        return Ok(());
    };
    let rows = client
        .query(
            &format!(
                "SELECT {OBSERVATION_COLUMNS} FROM observations \
                 WHERE submission_seq BETWEEN $1 AND $2 ORDER BY submission_seq, idx"
            ),
            &[&first, &last],
        )
        .await
        .map_err(classify)?;
    let mut grouping = rows::Grouping::new();
    for r in &rows {
        let submission = grouping.place(out, &seq_of, r)?;
        push(submission, rows::observation(r, with_comment)?);
    }
    Ok(())
}

#[async_trait]
impl LogRecords for PgStore {
    async fn log_size(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        log_size(&client).await
    }

    async fn nodes(&self, ids: Vec<NodeId>) -> Result<Nodes, StoreError> {
        let client = self.client().await?;
        nodes(&client, &ids).await
    }

    async fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        entries(&*self.client().await?, start, end).await
    }

    async fn entry_index(&self, leaf_hash: Hash) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(idx) FROM log_entries WHERE leaf_hash = $1",
                &[&&leaf_hash.as_bytes()[..]],
            )
            .await
            .map_err(classify)?;
        rows::Columns::opt_u64(&row, 0)
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let client = self.client().await?;
        first(
            &client,
            &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1"),
            &[],
            rows::checkpoint,
        )
        .await
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let client = self.client().await?;
        first(
            &client,
            &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size = $1"),
            &[&(size as i64)],
            rows::checkpoint,
        )
        .await
    }

    async fn checkpoint_before(
        &self,
        time_ms: i64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let client = self.client().await?;
        first(
            &client,
            &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE signed_at <= $1 ORDER BY size DESC LIMIT 1"),
            &[&time_ms],
            rows::checkpoint,
        )
        .await
    }

    async fn log_meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt("SELECT value FROM log_meta WHERE name = $1", &[&name])
            .await
            .map_err(classify)?
            .map(|r| col(&r, 0))
            .transpose()
    }
}

#[async_trait]
impl Submissions for PgStore {
    async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        let client = self.client().await?;
        first(
            &client,
            &format!("SELECT {STORED_COLUMNS} FROM submissions WHERE id = $1"),
            &[&id],
            rows::stored,
        )
        .await
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before_seq: Option<i64>,
    ) -> Result<Vec<SubmissionSummary>, StoreError> {
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM submissions WHERE true");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut and = |clause: &str, value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(member) = &filter.member {
            and(" AND member = ?", Box::new(member.clone()));
        }
        if let Some(ref_area) = &filter.ref_area {
            and(" AND ref_area = ?", Box::new(ref_area.clone()));
        }
        if let Some(dataflow) = filter.dataflow {
            and(" AND dataflow = ?", Box::new(dataflow.id().to_owned()));
        }
        if let Some(from) = filter.starts_from {
            and(" AND period_start >= ?", Box::new(date(from)));
        }
        if let Some(until) = filter.ends_until {
            and(" AND period_end <= ?", Box::new(date(until)));
            // Implied (a period starts no later than it ends), and what bounds the index range.
            and(" AND period_start <= ?", Box::new(date(until)));
        }
        if let Some(before) = before_seq {
            and(" AND seq < ?", Box::new(before));
        }
        if filter.current_only {
            sql.push_str(" AND is_current");
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {LIST_PAGE}"));
        let client = self.client().await?;
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &params).await.map_err(classify)?;
        rows.iter().map(rows::summary).collect()
    }

    async fn unlogged(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM submissions WHERE log_index IS NULL",
                &[],
            )
            .await
            .map_err(classify)?;
        rows::Columns::u64(&row, 0)
    }

    async fn logged_envelopes(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        by_log_index(
            &*self.client().await?,
            "SELECT log_index, envelope_digest FROM submissions \
             WHERE log_index >= $1 AND log_index < $2 ORDER BY log_index",
            start,
            end,
        )
        .await
    }
}

#[async_trait]
impl StatisticsFeed for PgStore {
    async fn submissions_since(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IndexedSubmission>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {INDEXED_COLUMNS} FROM submissions WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&after_seq, &i64::from(limit)],
            )
            .await
            .map_err(classify)?;
        let mut out = rows
            .iter()
            .map(rows::indexed)
            .collect::<Result<Vec<_>, _>>()?;
        observations_of(
            &client,
            &mut out,
            |s| s.seq,
            |s, o| s.observations.push(o),
            // Comments too: downloads of the observations read them back.
            true,
        )
        .await?;
        Ok(out)
    }
}

impl PgStore {
    /// A write transaction without the log lock, for what is no part of the log (the access
    /// trail, cosignatures gathered afterwards).
    async fn begin_unlocked(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let tx = PgTx {
            client: Some(self.client().await?),
            open: true,
        };
        tx.client()?
            .batch_execute("BEGIN")
            .await
            .map_err(classify)?;
        Ok(Box::new(tx))
    }
}

#[async_trait]
impl AccessTrail for PgStore {
    async fn record_access(&self, records: Vec<AccessRecord>) -> Result<(), StoreError> {
        let mut tx = self.begin_unlocked().await?;
        tx.insert_access(records).await?;
        tx.commit().await
    }

    async fn access_trail(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ACCESS_COLUMNS} FROM access_trail WHERE id < $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&before_id.unwrap_or(i64::MAX), &i64::from(limit)],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(rows::access).collect()
    }
}

#[async_trait]
impl Cosignatures for PgStore {
    async fn record_round(&self, round: RoundRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_unlocked().await?;
        super::write_round(tx.as_mut(), round).await?;
        tx.commit().await
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<Cosignature>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COSIGNATURE_COLUMNS} FROM cosignatures WHERE size = $1 ORDER BY witness"
                ),
                &[&(size as i64)],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(rows::cosignature).collect()
    }

    async fn witnessed_sizes(&self, limit: u32) -> Result<Vec<WitnessedAt>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT size, at FROM witnessed ORDER BY size DESC LIMIT $1",
                &[&i64::from(limit)],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(rows::witnessed_at).collect()
    }

    async fn witness_states(&self) -> Result<Vec<WitnessState>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {WITNESS_STATE_COLUMNS} FROM witness_state ORDER BY witness"),
                &[],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(rows::witness_state).collect()
    }
}

#[async_trait]
impl Exports for PgStore {
    async fn export_cosignatures(
        &self,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<Cosignature>, StoreError> {
        let (size, witness) = after.map_or((-1, String::new()), |(s, w)| (s as i64, w));
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COSIGNATURE_COLUMNS} FROM cosignatures WHERE (size, witness) > ($1, $2) \
                     ORDER BY size, witness LIMIT $3"
                ),
                &[&size, &witness, &i64::from(limit)],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(rows::cosignature).collect()
    }

    async fn export(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SubmissionRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {EXPORT_COLUMNS} FROM submissions WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&after_seq, &i64::from(limit)],
            )
            .await
            .map_err(classify)?;
        let mut out = rows
            .iter()
            .map(|r| rows::export(r).map(|record| (record, Vec::new())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        observations_of(&client, &mut out, |r| r.0.0, |r, o| r.1.push(o), true).await?;
        Ok(rows::with_observations(out))
    }

    async fn export_nodes(
        &self,
        after: Option<NodeId>,
        limit: u32,
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        let (level, index) = after.map_or((-1, -1), |n| (i32::from(n.level), n.index as i64));
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT level, idx, hash FROM log_nodes WHERE (level, idx) > ($1, $2) \
                 ORDER BY level, idx LIMIT $3",
                &[&level, &index, &i64::from(limit)],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(rows::node).collect()
    }

    async fn export_checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> Result<Vec<SignedAt>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE size > $1 ORDER BY size LIMIT $2"
                ),
                &[&(after_size as i64), &i64::from(limit)],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(rows::signed_at).collect()
    }
}

#[async_trait]
impl Store for PgStore {
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let client = self.client().await?;
        let tx = PgTx {
            client: Some(client),
            open: true,
        };
        // Dropping `tx` on an error closes the connection: nothing half-done stays pooled.
        tx.client()?
            .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({LOG_LOCK})"))
            .await
            .map_err(classify)?;
        Ok(Box::new(tx))
    }

    fn pool(&self) -> PoolState {
        let status = self.pool.status();
        PoolState {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: Some(status.waiting),
        }
    }

    async fn close(&self) {
        // Idle connections close now; one in use closes when its work ends.
        self.pool.close();
    }
}

/// One batch's transaction, holding the log lock.
struct PgTx {
    /// The connection; `None` once given back.
    client: Option<Object>,
    /// Whether the transaction is open (its connection is closed if dropped).
    open: bool,
}

impl PgTx {
    fn client(&self) -> Result<&Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Failed("the transaction is gone".into()))
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if let (true, Some(client)) = (self.open, self.client.take()) {
            // Out of the pool and closed: the server rolls back and releases the lock.
            drop(Object::take(client));
        }
    }
}

#[async_trait]
impl LogTx for PgTx {
    async fn log_size(&mut self) -> Result<u64, StoreError> {
        log_size(self.client()?).await
    }

    async fn entries(&mut self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        entries(self.client()?, start, end).await
    }

    async fn nodes(&mut self, ids: Vec<NodeId>) -> Result<Nodes, StoreError> {
        nodes(self.client()?, &ids).await
    }

    async fn append_log(&mut self, append: LogAppend) -> Result<(), StoreError> {
        let client = self.client()?;
        let idx: Vec<i64> = append.entries.iter().map(|e| e.index as i64).collect();
        let entry: Vec<&[u8]> = append.entries.iter().map(|e| e.entry.as_slice()).collect();
        let leaf: Vec<&[u8]> = append
            .entries
            .iter()
            .map(|e| &e.leaf_hash.as_bytes()[..])
            .collect();
        client
            .execute(
                "INSERT INTO log_entries (idx, entry, leaf_hash) \
                 SELECT * FROM unnest($1::int8[], $2::bytea[], $3::bytea[])",
                &[&idx, &entry, &leaf],
            )
            .await
            .map_err(classify)?;
        let levels: Vec<i32> = append
            .nodes
            .iter()
            .map(|(id, _)| i32::from(id.level))
            .collect();
        let node_idx: Vec<i64> = append.nodes.iter().map(|(id, _)| id.index as i64).collect();
        let hashes: Vec<&[u8]> = append
            .nodes
            .iter()
            .map(|(_, h)| &h.as_bytes()[..])
            .collect();
        client
            .execute(
                "INSERT INTO log_nodes (level, idx, hash) \
                 SELECT * FROM unnest($1::int4[], $2::int8[], $3::bytea[])",
                &[&levels, &node_idx, &hashes],
            )
            .await
            .map_err(classify)?;
        if let Some((size, note)) = &append.checkpoint {
            client
                .execute(
                    "INSERT INTO checkpoints (size, note, signed_at) VALUES ($1, $2, $3)",
                    &[&(*size as i64), note, &append.signed_at_ms],
                )
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn set_log_meta(&mut self, name: &str, value: &str) -> Result<(), StoreError> {
        self.client()?
            .execute(
                "INSERT INTO log_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &value],
            )
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

#[async_trait]
impl WriteTx for PgTx {
    async fn receipts_by_payload(
        &mut self,
        payload_digests: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>, StoreError> {
        let digests: Vec<&[u8]> = payload_digests.iter().map(|d| &d[..]).collect();
        let rows = self
            .client()?
            .query(
                "SELECT payload_digest, receipt FROM submissions WHERE payload_digest = ANY($1)",
                &[&digests],
            )
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                let d: &[u8] = col(r, 0)?;
                let d = <[u8; 32]>::try_from(d).map_err(|_| {
                    StoreError::corrupt("payload digest (not 32 bytes)", "a submission")
                })?;
                Ok((d, col(r, 1)?))
            })
            .collect()
    }

    async fn current_revisions(
        &mut self,
        series: &[SeriesKey],
    ) -> Result<HashMap<SeriesKey, u32>, StoreError> {
        let areas: Vec<&str> = series.iter().map(|s| s.ref_area.as_str()).collect();
        let flows: Vec<&str> = series.iter().map(|s| s.dataflow.id()).collect();
        let periods: Vec<&str> = series.iter().map(|s| s.time_period.as_str()).collect();
        let rows = self
            .client()?
            .query(
                "SELECT s.ref_area, s.dataflow, s.time_period, s.revision FROM submissions s \
                 JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(ref_area, dataflow, time_period) \
                 USING (ref_area, dataflow, time_period) WHERE s.is_current",
                &[&areas, &flows, &periods],
            )
            .await
            .map_err(classify)?;
        let mut found = HashMap::new();
        for r in rows {
            let dataflow: String = col(&r, 1)?;
            let Some(dataflow) = Dataflow::from_id(&dataflow) else {
                return Err(StoreError::corrupt(
                    format!("dataflow {dataflow:?}"),
                    "a submission",
                ));
            };
            found.insert(
                SeriesKey {
                    ref_area: col(&r, 0)?,
                    dataflow,
                    time_period: col(&r, 2)?,
                },
                col::<i32>(&r, 3)? as u32,
            );
        }
        Ok(found)
    }

    async fn insert(&mut self, records: Vec<SubmissionRecord>) -> Result<(), StoreError> {
        let client = self.client()?;
        // 1. The series' current revisions become superseded.
        let areas: Vec<&str> = records.iter().map(|r| r.series.ref_area.as_str()).collect();
        let flows: Vec<&str> = records.iter().map(|r| r.series.dataflow.id()).collect();
        let periods: Vec<&str> = records
            .iter()
            .map(|r| r.series.time_period.as_str())
            .collect();
        client
            .execute(
                "UPDATE submissions SET is_current = false WHERE is_current \
                 AND (ref_area, dataflow, time_period) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
                &[&areas, &flows, &periods],
            )
            .await
            .map_err(classify)?;

        // 2. The submissions, in order, the last of each series current.
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let members: Vec<&str> = records.iter().map(|r| r.member.as_str()).collect();
        let freqs: Vec<&str> = records.iter().map(|r| r.freq).collect();
        let starts: Vec<String> = records.iter().map(|r| date(r.period_start)).collect();
        let ends: Vec<String> = records.iter().map(|r| date(r.period_end)).collect();
        let revisions: Vec<i32> = records.iter().map(|r| r.revision as i32).collect();
        let current: Vec<bool> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                !records[i + 1..]
                    .iter()
                    .any(|later| later.series == r.series)
            })
            .collect();
        let received: Vec<i64> = records.iter().map(|r| r.received_at_ms).collect();
        let payloads: Vec<&[u8]> = records.iter().map(|r| &r.payload_digest[..]).collect();
        let envelope_digests: Vec<&[u8]> = records.iter().map(|r| &r.envelope_digest[..]).collect();
        let envelopes: Vec<&[u8]> = records.iter().map(|r| r.envelope.as_slice()).collect();
        let certs: Vec<&[u8]> = records.iter().map(|r| r.signing_cert.as_slice()).collect();
        let receipts: Vec<&[u8]> = records.iter().map(|r| r.receipt.as_slice()).collect();
        let counts: Vec<i32> = records
            .iter()
            .map(|r| r.observations.len() as i32)
            .collect();
        let indices: Vec<i64> = records.iter().map(|r| r.log_index as i64).collect();
        let rows = client
            .query(
                "INSERT INTO submissions (id, member, dataflow, ref_area, freq, time_period, period_start, \
                 period_end, revision, is_current, received_at, payload_digest, envelope_digest, envelope, \
                 signing_cert, receipt, observation_count, log_index) \
                 SELECT id, member, dataflow, ref_area, freq, time_period, period_start, period_end, revision, \
                 is_current, received_at, payload_digest, envelope_digest, envelope, signing_cert, receipt, \
                 observation_count, log_index FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::int4[], $10::bool[], $11::int8[], \
                 $12::bytea[], $13::bytea[], $14::bytea[], $15::bytea[], $16::bytea[], $17::int4[], $18::int8[]) \
                 WITH ORDINALITY AS t(id, member, dataflow, ref_area, freq, time_period, period_start, \
                 period_end, revision, is_current, received_at, payload_digest, envelope_digest, envelope, \
                 signing_cert, receipt, observation_count, log_index, n) ORDER BY n RETURNING id, seq",
                &[
                    &ids, &members, &flows, &areas, &freqs, &periods, &starts, &ends, &revisions,
                    &current, &received, &payloads, &envelope_digests, &envelopes, &certs,
                    &receipts, &counts, &indices,
                ],
            )
            .await
            .map_err(classify)?;
        let seqs: HashMap<String, i64> = rows
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect::<Result<_, StoreError>>()?;

        // 3. Their observations, all in one statement.
        let total: usize = records.iter().map(|r| r.observations.len()).sum();
        let mut c = ObservationColumns::with_capacity(total);
        for r in &records {
            let seq = *seqs.get(&r.id).ok_or_else(|| {
                StoreError::Failed(format!("no sequence was assigned to {}", r.id))
            })?;
            for (idx, o) in r.observations.iter().enumerate() {
                c.push(seq, idx, o);
            }
        }
        client
            .execute(
                "INSERT INTO observations (submission_seq, idx, drug, transport_mode, origin_area, \
                 departure_area, transit_area, destination_area, unit_measure, n_seizures, quantity, \
                 obs_status, conf_status, embargo_time, comment) \
                 SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[], $13::text[], \
                 $14::int8[], $15::text[])",
                &[
                    &c.seq, &c.idx, &c.drug, &c.transport_mode, &c.origin_area, &c.departure_area,
                    &c.transit_area, &c.destination_area, &c.unit_measure, &c.n_seizures,
                    &c.quantity, &c.obs_status, &c.conf_status, &c.embargo_time, &c.comment,
                ],
            )
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn insert_checkpoints(&mut self, checkpoints: Vec<SignedAt>) -> Result<(), StoreError> {
        let sizes: Vec<i64> = checkpoints
            .iter()
            .map(|c| c.checkpoint.size as i64)
            .collect();
        let notes: Vec<&str> = checkpoints
            .iter()
            .map(|c| c.checkpoint.note.as_str())
            .collect();
        let times: Vec<i64> = checkpoints.iter().map(|c| c.signed_at_ms).collect();
        self.client()?
            .execute(
                "INSERT INTO checkpoints (size, note, signed_at) \
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[])",
                &[&sizes, &notes, &times],
            )
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn insert_cosignatures(
        &mut self,
        cosignatures: Vec<Cosignature>,
    ) -> Result<(), StoreError> {
        let size: Vec<i64> = cosignatures.iter().map(|c| c.size as i64).collect();
        let witness: Vec<&str> = cosignatures.iter().map(|c| c.witness.as_str()).collect();
        let signature: Vec<&str> = cosignatures.iter().map(|c| c.signature.as_str()).collect();
        let at: Vec<i64> = cosignatures.iter().map(|c| c.received_at_ms).collect();
        self.client()?
            .execute(
                "INSERT INTO cosignatures (size, witness, signature, received_at) \
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[]) \
                 ON CONFLICT (size, witness) DO NOTHING",
                &[&size, &witness, &signature, &at],
            )
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn record_witness_states(&mut self, states: Vec<WitnessState>) -> Result<(), StoreError> {
        for w in states {
            let error = w.bounded_error();
            self.client()?
                .execute(
                    "INSERT INTO witness_state (witness, size, cosigned_at, last_error, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (witness) DO UPDATE SET \
                     size = $2, cosigned_at = $3, last_error = $4, updated_at = $5",
                    &[&w.witness, &(w.size as i64), &w.cosigned_at_ms, &error, &w.updated_at_ms],
                )
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn insert_witnessed(&mut self, witnessed: Vec<WitnessedAt>) -> Result<(), StoreError> {
        let size: Vec<i64> = witnessed.iter().map(|w| w.size as i64).collect();
        let at: Vec<i64> = witnessed.iter().map(|w| w.at_ms).collect();
        self.client()?
            .execute(
                "INSERT INTO witnessed (size, at) SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[]) \
                 ON CONFLICT (size) DO NOTHING",
                &[&size, &at],
            )
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn insert_access(&mut self, records: Vec<AccessRecord>) -> Result<(), StoreError> {
        let at: Vec<i64> = records.iter().map(|r| r.at_ms).collect();
        let member: Vec<&str> = records.iter().map(|r| r.member.as_str()).collect();
        let method: Vec<&str> = records.iter().map(|r| r.method.as_str()).collect();
        let request: Vec<&str> = records.iter().map(|r| r.request.as_str()).collect();
        let size: Vec<i64> = records.iter().map(|r| r.tree_size as i64).collect();
        let rows: Vec<i32> = records.iter().map(|r| r.rows as i32).collect();
        let suppressed: Vec<i32> = records.iter().map(|r| r.suppressed as i32).collect();
        self.client()?
            .execute(
                "INSERT INTO access_trail (at, member, method, request, tree_size, rows, suppressed) \
                 SELECT a, b, c, d, e, f, g FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], \
                 $5::int8[], $6::int4[], $7::int4[]) WITH ORDINALITY AS t(a, b, c, d, e, f, g, n) ORDER BY n",
                &[&at, &member, &method, &request, &size, &rows, &suppressed],
            )
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.client()?
            .batch_execute("COMMIT")
            .await
            .map_err(classify)?;
        self.open = false;
        Ok(())
    }
}

/// Observations as one array per column, for one `unnest` insert.
#[derive(Default)]
struct ObservationColumns {
    seq: Vec<i64>,
    idx: Vec<i32>,
    drug: Vec<String>,
    transport_mode: Vec<Option<String>>,
    origin_area: Vec<Option<String>>,
    departure_area: Vec<Option<String>>,
    transit_area: Vec<Option<String>>,
    destination_area: Vec<Option<String>>,
    unit_measure: Vec<Option<String>>,
    n_seizures: Vec<Option<i64>>,
    quantity: Vec<Option<i64>>,
    obs_status: Vec<String>,
    conf_status: Vec<String>,
    embargo_time: Vec<Option<i64>>,
    comment: Vec<Option<String>>,
}

impl ObservationColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            seq: Vec::with_capacity(n),
            idx: Vec::with_capacity(n),
            ..Default::default()
        }
    }

    fn push(&mut self, seq: i64, idx: usize, o: &crate::schema::ValidObservation) {
        self.seq.push(seq);
        self.idx.push(idx as i32);
        self.drug.push(o.drug.clone());
        self.transport_mode.push(o.transport_mode.clone());
        self.origin_area.push(o.origin_area.clone());
        self.departure_area.push(o.departure_area.clone());
        self.transit_area
            .push((!o.transit_area.is_empty()).then(|| o.transit_area.join(";")));
        self.destination_area.push(o.destination_area.clone());
        self.unit_measure.push(o.unit_measure.clone());
        // Validation bounds counts far below i64::MAX.
        self.n_seizures.push(o.n_seizures.map(|n| n as i64));
        self.quantity.push(o.quantity.map(|q| q.millionths()));
        self.obs_status.push(o.obs_status.clone());
        self.conf_status.push(o.conf_status.clone());
        self.embargo_time.push(
            o.embargo_time
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
        );
        self.comment.push(o.comment.clone());
    }
}
