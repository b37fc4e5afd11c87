//! `focalgate.v1.Submissions`: submit, get, list (translation only; see [`crate::app::submissions`]).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{ApiError, error::finish};
use crate::{
    app::{Gateway, submissions::summary},
    proto::{
        GetSubmissionRequest, ListSubmissionsRequest, Receipt, SignedEnvelope, Submission,
        SubmissionSummary,
    },
    rpc::submissions_server::Submissions,
    store,
};

/// The Submissions service.
pub struct SubmissionsService {
    gateway: Arc<Gateway>,
}

impl SubmissionsService {
    pub(super) fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

#[tonic::async_trait]
impl Submissions for SubmissionsService {
    async fn submit(&self, request: Request<SignedEnvelope>) -> Result<Response<Receipt>, Status> {
        let caller = self.gateway.caller(&request);
        self.gateway
            .handle_as("Submit", caller, |caller| async move {
                self.gateway.submit(&caller, request.into_inner()).await
            })
            .await
            .map(Response::new)
    }

    async fn get_submission(
        &self,
        request: Request<GetSubmissionRequest>,
    ) -> Result<Response<Submission>, Status> {
        let id = &request.get_ref().submission_id;
        self.gateway
            .handle("GetSubmission", &request, |caller| async move {
                self.gateway.get_submission(&caller, id).await
            })
            .await
            .map(Response::new)
    }

    type ListSubmissionsStream = ReceiverStream<Result<SubmissionSummary, Status>>;

    async fn list_submissions(
        &self,
        request: Request<ListSubmissionsRequest>,
    ) -> Result<Response<Self::ListSubmissionsStream>, Status> {
        let caller = self.gateway.caller(&request);
        let member = caller.as_ref().ok().map(|c| c.member().to_string());
        let filter = caller.and_then(|c| self.gateway.list_filter(&c, request.get_ref()));
        let filter = finish("ListSubmissions", member.as_deref(), filter)?;

        let (tx, rx) = mpsc::channel(64);
        let store = self.gateway.store.clone();
        tokio::spawn(async move {
            let mut before = None;
            loop {
                let page = match store.list(&filter, before).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "listing submissions failed");
                        let _ = tx.send(Err(ApiError::Store(e).into())).await;
                        return;
                    }
                };
                let full = page.len() as u32 == store::LIST_PAGE;
                before = page.last().map(|s| s.seq);
                for s in page {
                    if tx.send(Ok(summary(s))).await.is_err() {
                        return; // the caller went away
                    }
                }
                if !full {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
