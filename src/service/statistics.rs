//! `focalgate.v1.Statistics`: aggregate queries and the access trail (translation only; see
//! [`crate::app::statistics`]).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::{
    app::Gateway,
    proto::{AccessRecord, AggregateQuery, ListAccessTrailRequest, QueryResponse},
    rpc::statistics_server::Statistics,
};

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
    type QueryStream = tokio_stream::Iter<std::vec::IntoIter<Result<QueryResponse, Status>>>;

    async fn query(
        &self,
        request: Request<AggregateQuery>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let query = request.get_ref();
        let items = self
            .gateway
            .handle("Query", &request, |caller| async move {
                self.gateway.query(&caller, query).await
            })
            .await?;
        Ok(Response::new(tokio_stream::iter(
            items.into_iter().map(Ok).collect::<Vec<_>>(),
        )))
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
