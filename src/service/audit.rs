//! `focalgate.v1.Audit`: checkpoints, proofs and entries of the transparency log (translation
//! only; see [`crate::app::audit`]).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::ApiError;
use crate::{
    app::Gateway,
    identity::Caller,
    proto::{
        ConsistencyProof, GetCheckpointRequest, GetConsistencyProofRequest, GetEntriesRequest,
        GetInclusionProofRequest, GetLogStatusRequest, InclusionProof, LogEntry, LogStatus,
        SignedCheckpoint,
    },
    rpc::audit_server::Audit,
};

/// The Audit service.
pub struct AuditService {
    gateway: Arc<Gateway>,
}

impl AuditService {
    pub(super) fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

/// Runs one Audit call: the caller must be a member (any role).
async fn call<T, F>(
    service: &AuditService,
    method: &'static str,
    request: &Request<impl Sized>,
    f: impl FnOnce(Caller) -> F,
) -> Result<Response<T>, Status>
where
    F: std::future::Future<Output = Result<T, ApiError>>,
{
    service
        .gateway
        .handle(method, request, f)
        .await
        .map(Response::new)
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn get_checkpoint(
        &self,
        request: Request<GetCheckpointRequest>,
    ) -> Result<Response<SignedCheckpoint>, Status> {
        let req = request.get_ref();
        call(self, "GetCheckpoint", &request, |caller| async move {
            self.gateway.checkpoint(&caller, req).await
        })
        .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<GetInclusionProofRequest>,
    ) -> Result<Response<InclusionProof>, Status> {
        let req = request.get_ref();
        call(self, "GetInclusionProof", &request, |caller| async move {
            self.gateway.inclusion(&caller, req).await
        })
        .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProof>, Status> {
        let req = request.get_ref();
        call(self, "GetConsistencyProof", &request, |caller| async move {
            self.gateway.consistency(&caller, req).await
        })
        .await
    }

    async fn get_log_status(
        &self,
        request: Request<GetLogStatusRequest>,
    ) -> Result<Response<LogStatus>, Status> {
        let req = request.get_ref();
        call(self, "GetLogStatus", &request, |caller| async move {
            self.gateway.log_status(&caller, req).await
        })
        .await
    }

    type GetEntriesStream = tokio_stream::Iter<std::vec::IntoIter<Result<LogEntry, Status>>>;

    async fn get_entries(
        &self,
        request: Request<GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        let req = request.get_ref();
        let entries = call(self, "GetEntries", &request, |caller| async move {
            self.gateway.entries(&caller, req).await
        })
        .await?
        .into_inner();
        Ok(Response::new(tokio_stream::iter(
            entries.into_iter().map(Ok).collect::<Vec<_>>(),
        )))
    }
}
