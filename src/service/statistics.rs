//! `focalgate.v1.Statistics`: aggregate queries and the access trail (translation only; see
//! [`crate::app::statistics`]).

use std::{sync::Arc, time::Duration};

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    app::{
        Gateway,
        statistics::{AnswerHeader, Window},
    },
    proto::{
        AccessRecord, AggregateQuery, AggregateRow, ListAccessTrailRequest, QueryHeader,
        QueryResponse, query_response::Item,
    },
    receipt::timestamp_from_millis,
    rpc::statistics_server::Statistics,
    schema::format_millionths,
    statistics::Cell,
};

/// Longest a client may leave a page of its answer unread before the answer is abandoned
/// (and its room among the queries under way given back).
pub(super) const SEND_DEADLINE: Duration = Duration::from_secs(60);

fn header(h: AnswerHeader) -> QueryResponse {
    QueryResponse {
        item: Some(Item::Header(QueryHeader {
            dimensions: h.dimensions,
            freq: h.freq,
            time_range: h.time_range,
            tree_size: h.tree_size,
            checkpoint: h.checkpoint,
            min_seizures: h.thresholds.min_seizures as u32,
            min_reporters: h.thresholds.min_reporters,
            computed_at: Some(timestamp_from_millis(h.computed_at_ms)),
        })),
    }
}

/// A cell of an answer as the wire carries it: the one conversion, for gRPC and SDMX alike.
pub(super) fn aggregate_row(c: Cell) -> AggregateRow {
    AggregateRow {
        key: c.key,
        unit_measure: c.unit_measure,
        quantity: c.quantity.map(format_millionths).unwrap_or_default(),
        n_seizures: c.n_seizures,
        n_reporters: c.n_reporters,
        obs_status: c.obs_status,
        conf_status: c.conf_status,
        total: c.total,
    }
}

fn row(c: Cell) -> QueryResponse {
    QueryResponse {
        item: Some(Item::Row(aggregate_row(c))),
    }
}

/// The Statistics service.
pub struct StatisticsService {
    gateway: Arc<Gateway>,
}

impl StatisticsService {
    pub(super) fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

#[tonic::async_trait]
impl Statistics for StatisticsService {
    type QueryStream = ReceiverStream<Result<QueryResponse, Status>>;

    /// The header, then the rows, converted and sent a page at a time as the client reads.
    async fn query(
        &self,
        request: Request<AggregateQuery>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let query = request.get_ref();
        let mut answer = self
            .gateway
            .handle("Query", &request, |caller| async move {
                let whole = Window::default();
                self.gateway.query(&caller, query, None, whole).await
            })
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(crate::app::statistics::ANSWER_PAGE);
        let first = header(answer.header.clone());
        tokio::spawn(async move {
            if tx.send_timeout(Ok(first), SEND_DEADLINE).await.is_err() {
                return;
            }
            let worker = answer.worker();
            loop {
                // A page written out on the answer's worker, then sent.
                let step = worker
                    .run(move || {
                        let rows = answer.next_page().map(|p| p.into_iter().map(row).collect());
                        (answer, rows)
                    })
                    .await;
                let rows: Vec<QueryResponse> = match step {
                    Ok((rest, Some(rows))) => {
                        answer = rest;
                        rows
                    }
                    Ok((_, None)) => return,
                    Err(e) => {
                        tracing::error!(error = %e, "Query answer failed midway");
                        let _ = tx.send(Err(Status::internal("internal error"))).await;
                        return;
                    }
                };
                for r in rows {
                    if tx.send_timeout(Ok(r), SEND_DEADLINE).await.is_err() {
                        return; // the client went away, or stopped reading
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ListAccessTrailStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<AccessRecord, Status>>>;

    async fn list_access_trail(
        &self,
        request: Request<ListAccessTrailRequest>,
    ) -> Result<Response<Self::ListAccessTrailStream>, Status> {
        let trail = request.get_ref();
        let items = self
            .gateway
            .handle("ListAccessTrail", &request, |caller| async move {
                self.gateway.access_trail(&caller, trail).await
            })
            .await?;
        Ok(Response::new(tokio_stream::iter(
            items.into_iter().map(Ok).collect::<Vec<_>>(),
        )))
    }
}
