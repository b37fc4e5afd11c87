//! Statistics for analysts: aggregate queries and the access trail.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, Gateway};
use crate::receipt::{format_timestamp, now_ms};
use crate::{
    identity::{Caller, MemberId, Role},
    proto::{
        AccessRecord as ProtoAccessRecord, AggregateQuery, ListAccessTrailRequest, aggregate_query,
    },
    receipt::timestamp_from_millis,
    schema::{Rule, Violation, structure::time_range},
    statistics::{self, AsOf, Cell, Cells, Index, Query, Thresholds, Viewer},
    store::{AccessRecord, IndexedSubmission, StoreError, StoredCheckpoint},
    tlog::{self, TreeSize},
};

/// Submissions read from the store per refresh step.
const REFRESH_PAGE: u32 = 2_000;
/// Most access records per call.
const TRAIL_PAGE: u32 = 1_000;

/// Most access records committed together.
const TRAIL_BATCH: usize = 256;

/// Writes access records in groups: the queries that finish while one commit is under way share
/// the next, so a busy day of queries costs the store a few durable commits a second, not one
/// per query. Each query still waits until its own record is durable.
pub struct Trail {
    records: tokio::sync::mpsc::Sender<(AccessRecord, Recorded)>,
}

/// Where a query learns that its record is durable.
type Recorded = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

impl Trail {
    /// Starts the writer over `store`; it ends once every handle is gone.
    pub fn start(store: Arc<dyn crate::store::AccessTrail>) -> Self {
        let (records, mut rx) = tokio::sync::mpsc::channel(TRAIL_BATCH * 4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(TRAIL_BATCH);
            while rx.recv_many(&mut batch, TRAIL_BATCH).await > 0 {
                let (records, replies): (Vec<AccessRecord>, Vec<Recorded>) =
                    std::mem::take(&mut batch).into_iter().unzip();
                let result = store.record_access(records).await;
                for reply in replies {
                    let _ = reply.send(result.clone());
                }
            }
        });
        Self { records }
    }

    /// Records one query, durably.
    pub async fn record(&self, record: AccessRecord) -> Result<(), StoreError> {
        let closed = || StoreError::Unavailable("the gateway is shutting down".into());
        let (reply, done) = tokio::sync::oneshot::channel();
        self.records
            .send((record, reply))
            .await
            .map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }
}

/// The statistics index shared by all queries, the lock that makes refreshes single-flight,
/// and the room expensive work is admitted into.
pub struct StatisticsState {
    /// The index as of the last refresh. A query takes this snapshot and works on it without
    /// a lock: a refresh never waits for a long query, and a query never waits for a refresh
    /// other than its own.
    index: Arc<RwLock<Arc<Index>>>,
    /// Where queries are recorded.
    pub trail: Trail,
    /// Held by the one refresh under way: the log size the index is known to hold every
    /// submission of, and the store order of the last submission it holds.
    covered: tokio::sync::Mutex<(u64, i64)>,
    /// How many aggregate queries and downloads run at once.
    pub admission: Admission,
}

impl StatisticsState {
    /// An empty index; [`refresh`](Self::refresh) fills it. Queries are recorded in `store`
    /// and admitted into `admission`.
    pub fn new(
        index: Index,
        store: Arc<dyn crate::store::AccessTrail>,
        admission: Admission,
    ) -> Self {
        let last_seq = index.last_seq;
        Self {
            index: Arc::new(RwLock::new(Arc::new(index))),
            trail: Trail::start(store),
            covered: tokio::sync::Mutex::new((0, last_seq)),
            admission,
        }
    }

