//! `portcullis.v1.TemporaryAccess`: temporary access over gRPC. Each call converts its
//! message into what the HTTP edge takes and asks the same functions of
//! [`crate::edges::access`]; nothing here decides or writes anything itself.

use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use portcullis_store::AccessStatus;
use tonic::{Response, Status};

use super::pb;
use super::to_status;
use crate::edges::access::{
    Asked, ListQuery, NewRequest, RequestView, RouteRef, Step, create_request, list_requests,
    read_request, take_step,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tls::PeerInfo;

/// The edge name in metrics and audit records.
const EDGE: &str = "grpc";

/// The implementation of `portcullis.v1.TemporaryAccess`.
#[derive(Debug, Clone)]
pub struct AccessService {
    state: Arc<AppState>,
}

impl AccessService {
    /// A service answering with `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        AccessService { state }
    }
}

/// A refusal as a gRPC status: a broken rule of the request's life (HTTP 409) is
/// `FAILED_PRECONDITION`; the rest as every gRPC edge answers them.
fn refusal(error: &ApiError) -> Status {
    if error.status == StatusCode::CONFLICT {
        Status::failed_precondition(format!("{}: {}", error.code, error.message))
    } else {
        to_status(error)
    }
}

fn present(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn timestamp(field: &str, text: String) -> Result<Option<Timestamp>, Status> {
    present(text)
        .map(|text| {
            text.parse::<Timestamp>().map_err(|error| {
                Status::invalid_argument(format!("{field}: not an RFC 3339 time: {error}"))
            })
        })
        .transpose()
}

fn message(view: RequestView) -> pb::AccessRequest {
    pb::AccessRequest {
        id: view.id,
        tenant: view.tenant.to_string(),
        requester: view.requester,
        action: view.action,
        resource: view.resource,
        reason: view.reason,
        window_start: view.window.start,
        window_end: view.window.end,
        cert: view.bound.cert.unwrap_or_default(),
        networks: view.bound.networks,
        approvals_required: u32::from(view.approvals_required),
        approvals: view
            .approvals
            .into_iter()
            .map(|approval| pb::AccessApproval {
                approver: approval.approver,
                comment: approval.comment.unwrap_or_default(),
                at: approval.at,
            })
            .collect(),
        status: view.status.to_owned(),
        closed_by: view.closed_by.unwrap_or_default(),
        closed_at: view.closed_at.unwrap_or_default(),
        closing_note: view.closing_note.unwrap_or_default(),
        created_at: view.created_at,
    }
}

/// The call's metadata as HTTP headers (`authorization`, `x-tenant-id`, `host`).
fn headers<T>(request: &tonic::Request<T>) -> HeaderMap {
    request.metadata().clone().into_headers()
}

impl AccessService {
    async fn step(
        &self,
        request: tonic::Request<pb::AccessStep>,
        step: Step,
    ) -> Result<Response<pb::AccessRequest>, Status> {
        let headers = headers(&request);
        let peer = request
            .extensions()
            .get::<ConnectInfo<PeerInfo>>()
            .map(|info| info.0.clone());
        let body = request.into_inner();
        let asked = Asked {
            headers: &headers,
            peer: peer.as_ref(),
            edge: EDGE,
        };
        let view = take_step(&self.state, asked, &body.id, present(body.comment), step)
            .await
            .map_err(|error| refusal(&error))?;
        Ok(Response::new(message(view)))
    }
}

#[tonic::async_trait]
impl pb::temporary_access_server::TemporaryAccess for AccessService {
    async fn request(
        &self,
        request: tonic::Request<pb::NewAccessRequest>,
    ) -> Result<Response<pb::AccessRequest>, Status> {
        let headers = headers(&request);
        let body = request.into_inner();
        let new = NewRequest {
            action: present(body.action),
            resource: present(body.resource),
            route: body.route.map(|route| RouteRef {
                method: route.method,
                path: route.path,
            }),
            reason: body.reason,
            start: timestamp("start", body.start)?,
            end: timestamp("end", body.end)?,
            duration: present(body.duration),
            cert: present(body.cert),
            networks: body.networks,
        };
        let view = create_request(&self.state, &headers, EDGE, new)
            .await
            .map_err(|error| refusal(&error))?;
        Ok(Response::new(message(view)))
    }

    async fn list(
        &self,
        request: tonic::Request<pb::ListAccessRequests>,
    ) -> Result<Response<pb::AccessRequestList>, Status> {
        let headers = headers(&request);
        let body = request.into_inner();
        let status = match body.status.as_str() {
            "" => None,
            "pending" => Some(AccessStatus::Pending),
            "approved" => Some(AccessStatus::Approved),
            "rejected" => Some(AccessStatus::Rejected),
            "revoked" => Some(AccessStatus::Revoked),
            "expired" => Some(AccessStatus::Expired),
            other => {
                return Err(Status::invalid_argument(format!(
                    "status: `{other}` is not pending, approved, rejected, revoked or expired"
                )));
            }
        };
        let query = ListQuery {
            status,
            mine: Some(body.mine),
            limit: (body.limit > 0).then_some(body.limit),
        };
        let (tenant, requests) = list_requests(&self.state, &headers, EDGE, query)
            .await
            .map_err(|error| refusal(&error))?;
        Ok(Response::new(pb::AccessRequestList {
            tenant: tenant.to_string(),
            requests: requests.into_iter().map(message).collect(),
        }))
    }

    async fn get(
        &self,
        request: tonic::Request<pb::AccessRequestId>,
    ) -> Result<Response<pb::AccessRequest>, Status> {
        let headers = headers(&request);
        let id = request.into_inner().id;
        let view = read_request(&self.state, &headers, EDGE, &id)
            .await
            .map_err(|error| refusal(&error))?;
        Ok(Response::new(message(view)))
    }

    async fn approve(
        &self,
        request: tonic::Request<pb::AccessStep>,
    ) -> Result<Response<pb::AccessRequest>, Status> {
        self.step(request, Step::Approve).await
    }

    async fn reject(
        &self,
        request: tonic::Request<pb::AccessStep>,
    ) -> Result<Response<pb::AccessRequest>, Status> {
        self.step(request, Step::Reject).await
    }

    async fn revoke(
        &self,
        request: tonic::Request<pb::AccessStep>,
    ) -> Result<Response<pb::AccessRequest>, Status> {
        self.step(request, Step::Revoke).await
    }
}
