//! `focalgate.v1.Admin`: members, certificates, CRLs and policy (translation only; see
//! [`crate::app::admin`]).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::{
    app::Gateway,
    proto::{
        CertificateExpiry, GetCertificateExpiryRequest, GetCrlRequest, GetCrlResponse,
        GetPolicyRequest, IssueCertificateRequest, IssueCertificateResponse,
        ListCertificatesRequest, ListCertificatesResponse, ListMembersRequest, ListMembersResponse,
        PolicyDocument, ReplacePolicyRequest, ReplacePolicyResponse, RevokeCertificateRequest,
        RevokeCertificateResponse,
    },
    rpc::admin_server::Admin,
};

/// The Admin service.
pub struct AdminService {
    gateway: Arc<Gateway>,
}

impl AdminService {
    pub(super) fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

/// Runs one Admin call; the use-case checks the caller's roles.
async fn call<T, F>(
    service: &AdminService,
    method: &'static str,
    request: &Request<impl Sized>,
    f: impl FnOnce(crate::identity::Caller) -> F,
) -> Result<Response<T>, Status>
where
    F: std::future::Future<Output = Result<T, crate::app::ApiError>>,
{
    service
        .gateway
        .handle(method, request, f)
        .await
        .map(Response::new)
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_members(
        &self,
        request: Request<ListMembersRequest>,
    ) -> Result<Response<ListMembersResponse>, Status> {
        call(self, "ListMembers", &request, |caller| async move {
            self.gateway.list_members(&caller)
        })
        .await
    }

    async fn list_certificates(
        &self,
        request: Request<ListCertificatesRequest>,
    ) -> Result<Response<ListCertificatesResponse>, Status> {
        call(self, "ListCertificates", &request, |caller| async move {
            self.gateway.list_certificates(&caller)
        })
        .await
    }

    async fn issue_certificate(
        &self,
        request: Request<IssueCertificateRequest>,
    ) -> Result<Response<IssueCertificateResponse>, Status> {
        let req = request.get_ref().clone();
        call(self, "IssueCertificate", &request, |caller| async move {
            self.gateway.issue_certificate(&caller, req).await
        })
        .await
    }

    async fn revoke_certificate(
        &self,
        request: Request<RevokeCertificateRequest>,
    ) -> Result<Response<RevokeCertificateResponse>, Status> {
        let req = request.get_ref().clone();
        call(self, "RevokeCertificate", &request, |caller| async move {
            self.gateway.revoke_certificate(&caller, req).await
        })
        .await
    }

    async fn get_crl(
        &self,
        request: Request<GetCrlRequest>,
    ) -> Result<Response<GetCrlResponse>, Status> {
        call(self, "GetCrl", &request, |caller| async move {
            self.gateway.get_crl(&caller)
        })
        .await
    }

    async fn get_policy(
        &self,
        request: Request<GetPolicyRequest>,
    ) -> Result<Response<PolicyDocument>, Status> {
        call(self, "GetPolicy", &request, |caller| async move {
            self.gateway.get_policy(&caller)
        })
        .await
    }

    async fn replace_policy(
        &self,
        request: Request<ReplacePolicyRequest>,
    ) -> Result<Response<ReplacePolicyResponse>, Status> {
        let req = request.get_ref().clone();
        call(self, "ReplacePolicy", &request, |caller| async move {
            self.gateway.replace_policy(&caller, req).await
        })
        .await
    }

    async fn get_certificate_expiry(
        &self,
        request: Request<GetCertificateExpiryRequest>,
    ) -> Result<Response<CertificateExpiry>, Status> {
        call(
            self,
            "GetCertificateExpiry",
            &request,
            |caller| async move { self.gateway.certificate_expiry(&caller) },
        )
        .await
    }
}