    /// Makes the index hold every submission of the log of `size` entries: reads what the
    /// store gained since the index last looked, unless a refresh already covered that size.
    /// Queries waiting on one refresh then mostly find their size covered, and cost the store
    /// nothing: the work is proportional to what was submitted, not to how often it is asked.
    /// The index is extended on `slot`'s thread (off the runtime in any case).
    pub async fn refresh(
        &self,
        store: &dyn crate::store::Store,
        size: u64,
        slot: Option<&Slot>,
    ) -> Result<(), StoreError> {
        let mut covered = self.covered.lock().await;
        if covered.0 >= size {
            return Ok(());
        }
        // A submission and its log entry are committed together: everything logged up to this
        // size is in the store before the reads below. A page that is not full is all there
        // was when it was read, so it ends the refresh: under a steady stream of submissions,
        // reading until nothing at all is new would chase the writers one small page at a time.
        let logged = store.log_size().await?;
        loop {
            let batch = store.submissions_since(covered.1, REFRESH_PAGE).await?;
            let caught_up = batch.len() < REFRESH_PAGE as usize;
            let index = self.index.clone();
            let work = move || extend(&index, batch);
            covered.1 = match slot {
                Some(slot) => slot
                    .run(work)
                    .await
                    .map_err(|e| StoreError::Failed(e.to_string()))?,
                None => tokio::task::spawn_blocking(work)
                    .await
                    .map_err(|e| StoreError::Failed(format!("index task: {e}")))?,
            };
            if caught_up {
                covered.0 = logged.max(covered.0);
                return Ok(());
            }
        }
    }

    /// The index as of the last refresh (blocking: call it off the runtime).
    fn snapshot(&self) -> Arc<Index> {
        snapshot(&self.index)
    }
}

fn snapshot(slot: &RwLock<Arc<Index>>) -> Arc<Index> {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Adds `batch` to the index in `slot`; returns the store order of the last submission held.
/// In place when no query holds the index, else into a copy that replaces it, so that the
/// queries under way keep the snapshot they started on.
fn extend(slot: &RwLock<Arc<Index>>, batch: Vec<IndexedSubmission>) -> i64 {
    {
        let mut held = slot.write().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = Arc::get_mut(&mut held) {
            index.extend(batch);
            return index.last_seq;
        }
    }
    let mut next = Index::clone(&snapshot(slot));
    next.extend(batch);
    let last = next.last_seq;
    *slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    last
}

/// Room for expensive statistics work (aggregate queries and downloads, over every surface):
/// at most so many at once in all, and fewer for any one member. One waits up to a short
/// time for room, and is then refused as busy, so that one member's burst neither fills the
/// gateway's memory nor keeps everyone else's queries waiting.
///
/// Each slot has its own thread, on which the work admitted into it runs, off the async
/// runtime: the memory a heavy answer needs is taken and given back on the same few threads,
/// so that the allocator's per-thread pools hold at most one answer's worth each, and the
/// busiest member's work reuses the first slot's.
pub struct Admission {
    total: Arc<Semaphore>,
    per_member: usize,
    members: Mutex<HashMap<MemberId, Arc<Semaphore>>>,
    wait: Duration,
    workers: Vec<Worker>,
    /// Which slots' workers are free.
    free: Arc<Mutex<Vec<bool>>>,
}

/// Room held by one query or download until it is dropped (its answer sent, or abandoned),
/// and the thread its work runs on.
pub struct Slot {
    worker: Worker,
    index: usize,
    free: Arc<Mutex<Vec<bool>>>,
    _member: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Before the permits (dropped after this): a slot admitted next finds its worker free.
        self.free.lock().unwrap_or_else(|p| p.into_inner())[self.index] = true;
    }
}

impl Slot {
    /// Runs `f` on this slot's thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.worker.run(f).await
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs statistics work, one job at a time.
#[derive(Clone)]
pub struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Worker {
    fn start(name: String) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
        Ok(Self { jobs })
    }

    /// Runs `f` on this thread, and gives back what it returns.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        });
        let gone = || ApiError::Internal("the statistics worker has stopped".into());
        self.jobs.send(job).map_err(|_| gone())?;
        match rx.await.map_err(|_| gone())? {
            Ok(v) => Ok(v),
            Err(_) => Err(ApiError::Internal("a statistics task panicked".into())),
        }
    }
}

