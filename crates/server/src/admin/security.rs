//! The supply-chain gate's dependency scan (`/admin/v1/security/dependency-scan` on the admin
//! listener): its last result, and a new scan on demand; the binary's SBOM (`/admin/v1/sbom`).
//! The two reads are also routes of the public listener (`GET /v1/security/dependency-scan`,
//! `GET /v1/sbom`), behind the same admin token and authorization.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::access::{NodeAccess, SecurityRead, SecurityScan};
use crate::error::{ApiError, QueryParams};
use crate::state::AppState;
use crate::supply::ScanStatus;

/// The gate's status as answered: the last scan, and why the service runs read-only if it does
/// (a failed integrity check; every write is then denied whatever the scan found).
#[derive(Debug, Serialize)]
pub(crate) struct GateAnswer {
    #[serde(flatten)]
    scan: Arc<ScanStatus>,
    read_only: Option<String>,
}

impl GateAnswer {
    fn new(state: &AppState, scan: Arc<ScanStatus>) -> Json<GateAnswer> {
        Json(GateAnswer {
            scan,
            read_only: state.read_only().map(str::to_owned),
        })
    }
}

/// `GET`: the last scan's status (signal, advisories, reason, time, database, report).
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    _: NodeAccess<SecurityRead>,
) -> Json<GateAnswer> {
    GateAnswer::new(&state, state.supply.status())
}

/// `POST`: scans now (as on `SIGHUP`) and answers the new status.
pub(super) async fn rescan(
    State(state): State<Arc<AppState>>,
    _: NodeAccess<SecurityScan>,
) -> Json<GateAnswer> {
    let scan = crate::snapshots::supply::scan(&state, "admin").await;
    GateAnswer::new(&state, scan)
}

/// Query of `GET /admin/v1/sbom`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SbomQuery {
    /// `cyclonedx` (the default) or `spdx`.
    #[serde(default)]
    format: Option<SbomFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SbomFormat {
    Cyclonedx,
    Spdx,
}

/// `GET`: the SBOM of the running binary, CycloneDX 1.6 or SPDX 2.3 JSON.
pub(crate) async fn sbom(
    State(state): State<Arc<AppState>>,
    QueryParams(query): QueryParams<SbomQuery>,
    _: NodeAccess<SecurityRead>,
) -> Result<Json<Value>, ApiError> {
    let Some(list) = &state.config.sbom else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "sbom_unavailable",
            "this server runs without the SBOM of its binary (the `portcullis` binary embeds one; \
             a server started as a library has none)",
        ));
    };
    Ok(Json(match query.format.unwrap_or(SbomFormat::Cyclonedx) {
        SbomFormat::Cyclonedx => list.to_cyclonedx(),
        SbomFormat::Spdx => list.to_spdx(),
    }))
}
