//! The embedded SQLite store: one file, WAL, `synchronous = FULL` so that a commit is on disk
//! before it returns, and `BEGIN IMMEDIATE` write transactions so writers never deadlock.

use std::{collections::HashMap, path::Path, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    QueryBuilder, Row, Sqlite, SqlitePool, Transaction,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
};
use time::{Date, format_description::BorrowedFormatItem, macros::format_description};

use crate::schema::Dataflow;

use super::{
    LIST_PAGE, ListFilter, SeriesKey, Store, StoreError, StoredSubmission, SubmissionRecord,
    SubmissionSummary, WriteTx, observation_rows_json,
};

/// Migrations, applied in order, each once: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "submissions",
    include_str!("migrations/sqlite/0001_submissions.sql"),
)];

const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

/// Submissions per multi-row INSERT (17 parameters each), well under SQLite's 32,766.
const INSERT_CHUNK: usize = 500;
/// Keys per `IN (…)` lookup.
const LOOKUP_CHUNK: usize = 500;

/// A SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn classify(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(ref db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens a database named by a `sqlite://PATH` URL.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options =
            SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Internal(e.to_string()))?;
        Self::open(options.get_filename()).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?;
        let applied = applied.unwrap_or(0);
        let newest = MIGRATIONS.last().map_or(0, |m| m.0);
        if applied > newest {
            return Err(StoreError::Internal(format!(
                "the database is at schema version {applied}, newer than this gateway knows ({newest}); upgrade the gateway"
            )));
        }
        for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, unixepoch())")
                .bind(version)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }
}

const SUMMARY_COLUMNS: &str = "seq, id, member, dataflow, ref_area, freq, time_period, revision, is_current, received_at, observation_count, envelope_digest";

fn summary(row: &SqliteRow) -> Result<SubmissionSummary, sqlx::Error> {
    Ok(SubmissionSummary {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        member: row.try_get("member")?,
        dataflow: row.try_get("dataflow")?,
        ref_area: row.try_get("ref_area")?,
        freq: row.try_get("freq")?,
        time_period: row.try_get("time_period")?,
        revision: row.try_get("revision")?,
        is_current: row.try_get("is_current")?,
        received_at_ms: row.try_get("received_at")?,
        observation_count: row.try_get("observation_count")?,
        envelope_digest: row.try_get("envelope_digest")?,
    })
}

fn date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, id, member, dataflow, ref_area, freq, time_period, revision, is_current, received_at, \
             observation_count, envelope_digest, envelope, signing_cert, receipt FROM submissions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|row| {
            Ok(StoredSubmission {
                summary: summary(&row)?,
                envelope: row.try_get("envelope")?,
                signing_cert: row.try_get("signing_cert")?,
                receipt: row.try_get("receipt")?,
            })
        })
        .transpose()
        .map_err(classify)
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before_seq: Option<i64>,
    ) -> Result<Vec<SubmissionSummary>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(SUMMARY_COLUMNS)
            .push(" FROM submissions WHERE 1 = 1");
        if let Some(member) = &filter.member {
            q.push(" AND member = ").push_bind(member.clone());
        }
        if let Some(ref_area) = &filter.ref_area {
            q.push(" AND ref_area = ").push_bind(ref_area.clone());
        }
        if let Some(dataflow) = filter.dataflow {
            q.push(" AND dataflow = ").push_bind(dataflow.id());
        }
        if let Some(from) = filter.starts_from {
            q.push(" AND period_start >= ").push_bind(date(from));
        }
        if let Some(until) = filter.ends_until {
            q.push(" AND period_end <= ").push_bind(date(until));
        }
        if filter.current_only {
            q.push(" AND is_current = 1");
        }
        if let Some(before) = before_seq {
            q.push(" AND seq < ").push_bind(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(LIST_PAGE));
        let rows = q.build().fetch_all(&self.pool).await.map_err(classify)?;
        rows.iter()
            .map(summary)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }
}