impl Admission {
    /// At most `total` at once, `per_member` of them one member's; each waits up to `wait`.
    /// Starts a thread per slot.
    pub fn new(total: usize, per_member: usize, wait: Duration) -> std::io::Result<Self> {
        let total = total.max(1);
        let workers = (0..total)
            .map(|i| Worker::start(format!("statistics-{i}")))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            total: Arc::new(Semaphore::new(total)),
            per_member: per_member.clamp(1, total),
            members: Mutex::new(HashMap::new()),
            wait,
            workers,
            free: Arc::new(Mutex::new(vec![true; total])),
        })
    }

    /// Room for one more query of `member`, or [`ApiError::Busy`] after waiting for it.
    pub async fn admit(&self, member: &MemberId) -> Result<Slot, ApiError> {
        let mine = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(member.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_member)))
            .clone();
        let deadline = tokio::time::Instant::now() + self.wait;
        let retry_after = self.wait.max(Duration::from_secs(1));
        let Ok(Ok(member_slot)) = tokio::time::timeout_at(deadline, mine.acquire_owned()).await
        else {
            return Err(ApiError::Busy {
                why: format!(
                    "member {member} has {} statistics queries or downloads under way, the most \
                     one member may have at once; ask again when one has ended",
                    self.per_member
                ),
                retry_after,
            });
        };
        let total = self.total.clone();
        let Ok(Ok(total_slot)) = tokio::time::timeout_at(deadline, total.acquire_owned()).await
        else {
            return Err(ApiError::Busy {
                why: format!(
                    "the gateway is answering {} statistics queries and downloads, the most it \
                     runs at once; ask again shortly",
                    self.workers.len()
                ),
                retry_after,
            });
        };
        // A permit held is a worker free: the first, so that work stays on few threads.
        let index = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            let index = free.iter().position(|f| *f).ok_or_else(|| {
                ApiError::Internal("a statistics slot without a free worker".into())
            })?;
            free[index] = false;
            index
        };
        Ok(Slot {
            worker: self.workers[index].clone(),
            index,
            free: self.free.clone(),
            _member: member_slot,
            _total: total_slot,
        })
    }
}

impl Gateway {
    /// The tree size an answer reflects, and its checkpoint. A time to come is refused: the
    /// checkpoint in force then is not known yet, and the same question asked again later
    /// would get another answer.
    async fn tree(&self, as_of: AsOf) -> Result<(u64, Option<StoredCheckpoint>), ApiError> {
        let asked = match as_of {
            AsOf::Latest => TreeSize::Latest,
            AsOf::TreeSize(n) => TreeSize::Signed(n),
            AsOf::Time(ms) if ms > now_ms() => {
                return Err(ApiError::Invalid(vec![Violation::new(
                    "as_of_time",
                    Rule::OutOfRange,
                    format!(
                        "{} is in the future: the checkpoint in force then is not known yet; \
                         ask for a time that has passed, or for the latest",
                        format_timestamp(&timestamp_from_millis(ms)).unwrap_or_default()
                    ),
                )]));
            }
            AsOf::Time(ms) => TreeSize::AsOfTime(ms),
        };
        tlog::resolve(&*self.store, asked)
            .await
            .map_err(|e| ApiError::size("as_of_tree_size", e))
    }

