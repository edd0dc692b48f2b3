//! `portcullis.v1.Decisions`: the JSON decision API (`/v1/check`, `/v1/check/batch`,
//! `/v1/explain`) over gRPC.
//!
//! Each call converts its messages into engine requests (invalid input is `INVALID_ARGUMENT`
//! naming the field), applies the bearer identity of the call's `authorization` metadata exactly
//! as the HTTP API does, and asks the decision module. It holds no decision logic.

use std::sync::Arc;

use axum::http::HeaderMap;
use portcullis_core::Request;
use tonic::{Response, Status};

use super::convert::{to_message, to_request};
use super::pb;
use super::to_status;
use crate::decision::DecisionPath;
use crate::edges::api::{authenticate, user_agent};
use crate::state::AppState;
use portcullis_tenant::quota::QuotaPermit;

/// The implementation of `portcullis.v1.Decisions`.
#[derive(Debug, Clone)]
pub struct DecisionService {
    state: Arc<AppState>,
}

impl DecisionService {
    /// A service deciding with `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        DecisionService { state }
    }

    /// Converts and authenticates one request.
    fn prepare(
        path: &DecisionPath<'_>,
        headers: &HeaderMap,
        message: pb::CheckRequest,
        prefix: &str,
    ) -> Result<(Request, Option<QuotaPermit>), Status> {
        let mut request = to_request(message, prefix)?;
        authenticate(path, headers, &mut request).map_err(|error| to_status(&error))?;
        // Admitted after the identity is known, so anonymous callers cannot use up a quota;
        // the permit is held until the decision is made.
        let permit = path
            .admit(&request.tenant)
            .map_err(|error| to_status(&error))?;
        Ok((request, permit))
    }
}

async fn decide(path: &DecisionPath<'_>, headers: &HeaderMap, request: Request) -> pb::Decision {
    let (_, decision) = path.decide(request, None, user_agent(headers)).await;
    to_message(&decision)
}

/// The call's metadata as HTTP headers (what [`authenticate`] reads: `authorization`, `host`).
fn headers<T>(request: &tonic::Request<T>) -> HeaderMap {
    request.metadata().clone().into_headers()
}

#[tonic::async_trait]
impl pb::decisions_server::Decisions for DecisionService {
    async fn check(
        &self,
        request: tonic::Request<pb::CheckRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let headers = headers(&request);
        let path = DecisionPath::new(&self.state, "grpc");
        let (request, _permit) = Self::prepare(&path, &headers, request.into_inner(), "")?;
        Ok(Response::new(decide(&path, &headers, request).await))
    }

    async fn batch_check(
        &self,
        request: tonic::Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let headers = headers(&request);
        let messages = request.into_inner().requests;
        let limit = self.state.config.limits.max_batch;
        if messages.is_empty() {
            return Err(Status::invalid_argument(
                "requests: the batch holds no request",
            ));
        }
        if messages.len() > limit {
            return Err(Status::invalid_argument(format!(
                "requests: the batch holds {} requests; the limit is {limit}",
                messages.len()
            )));
        }
        let path = DecisionPath::new(&self.state, "grpc");
        // Every request is checked before any is decided, so a bad batch decides nothing.
        let requests = messages
            .into_iter()
            .enumerate()
            .map(|(index, message)| {
                let mut request = to_request(message, &format!("requests[{index}]."))?;
                authenticate(&path, &headers, &mut request).map_err(|error| to_status(&error))?;
                Ok(request)
            })
            .collect::<Result<Vec<_>, Status>>()?;
        // One admission per tenant named in the batch, as on HTTP.
        let mut permits = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for request in &requests {
            if seen.insert(request.tenant.clone()) {
                permits.push(
                    path.admit(&request.tenant)
                        .map_err(|error| to_status(&error))?,
                );
            }
        }
        let mut decisions = Vec::with_capacity(requests.len());
        for request in requests {
            decisions.push(decide(&path, &headers, request).await);
        }
        drop(permits);
        Ok(Response::new(pb::BatchCheckResponse { decisions }))
    }

    async fn explain(
        &self,
        request: tonic::Request<pb::CheckRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let headers = headers(&request);
        let path = DecisionPath::new(&self.state, "grpc");
        let (mut request, _permit) = Self::prepare(&path, &headers, request.into_inner(), "")?;
        request.explain = true;
        Ok(Response::new(decide(&path, &headers, request).await))
    }
}
