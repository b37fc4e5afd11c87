//! The embedded SQLite store: one file, WAL, `synchronous = FULL` so that a commit is on disk
//! before it returns, and `BEGIN IMMEDIATE` write transactions so writers never deadlock.

use std::{path::Path, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    QueryBuilder, Row, Sqlite, SqlitePool, Transaction,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
};
use time::{Date, format_description::BorrowedFormatItem, macros::format_description};

use super::{
    LIST_PAGE, ListFilter, SeriesKey, Store, StoreError, StoredSubmission, SubmissionRecord,
    SubmissionSummary, WriteTx,
};

/// Migrations, applied in order, each once: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "submissions",
    include_str!("migrations/sqlite/0001_submissions.sql"),
)];

const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

/// Rows per multi-row INSERT, well under SQLite's 32,766 bound parameters.
const INSERT_CHUNK: usize = 1_000;

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
    async fn receipt_by_payload(
        &mut self,
        payload_digest: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT receipt FROM submissions WHERE payload_digest = ?")
            .bind(&payload_digest[..])
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(classify)
    }

    async fn current_revision(&mut self, series: &SeriesKey) -> Result<u32, StoreError> {
        let rev: Option<u32> = sqlx::query_scalar(
            "SELECT revision FROM submissions WHERE ref_area = ? AND dataflow = ? AND time_period = ? AND is_current = 1",
        )
        .bind(&series.ref_area)
        .bind(series.dataflow.id())
        .bind(&series.time_period)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(rev.unwrap_or(0))
    }

    async fn insert(&mut self, r: &SubmissionRecord<'_>) -> Result<(), StoreError> {
        let s = &r.series;
        sqlx::query(
            "UPDATE submissions SET is_current = 0 WHERE ref_area = ? AND dataflow = ? AND time_period = ? AND is_current = 1",
        )
        .bind(&s.ref_area)
        .bind(s.dataflow.id())
        .bind(&s.time_period)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO submissions (id, member, dataflow, ref_area, freq, time_period, period_start, period_end, \
             revision, is_current, received_at, payload_digest, envelope_digest, envelope, signing_cert, receipt, \
             observation_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(&r.id)
        .bind(r.member)
        .bind(s.dataflow.id())
        .bind(&s.ref_area)
        .bind(r.freq)
        .bind(&s.time_period)
        .bind(date(r.period_start))
        .bind(date(r.period_end))
        .bind(r.revision)
        .bind(r.received_at_ms)
        .bind(&r.payload_digest[..])
        .bind(&r.envelope_digest[..])
        .bind(r.envelope)
        .bind(r.signing_cert)
        .bind(r.receipt)
        .bind(r.observations.len() as i64)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(classify)?;

        for (chunk_no, chunk) in r.observations.chunks(INSERT_CHUNK).enumerate() {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO observations (submission_seq, idx, drug, transport_mode, origin_area, departure_area, \
                 transit_area, destination_area, unit_measure, n_seizures, quantity, obs_status, conf_status, \
                 embargo_time, comment) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut b, (i, o)| {
                let transit = (!o.transit_area.is_empty()).then(|| o.transit_area.join(";"));
                b.push_bind(seq)
                    .push_bind((chunk_no * INSERT_CHUNK + i) as i64)
                    .push_bind(o.drug.clone())
                    .push_bind(o.transport_mode.clone())
                    .push_bind(o.origin_area.clone())
                    .push_bind(o.departure_area.clone())
                    .push_bind(transit)
                    .push_bind(o.destination_area.clone())
                    .push_bind(o.unit_measure.clone())
                    // Validation bounds counts far below i64::MAX.
                    .push_bind(o.n_seizures.map(|n| n as i64))
                    .push_bind(o.quantity.map(|q| q.millionths()))
                    .push_bind(o.obs_status.clone())
                    .push_bind(o.conf_status.clone())
                    .push_bind(
                        o.embargo_time
                            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
                    )
                    .push_bind(o.comment.clone());
            });
            q.build().execute(&mut *self.tx).await.map_err(classify)?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(classify)
    }
}