    /// An aggregate query by `caller` (analyst or submitter): the answer's header, then its
    /// cells a page at a time ([`Aggregates::next_page`]), those `keep` keeps, in `window`.
    /// The query waits for room ([`Admission`]); the index is brought up to the tree size it
    /// reflects; it is aggregated off the runtime; the access record (the rows the window
    /// holds) is durable before this returns. The room is held until the answer is dropped.
    pub async fn query(
        &self,
        caller: &Caller,
        request: &AggregateQuery,
        keep: KeepCells,
        window: Window,
    ) -> Result<Aggregates, ApiError> {
        let g = self;
        may_read_statistics(caller)?;
        let query = Query::from_request(request, &g.lists).map_err(ApiError::Invalid)?;
        let slot = g.statistics.admission.admit(caller.member()).await?;
        let (size, checkpoint) = self.tree(query.as_of).await?;
        g.statistics.refresh(&*g.store, size, Some(&slot)).await?;

        let now_ms = now_ms();
        let (state, directory, member, thresholds) = (
            g.statistics.clone(),
            g.directory(),
            caller.member().clone(),
            g.thresholds,
        );
        let checkpoint = checkpoint.map(|c| c.note).unwrap_or_default();
        let (header, cells) = slot
            .run(move || {
                let index = state.snapshot();
                let answer = as_viewer(&directory, &member, |viewer| {
                    statistics::aggregate(&index, &query, size, now_ms, viewer, thresholds)
                })?;
                drop(index);
                let header = AnswerHeader {
                    dimensions: answer
                        .dimensions
                        .iter()
                        .map(|d| d.id().to_owned())
                        .collect(),
                    freq: answer.freq.map(|f| f.code().to_owned()).unwrap_or_default(),
                    time_range: answer
                        .span
                        .map(|(start, end)| time_range(start, end))
                        .unwrap_or_default(),
                    tree_size: size,
                    checkpoint,
                    thresholds,
                    computed_at_ms: now_ms,
                    rows: 0,
                    suppressed: 0,
                };
                let cells = answer.cells;
                let mut selected: Vec<u32> = match keep {
                    Some(keep) => {
                        let keep = keep(&header);
                        (0..cells.len())
                            .filter(|&i| keep(&cells.get(i)))
                            .map(|i| i as u32)
                            .collect()
                    }
                    None => (0..cells.len() as u32).collect(),
                };
                window.cut(&mut selected);
                let header = AnswerHeader {
                    rows: selected.len() as u64,
                    suppressed: selected
                        .iter()
                        .filter(|&&i| cells.suppressed(i as usize))
                        .count() as u64,
                    ..header
                };
                let cells = Selected {
                    cells,
                    order: selected,
                    next: 0,
                };
                Ok::<_, Violation>((header, cells))
            })
            .await?
            .map_err(|v| ApiError::Invalid(vec![v]))?;

        // The trail first: no answer leaves without its record.
        g.statistics
            .trail
            .record(AccessRecord {
                id: 0,
                at_ms: now_ms,
                member: caller.member().to_string(),
                method: "Query".into(),
                request: describe_window(request, None, false, window),
                tree_size: size,
                rows: u32::try_from(header.rows).unwrap_or(u32::MAX),
                suppressed: u32::try_from(header.suppressed).unwrap_or(u32::MAX),
            })
            .await?;
        Ok(Aggregates {
            header,
            cells,
            slot,
        })
    }