/// One batch's `BEGIN IMMEDIATE` transaction.
struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn receipts_by_payload(
        &mut self,
        payload_digests: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>, StoreError> {
        let mut found = HashMap::new();
        for chunk in payload_digests.chunks(LOOKUP_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT payload_digest, receipt FROM submissions WHERE payload_digest IN (",
            );
            let mut list = q.separated(", ");
            for d in chunk {
                list.push_bind(d.to_vec());
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *self.tx).await.map_err(classify)? {
                let digest: Vec<u8> = row.try_get(0).map_err(classify)?;
                let digest = <[u8; 32]>::try_from(digest.as_slice()).map_err(|_| {
                    StoreError::Internal("stored payload digest is not 32 bytes".into())
                })?;
                found.insert(digest, row.try_get(1).map_err(classify)?);
            }
        }
        Ok(found)
    }

    async fn current_revisions(
        &mut self,
        series: &[&SeriesKey],
    ) -> Result<HashMap<SeriesKey, u32>, StoreError> {
        let mut found = HashMap::new();
        for chunk in series.chunks(LOOKUP_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT ref_area, dataflow, time_period, revision FROM submissions \
                 WHERE is_current = 1 AND (ref_area, dataflow, time_period) IN (VALUES ",
            );
            push_series(&mut q, chunk);
            q.push(")");
            for row in q.build().fetch_all(&mut *self.tx).await.map_err(classify)? {
                let dataflow: String = row.try_get(1).map_err(classify)?;
                let key = SeriesKey {
                    ref_area: row.try_get(0).map_err(classify)?,
                    dataflow: Dataflow::from_id(&dataflow).ok_or_else(|| {
                        StoreError::Internal(format!("stored dataflow {dataflow}"))
                    })?,
                    time_period: row.try_get(2).map_err(classify)?,
                };
                found.insert(key, row.try_get(3).map_err(classify)?);
            }
        }
        Ok(found)
    }

    async fn insert(&mut self, records: &[SubmissionRecord<'_>]) -> Result<(), StoreError> {
        // 1. The series' current revisions become superseded.
        let mut series: Vec<&SeriesKey> = records.iter().map(|r| r.series).collect();
        series.sort_by(|a, b| {
            (&a.ref_area, a.dataflow.id(), &a.time_period).cmp(&(
                &b.ref_area,
                b.dataflow.id(),
                &b.time_period,
            ))
        });
        series.dedup();
        for chunk in series.chunks(LOOKUP_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE submissions SET is_current = 0 \
                 WHERE is_current = 1 AND (ref_area, dataflow, time_period) IN (VALUES ",
            );
            push_series(&mut q, chunk);
            q.push(")");
            q.build().execute(&mut *self.tx).await.map_err(classify)?;
        }

        // 2. The submissions, the last of each series current.
        let mut seqs: HashMap<String, i64> = HashMap::with_capacity(records.len());
        for (chunk_no, chunk) in records.chunks(INSERT_CHUNK).enumerate() {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO submissions (id, member, dataflow, ref_area, freq, time_period, period_start, \
                 period_end, revision, is_current, received_at, payload_digest, envelope_digest, envelope, \
                 signing_cert, receipt, observation_count) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut b, (i, r)| {
                let position = chunk_no * INSERT_CHUNK + i;
                let is_current = !records[position + 1..]
                    .iter()
                    .any(|later| later.series == r.series);
                b.push_bind(r.id.clone())
                    .push_bind(r.member.to_owned())
                    .push_bind(r.series.dataflow.id())
                    .push_bind(r.series.ref_area.clone())
                    .push_bind(r.freq)
                    .push_bind(r.series.time_period.clone())
                    .push_bind(date(r.period_start))
                    .push_bind(date(r.period_end))
                    .push_bind(r.revision)
                    .push_bind(is_current)
                    .push_bind(r.received_at_ms)
                    .push_bind(r.payload_digest.to_vec())
                    .push_bind(r.envelope_digest.to_vec())
                    .push_bind(r.envelope.to_vec())
                    .push_bind(r.signing_cert.to_vec())
                    .push_bind(r.receipt.to_vec())
                    .push_bind(r.observations.len() as i64);
            });
            q.push(" RETURNING id, seq");
            for row in q.build().fetch_all(&mut *self.tx).await.map_err(classify)? {
                seqs.insert(
                    row.try_get(0).map_err(classify)?,
                    row.try_get(1).map_err(classify)?,
                );
            }
        }

        // 3. Every observation of the batch in one statement.
        let rows = observation_rows_json(
            records
                .iter()
                .map(|r| (seqs.get(&r.id).copied().unwrap_or(0), r.observations)),
        )?;
        sqlx::query(
            "INSERT INTO observations (submission_seq, idx, drug, transport_mode, origin_area, departure_area, \
             transit_area, destination_area, unit_measure, n_seizures, quantity, obs_status, conf_status, \
             embargo_time, comment) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, \
             value->>8, value->>9, value->>10, value->>11, value->>12, value->>13, value->>14 FROM json_each(?)",
        )
        .bind(rows)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(classify)
    }
}

/// `(?, ?, ?), (?, ?, ?)…` for a list of series.
fn push_series(q: &mut QueryBuilder<Sqlite>, series: &[&SeriesKey]) {
    let mut list = q.separated(", ");
    for s in series {
        list.push("(")
            .push_bind_unseparated(s.ref_area.clone())
            .push_unseparated(", ")
            .push_bind_unseparated(s.dataflow.id())
            .push_unseparated(", ")
            .push_bind_unseparated(s.time_period.clone())
            .push_unseparated(")");
    }
}