    /// The observations themselves, as submitted, for `caller` (analyst or submitter): of each
    /// series the revision that counts at the query's tree size (with `history`, every
    /// revision in that tree), of those revised after `updated_after_ms`, of the reporters the
    /// caller may see, with others' confidential and embargoed values left out
    /// ([`statistics::observations()`]), and of those the ones `keep` keeps, in `window`.
    /// `request`'s grouping, roll-up, totals and top-N do not apply. The access record (method
    /// `Observations`, with the count the window holds and the window itself) is durable
    /// before this returns; the observations are then read a page at a time from the returned
    /// [`Download`].
    pub async fn download(
        &self,
        caller: &Caller,
        request: &AggregateQuery,
        updated_after_ms: Option<i64>,
        history: bool,
        keep: Keep,
        window: Window,
    ) -> Result<Download, ApiError> {
        let g = self;
        may_read_statistics(caller)?;
        let query = Query::from_request(request, &g.lists).map_err(ApiError::Invalid)?;
        let slot = g.statistics.admission.admit(caller.member()).await?;
        let (size, checkpoint) = self.tree(query.as_of).await?;
        // Revised after a time: logged after the checkpoint in force then (so that no revision
        // logged after it is missed). A time to come has the latest in force: nothing is new
        // yet, and a client whose clock runs ahead is not refused.
        let since = match updated_after_ms {
            Some(ms) => {
                tlog::resolve(&*self.store, TreeSize::AsOfTime(ms))
                    .await
                    .map_err(|e| ApiError::size("updated_after", e))?
                    .0
            }
            None => 0,
        };
        g.statistics.refresh(&*g.store, size, Some(&slot)).await?;
        let mut download = Download {
            tree_size: size,
            checkpoint: checkpoint.map(|c| c.note).unwrap_or_default(),
            total: 0,
            state: g.statistics.clone(),
            directory: g.directory(),
            member: caller.member().clone(),
            query,
            revisions: statistics::Revisions { since, history },
            now_ms: now_ms(),
            keep,
            skip: window.offset,
            left: 0,
            next: Some(0),
            slot,
        };
        // Counted first, so that the record says what the answer holds before any of it leaves.
        let available = download.count().await?;
        download.total = window.rows(available);
        download.left = download.total;
        g.statistics
            .trail
            .record(AccessRecord {
                id: 0,
                at_ms: download.now_ms,
                member: caller.member().to_string(),
                method: "Observations".into(),
                request: describe_window(request, updated_after_ms, history, window),
                tree_size: size,
                rows: u32::try_from(download.total).unwrap_or(u32::MAX),
                suppressed: 0,
            })
            .await?;
        Ok(download)
    }

    /// The access trail, newest first, for auditors and admins.
    pub async fn access_trail(
        &self,
        caller: &Caller,
        request: &ListAccessTrailRequest,
    ) -> Result<Vec<ProtoAccessRecord>, ApiError> {
        if !caller.has(Role::Auditor) && !caller.has(Role::Admin) {
            return Err(ApiError::PermissionDenied(format!(
                "member {} may not read the access trail",
                caller.member()
            )));
        }
        let limit = match request.limit {
            0 => TRAIL_PAGE,
            n => n.min(TRAIL_PAGE),
        };
        let before = (request.before_id > 0).then_some(request.before_id as i64);
        let records = self.store.access_trail(before, limit).await?;
        Ok(records
            .into_iter()
            .map(|r| ProtoAccessRecord {
                id: r.id as u64,
                at: Some(timestamp_from_millis(r.at_ms)),
                member: r.member,
                method: r.method,
                request: r.request,
                tree_size: r.tree_size,
                rows: r.rows,
                suppressed: r.suppressed,
            })
            .collect())
    }
}

/// Runs `f` for `member` as the statistics see it: its country, and the reporters whose
/// country-level figures the policy of `directory` shares with it.
fn as_viewer<T>(
    directory: &crate::identity::Directory,
    member: &MemberId,
    f: impl FnOnce(&Viewer<'_>) -> T,
) -> T {
    let may_see = |reporter: &str| directory.policy.may_see(member, reporter);
    f(&Viewer {
        country: member.country(),
        may_see: &may_see,
    })
}

/// Analysts, and submitters for what they may see, read statistics.
fn may_read_statistics(caller: &Caller) -> Result<(), ApiError> {
    if caller.has(Role::Analyst) || caller.has(Role::Submitter) {
        return Ok(());
    }
    Err(ApiError::PermissionDenied(format!(
        "member {} may not query statistics",
        caller.member()
    )))
}

/// Most cells of an aggregate answer handed out at once.
pub const ANSWER_PAGE: usize = 2_000;

/// What an aggregate answer is of: the query's grouping, the tree size and checkpoint it was
/// computed at, and how many cells it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerHeader {
    /// The group-by dimensions (SDMX ids), in key order.
    pub dimensions: Vec<String>,
    /// The frequency of the series combined (its code; empty when nothing was selected).
    pub freq: String,
    /// The periods that contributed, as an SDMX time range (empty when none did).
    pub time_range: String,
    /// The tree size the answer reflects.
    pub tree_size: u64,
    /// The signed checkpoint of that size (empty for an empty log).
    pub checkpoint: String,
    /// The suppression thresholds applied.
    pub thresholds: Thresholds,
    /// When it was computed, Unix milliseconds.
    pub computed_at_ms: i64,
    /// Cells in the answer (its window's).
    pub rows: u64,
    /// Of those, the suppressed ones.
    pub suppressed: u64,
}

/// An aggregate answer: its header, then its cells, sorted by key and unit, totals last,
/// handed out a page at a time so that an adapter writes each page before it builds the
/// next. Holds its room among the queries under way until dropped.
pub struct Aggregates {
    /// What it is of.
    pub header: AnswerHeader,
    cells: Selected,
    slot: Slot,
}

/// The cells of an answer the window holds, in the order they are handed out.
struct Selected {
    cells: Cells,
    order: Vec<u32>,
    /// How many were handed out.
    next: usize,
}

impl Aggregates {
    /// The thread the answer's work runs on: its pages are best written there too.
    pub fn worker(&self) -> Worker {
        self.slot.worker.clone()
    }

    /// Puts the cells not yet handed out in the order `f` sorts them into (an adapter's
    /// order of writing, such as SDMX-ML's series together), given their places in `cells`.
    pub fn arrange(&mut self, f: impl FnOnce(&Cells, &mut [u32])) {
        let s = &mut self.cells;
        f(&s.cells, &mut s.order[s.next..]);
    }

    /// The next cells (at most [`ANSWER_PAGE`]), written out; `None` once every one was
    /// handed out.
    pub fn next_page(&mut self) -> Option<Vec<Cell>> {
        let s = &mut self.cells;
        let end = (s.next + ANSWER_PAGE).min(s.order.len());
        let page: Vec<Cell> = s.order[s.next..end]
            .iter()
            .map(|&i| s.cells.get(i as usize))
            .collect();
        s.next = end;
        (!page.is_empty()).then_some(page)
    }
}

/// Which cells of an aggregate answer an adapter keeps (a selection the query cannot
/// express, such as an exact transit path), made from the answer's header; `None` keeps
/// every one. Run off the runtime, before the window is cut.
pub type KeepCells =
    Option<Box<dyn FnOnce(&AnswerHeader) -> Box<dyn Fn(&Cell) -> bool + Send> + Send>>;

/// Which observations of a download an adapter keeps (a selection the query cannot express,
/// such as an exact transit path).
/// `None` keeps every one.
pub type Keep = Option<Arc<dyn Fn(&statistics::observations::Observation) -> bool + Send + Sync>>;

/// Most observations read in one page of a download.
pub const DOWNLOAD_PAGE: usize = 2_000;

/// Which observations of a download are sent: `limit` of them (all when `None`) after the
/// first `offset` (SDMX REST `offset` and `limit`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Observations skipped first.
    pub offset: u64,
    /// Most observations sent.
    pub limit: Option<u64>,
}

impl Window {
    /// How many of `available` observations the window holds.
    pub fn rows(self, available: u64) -> u64 {
        let after = available.saturating_sub(self.offset);
        self.limit.map_or(after, |l| l.min(after))
    }

    /// Keeps of `items` those the window holds.
    fn cut<T>(self, items: &mut Vec<T>) {
        let rows = usize::try_from(self.rows(items.len() as u64)).unwrap_or(usize::MAX);
        let skip = usize::try_from(self.offset)
            .unwrap_or(usize::MAX)
            .min(items.len());
        items.drain(..skip);
        items.truncate(rows);
    }

    fn is_whole(self) -> bool {
        self == Self::default()
    }
}

/// A download under way: the observations of its window at one tree size, read a page at a
/// time ([`next_page`](Self::next_page)).
pub struct Download {
    /// The tree size the observations are those of.
    pub tree_size: u64,
    /// The signed checkpoint of that size.
    pub checkpoint: String,
    /// How many observations it sends (its window's).
    pub total: u64,
    state: Arc<StatisticsState>,
    directory: Arc<crate::identity::Directory>,
    member: crate::identity::MemberId,
    query: Query,
    /// Which revisions.
    revisions: statistics::Revisions,
    now_ms: i64,
    keep: Keep,
    /// Observations of the window's offset still to skip.
    skip: u64,
    /// Observations still to send.
    left: u64,
    /// Where the next page is read from (`None`: the index is read to its end).
    next: Option<usize>,
    /// Its room among the queries under way, until it is dropped.
    slot: Slot,
}

impl Download {
    /// The next observations of the window, a page of the index at a time (a page never
    /// splits a submission, unless the window does); `None` once the window is sent.
    pub async fn next_page(
        &mut self,
    ) -> Result<Option<Vec<statistics::observations::Observation>>, ApiError> {
        while self.left > 0
            && let Some(at) = self.next
        {
            let page = self.page(at).await?;
            self.next = page.next;
            let mut observations = page.observations;
            let skipped = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(observations.len());
            observations.drain(..skipped);
            self.skip -= skipped as u64;
            observations.truncate(usize::try_from(self.left).unwrap_or(usize::MAX));
            self.left -= observations.len() as u64;
            if !observations.is_empty() {
                return Ok(Some(observations));
            }
        }
        Ok(None)
    }

    /// The page from position `from` (0 first); its `next` is where the following one starts.
    async fn page(&self, from: usize) -> Result<statistics::Page, ApiError> {
        let keep = self.keep.clone();
        let (size, now_ms, revisions) = (self.tree_size, self.now_ms, self.revisions);
        self.read(move |index, query, viewer| {
            let mut page = statistics::observations(
                index,
                query,
                size,
                now_ms,
                viewer,
                revisions,
                from,
                DOWNLOAD_PAGE,
            );
            if let Some(keep) = keep {
                page.observations.retain(|o| keep(o));
            }
            page
        })
        .await
    }

    /// How many observations the pages hold in all: counted in the index when every one is
    /// kept, else read page by page.
    async fn count(&self) -> Result<u64, ApiError> {
        if self.keep.is_none() {
            let (size, now_ms, revisions) = (self.tree_size, self.now_ms, self.revisions);
            return self
                .read(move |index, query, viewer| {
                    statistics::observations::count(index, query, size, now_ms, viewer, revisions)
                })
                .await;
        }
        let mut total = 0;
        let mut from = Some(0);
        while let Some(at) = from {
            let page = self.page(at).await?;
            total += page.observations.len() as u64;
            from = page.next;
        }
        Ok(total)
    }

    /// Runs `f` on the index, off the runtime, for this download's caller.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&statistics::Index, &Query, &Viewer<'_>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (state, directory, member, query) = (
            self.state.clone(),
            self.directory.clone(),
            self.member.clone(),
            self.query.clone(),
        );
        self.slot
            .run(move || {
                let index = state.snapshot();
                as_viewer(&directory, &member, |viewer| f(&index, &query, viewer))
            })
            .await
    }
}

/// A query or download as the trail records it: its query, the time it asks for revisions
/// since, whether it asks for every revision, and its window.
fn describe_window(
    q: &AggregateQuery,
    updated_after_ms: Option<i64>,
    history: bool,
    window: Window,
) -> String {
    let text = describe(q);
    if updated_after_ms.is_none() && !history && window.is_whole() {
        return text;
    }
    let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str(&text) else {
        return text;
    };
    if let Some(ms) = updated_after_ms {
        m.insert("updated_after_ms".into(), ms.into());
    }
    if history {
        m.insert("include_history".into(), true.into());
    }
    if window.offset > 0 {
        m.insert("offset".into(), window.offset.into());
    }
    if let Some(limit) = window.limit {
        m.insert("limit".into(), limit.into());
    }
    serde_json::Value::Object(m).to_string()
}

/// The query as the trail records it: every field that was set, as JSON, in a canonical form —
/// codes upper-cased, sorted and named once. Only a query that passed
/// [`Query::from_request`] is described, so every value is a known code or period and every
/// list is no longer than its code list: the record is bounded whatever the request's size.
fn describe(q: &AggregateQuery) -> String {
    let mut m = serde_json::Map::new();
    let mut text = |name: &str, v: &str| {
        if !v.is_empty() {
            m.insert(name.into(), v.into());
        }
    };
    text("dataflow", &q.dataflow);
    text("freq", &q.freq);
    text("rollup", &q.rollup);
    text("period_from", &q.period_from);
    text("period_to", &q.period_to);
    for (name, values) in [
        ("ref_area", &q.ref_area),
        ("drug", &q.drug),
        ("transport_mode", &q.transport_mode),
        ("origin_area", &q.origin_area),
        ("transit_area", &q.transit_area),
        ("destination_area", &q.destination_area),
        ("obs_status", &q.obs_status),
        ("unit_measure", &q.unit_measure),
        ("group_by", &q.group_by),
    ] {
        if !values.is_empty() {
            let canonical: std::collections::BTreeSet<String> = values
                .iter()
                .map(|v| v.trim().to_ascii_uppercase())
                .collect();
            m.insert(
                name.into(),
                canonical.into_iter().collect::<Vec<_>>().into(),
            );
        }
    }
    if q.totals {
        m.insert("totals".into(), true.into());
    }
    if q.top_n > 0 {
        m.insert("top_n".into(), q.top_n.into());
    }
    match &q.as_of {
        Some(aggregate_query::AsOf::AsOfTreeSize(n)) => {
            m.insert("as_of_tree_size".into(), (*n).into());
        }
        Some(aggregate_query::AsOf::AsOfTime(t)) => {
            m.insert("as_of_time".into(), t.seconds.into());
        }
        None => {}
    }
    serde_json::Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(m: &str) -> MemberId {
        MemberId::parse(m).expect("a member id")
    }

    fn busy_with(r: Result<Slot, ApiError>) -> String {
        match r {
            Err(ApiError::Busy { why, retry_after }) => {
                assert!(retry_after >= Duration::from_secs(1));
                why
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("admitted beyond the capacity"),
        }
    }

    /// A member's share is refused once full whatever room is left, others still get in;
    /// the total is refused once full; room given back is room for the next.
    #[tokio::test]
    async fn a_members_share_and_the_total_are_each_bounded() {
        let a = Admission::new(2, 1, Duration::from_millis(50)).unwrap();
        let (kaz, uzb, tjk) = (member("KAZ:nfp"), member("UZB:nfp"), member("TJK:nfp"));
        let first = a.admit(&kaz).await.unwrap();
        assert!(busy_with(a.admit(&kaz).await).contains("member KAZ:nfp"));
        let second = a.admit(&uzb).await.unwrap();
        assert!(busy_with(a.admit(&tjk).await).contains("the gateway is answering 2"));
        drop(first);
        let _third = a.admit(&tjk).await.unwrap();
        drop(second);
        let _fourth = a.admit(&kaz).await.unwrap();
    }

    /// One waiting for room gets it as soon as it is given back, within its wait.
    #[tokio::test]
    async fn a_query_waits_for_room_given_back() {
        let a = Arc::new(Admission::new(1, 1, Duration::from_secs(30)).unwrap());
        let held = a.admit(&member("KAZ:nfp")).await.unwrap();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.admit(&member("UZB:nfp")).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        waiting.await.unwrap().unwrap();
    }
}
