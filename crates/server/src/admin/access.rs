//! Who may call the admin API and what is kept of it: the admin token check and the audit
//! record of every change (both middleware), authorization through the `system` tenant, the
//! admin actions as types, and the extractors that hand a handler its authorized tenant.
//!
//! A handler names its action in its signature: [`TenantAccess<PrincipalsRead>`] is the tenant
//! of the `{tenant}` path parameter, once it is a valid tenant id (400 `invalid_tenant`), the
//! admin may do `admin:principals.read` on it (403 `denied`) and it exists (404
//! `unknown_tenant`), checked in that order. `TenantAccess<A, MayNotExist>` skips the last
//! check; [`NodeAccess`] authorizes a call that concerns no tenant (`tenant:*`).
//!
//! The query string and the body of a call are read before these checks (their errors answer
//! first): a handler that has one takes [`WithInput`], which reads the path, then the input,
//! then checks.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::{Principal, Resource, TenantId};
use portcullis_store::TenantRecord;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{SYSTEM_TENANT, existing_tenant, path_tenant};
use crate::decision::DecisionPath;
use crate::error::{ApiError, PathParams, QueryParams};
use crate::identity::bearer;
use crate::json::JsonBody;
use crate::state::AppState;

// ------------------------------------------------------------------ the admin and its token

/// The name of an authenticated admin token.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub(crate) String);

/// Middleware: authenticates the admin token before anything else of the call is read, and
/// leaves the [`Admin`] in the request's extensions.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match admin_for(&state, request.headers()) {
        Ok(admin) => {
            request.extensions_mut().insert(admin);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// The admin whose token the request carries.
pub(crate) fn admin_for(state: &AppState, headers: &http::HeaderMap) -> Result<Admin, ApiError> {
    let found = match bearer(headers) {
        Err(error) => Err(ApiError::from(error)),
        Ok(None) => Err(ApiError::unauthenticated(
            "missing_token",
            "an admin token is required",
        )),
        Ok(Some(token)) => {
            let presented = Sha256::digest(token.as_bytes());
            // Compare digests, so the time taken does not depend on how much of a secret matched.
            state
                .config
                .admin
                .tokens
                .iter()
                .find(|candidate| Sha256::digest(candidate.secret.as_bytes()) == presented)
                .map(|admin| admin.name.clone())
                .ok_or_else(|| {
                    ApiError::unauthenticated("invalid_token", "the admin token is not valid")
                })
        }
    };
    found.map(Admin)
}

/// The admin [`authenticate`] left in the extensions. Every route of the admin router has
/// that middleware, so a missing one is answered as a call without a token.
fn authenticated(parts: &Parts) -> Result<Admin, ApiError> {
    parts
        .extensions
        .get::<Admin>()
        .cloned()
        .ok_or_else(|| ApiError::unauthenticated("missing_token", "an admin token is required"))
}

// ------------------------------------------------------------------ the audit record

/// Records every administrative change — every call that is not a read, whatever its outcome —
/// and every read of the audit trail, durably in the audit log before the response leaves. If
/// the record cannot be written the caller is told so (500 `audit_failed`).
pub(super) async fn record_changes(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.audit.is_none() {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let is_audit_read = template.contains("/audit");
    if method == http::Method::GET && !is_audit_read {
        return next.run(request).await;
    }
    let admin = request
        .extensions()
        .get::<Admin>()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    // The tenant the change is about: the path's, or the system tenant for node-wide calls.
    let tenant = path
        .strip_prefix("/admin/v1/tenants/")
        .and_then(|rest| rest.split('/').next())
        .filter(|t| TenantId::new(t).is_ok())
        .unwrap_or(SYSTEM_TENANT)
        .to_owned();
    let action = format!("{method} {template}");
    let response = next.run(request).await;
    let status = response.status();
    match record_change(&state, &tenant, &admin, &action, path, query, status).await {
        Ok(()) => response,
        Err(error) => error.into_response(),
    }
}

/// Records one administrative change made by `admin` on `tenant` (`action` is the method and
/// route template; `path` and `query` as called; `status` as answered) durably in the audit
/// log. Used by [`record_changes`] and by the other edges that make administrative changes
/// (the OpenFGA API's writes). Without an audit log there is nothing to record.
pub(crate) async fn record_change(
    state: &AppState,
    tenant: &str,
    admin: &str,
    action: &str,
    path: String,
    query: Option<String>,
    status: StatusCode,
) -> Result<(), ApiError> {
    let Some(audit) = &state.audit else {
        return Ok(());
    };
    let mut details = Map::new();
    details.insert("path".into(), Value::String(path));
    if let Some(query) = query {
        details.insert("query".into(), Value::String(query));
    }
    details.insert("status".into(), Value::from(status.as_u16()));
    match audit
        .change(
            tenant,
            admin,
            action,
            &format!("tenant:{tenant}"),
            status.is_success(),
            details,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::error!(%error, %action, "an admin call could not be recorded in the audit log");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit_failed",
                "the call could not be recorded in the audit log (if it changed something, the change was applied); the server log has the details",
            ))
        }
    }
}

// ------------------------------------------------------------------ authorization

/// Authorizes `action` on `tenant:<resource>` for an authenticated admin through the `system`
/// tenant.
pub(crate) async fn authorize(
    state: &AppState,
    admin: &Admin,
    action: &str,
    resource: &str,
) -> Result<(), ApiError> {
    let system =
        TenantId::new(SYSTEM_TENANT).map_err(|e| ApiError::forbidden("denied", e.to_string()))?;
    let request = portcullis_core::Request {
        tenant: system,
        principal: Principal::user(admin.0.clone()),
        action: action.to_owned(),
        resource: Resource::new("tenant", resource),
        context: Default::default(),
        env: Default::default(),
        explain: false,
        action_properties: Default::default(),
        trace_id: None,
    };
    let (_, decision) = DecisionPath::new(state, "admin")
        .decide(request, None, None)
        .await;
    if decision.is_allowed() {
        Ok(())
    } else {
        let cause = serde_json::to_value(decision.cause)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(ApiError::forbidden(
            "denied",
            format!(
                "admin `{}` may not {action} on tenant:{resource} ({cause}; see the `system` tenant bundle)",
                admin.0
            ),
        ))
    }
}

/// An admin action, as a type: what a handler's extractor authorizes.
pub(crate) trait AdminAction {
    /// The action the `system` tenant's bundle grants, `admin:<area>.<operation>`.
    const ACTION: &'static str;
}

/// Declares each admin action as an uninhabited marker type.
macro_rules! admin_actions {
    ($($name:ident => $action:literal,)*) => {
        $(
            #[doc = concat!("`", $action, "`.")]
            #[derive(Debug)]
            pub(crate) enum $name {}

            impl AdminAction for $name {
                const ACTION: &'static str = $action;
            }
        )*
    };
}

admin_actions! {
    TenantsList => "admin:tenants.list",
    TenantsCreate => "admin:tenants.create",
    TenantsRead => "admin:tenants.read",
    TenantsDelete => "admin:tenants.delete",
    TenantsSuspend => "admin:tenants.suspend",
    TenantsResume => "admin:tenants.resume",
    BundleUpload => "admin:bundle.upload",
    BundlesRead => "admin:bundles.read",
    BundlesRollback => "admin:bundles.rollback",
    PrincipalsRead => "admin:principals.read",
    PrincipalsWrite => "admin:principals.write",
    AssignmentsRead => "admin:assignments.read",
    AssignmentsWrite => "admin:assignments.write",
    KeysRotate => "admin:keys.rotate",
    Reload => "admin:reload",
    TuplesRead => "admin:tuples.read",
    TuplesWrite => "admin:tuples.write",
    AuditRead => "admin:audit.read",
    SecurityRead => "admin:security.read",
    SecurityScan => "admin:security.scan",
    GatewayUnlock => "admin:gateway.unlock",
}

// ------------------------------------------------------------------ the extractors

/// Whether a [`TenantAccess`] requires its tenant to exist, and what it then holds of it.
pub(crate) trait Existence {
    /// What the check yields.
    type Record: Send;

    /// Checks the tenant, once the admin is authorized.
    fn check(
        state: &AppState,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Self::Record, ApiError>> + Send;
}

/// The tenant must exist (404 `unknown_tenant`); its record comes along.
#[derive(Debug)]
pub(crate) enum MustExist {}

impl Existence for MustExist {
    type Record = TenantRecord;

    fn check(
        state: &AppState,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<TenantRecord, ApiError>> + Send {
        existing_tenant(state, tenant)
    }
}

/// The tenant need not exist: the handler checks it where and how it must, or not at all.
#[derive(Debug)]
pub(crate) enum MayNotExist {}

impl Existence for MayNotExist {
    type Record = ();

    async fn check(_: &AppState, _: &TenantId) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The tenant of the `{tenant}` path parameter, on which the calling admin may do `A`, and
/// which exists unless `E` is [`MayNotExist`].
///
/// Checks, in this order: the path reads (400 `invalid_path`), the tenant id is valid (400
/// `invalid_tenant`), the `system` tenant lets the admin do `A::ACTION` on `tenant:<id>` (403
/// `denied`), and `E`'s check (404 `unknown_tenant` for [`MustExist`]). The handler's other
/// path parameters stay its own to extract.
#[derive(Debug)]
pub(crate) struct TenantAccess<A, E: Existence = MustExist> {
    /// The tenant.
    pub(crate) tenant: TenantId,
    /// The admin who may act on it.
    pub(crate) admin: Admin,
    /// The tenant's record, when `E` is [`MustExist`].
    pub(crate) record: E::Record,
    action: PhantomData<fn() -> A>,
}

/// The `{tenant}` path parameter, by name (a route's other parameters are ignored).
#[derive(Debug, Deserialize)]
struct TenantPath {
    tenant: String,
}

/// What a [`TenantAccess`] reads from the request before its checks.
#[derive(Debug)]
struct Claim {
    tenant: String,
    admin: Admin,
}

impl Claim {
    async fn read(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let PathParams(path) = PathParams::<TenantPath>::from_request_parts(parts, state).await?;
        Ok(Claim {
            tenant: path.tenant,
            admin: authenticated(parts)?,
        })
    }

    async fn check<A: AdminAction, E: Existence>(
        self,
        state: &AppState,
    ) -> Result<TenantAccess<A, E>, ApiError> {
        let tenant = path_tenant(&self.tenant)?;
        authorize(state, &self.admin, A::ACTION, tenant.as_str()).await?;
        let record = E::check(state, &tenant).await?;
        Ok(TenantAccess {
            tenant,
            admin: self.admin,
            record,
            action: PhantomData,
        })
    }
}

impl<A, E> FromRequestParts<Arc<AppState>> for TenantAccess<A, E>
where
    A: AdminAction,
    E: Existence,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Claim::read(parts, state).await?.check(state).await
    }
}

/// A [`TenantAccess`] with the call's input `X` — its query string ([`QueryParams`]) or its
/// body ([`JsonBody`]) — read after the path and before the checks, so that a malformed input
/// is answered before an invalid tenant, a denial or an unknown tenant.
#[derive(Debug)]
pub(crate) struct WithInput<G, X>(pub(crate) G, pub(crate) X);

impl<A, E, Q> FromRequestParts<Arc<AppState>> for WithInput<TenantAccess<A, E>, QueryParams<Q>>
where
    A: AdminAction,
    E: Existence,
    Q: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let claim = Claim::read(parts, state).await?;
        let query = QueryParams::<Q>::from_request_parts(parts, state).await?;
        Ok(WithInput(claim.check(state).await?, query))
    }
}

impl<A, E, T> FromRequest<Arc<AppState>> for WithInput<TenantAccess<A, E>, JsonBody<T>>
where
    A: AdminAction,
    E: Existence,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let claim = Claim::read(&mut parts, state).await?;
        let body = JsonBody::<T>::from_request(Request::from_parts(parts, body), state).await?;
        Ok(WithInput(claim.check(state).await?, body))
    }
}

/// A call that concerns no one tenant, which the calling admin may make: `A` on `tenant:*`
/// (403 `denied`).
#[derive(Debug)]
pub(crate) struct NodeAccess<A>(PhantomData<fn() -> A>);

impl<A: AdminAction> FromRequestParts<Arc<AppState>> for NodeAccess<A> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        authorize(state, &authenticated(parts)?, A::ACTION, "*").await?;
        Ok(NodeAccess(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    //! The order of the extractors' checks, which the admin API's answers depend on: the path,
    //! then the query string or body, then the tenant id, the authorization and the existence.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed setup step must fail the test"
    )]

    use std::path::Path;
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Method, header};
    use serde_json::Value;
    use tower::ServiceExt;

    use crate::config::{Config, Overrides};
    use crate::identity::Verifier;
    use crate::snapshots::reload::reload_all;
    use crate::state::AppState;

    const OPS: &str = "ops-token-for-the-extractor-tests";
    const AUDITOR: &str = "audit-token-for-the-extractor-tests";

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// The admin router on a copy of the demo bundles (tenants `acme` and `system`), with an
    /// `ops` (platform admin) and an `audit` (auditor) token.
    async fn router() -> (tempfile::TempDir, Router) {
        let dir = tempfile::tempdir().unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
        let bundles = dir.path().join("bundles");
        copy_tree(&demo, &bundles);
        let text = format!(
            r#"
data_dir = "{data}"
[reload]
watch = false
[[admin.tokens]]
name = "ops"
token = "{OPS}"
[[admin.tokens]]
name = "audit"
token = "{AUDITOR}"
"#,
            data = dir.path().join("data").display()
        );
        let overrides = Overrides {
            bundles: Some(bundles),
            ..Default::default()
        };
        let config = Config::parse(&text, dir.path(), &overrides, &|_| None).unwrap();
        let verifier = Verifier::new(&config.identity).unwrap();
        let state = Arc::new(AppState::open(config, verifier, None).await.unwrap());
        let report = reload_all(&state, "start").await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        (dir, super::super::router(state))
    }

    /// The status and error code of an admin call.
    async fn call(
        router: &Router,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
        (status, code)
    }

    #[tokio::test]
    async fn a_body_is_read_before_the_tenant_is_checked() {
        let (_dir, router) = router().await;
        let put = |token, uri, body| call(&router, token, Method::PUT, uri, Some(body));
        let principal = "/admin/v1/tenants/ghost/principals/p1";
        assert_eq!(
            put(AUDITOR, principal, "{").await,
            (400, "malformed_json".to_owned()),
            "a malformed body, even from an admin who may not write to a tenant that does not exist"
        );
        assert_eq!(
            put(AUDITOR, "/admin/v1/tenants/Not%20Valid/principals/p1", "{}").await,
            (400, "invalid_tenant".to_owned())
        );
        assert_eq!(
            put(AUDITOR, principal, "{}").await,
            (403, "denied".to_owned()),
            "the admin is authorized before the tenant is looked up"
        );
        assert_eq!(
            put(OPS, principal, "{}").await,
            (404, "unknown_tenant".to_owned())
        );
        assert_eq!(
            put(OPS, "/admin/v1/tenants/acme/principals/p1", "{}").await,
            (200, String::new())
        );
    }

    #[tokio::test]
    async fn the_path_then_the_query_string_are_read_before_the_tenant_is_checked() {
        let (_dir, router) = router().await;
        let get = |uri| call(&router, AUDITOR, Method::GET, uri, None);
        assert_eq!(
            get("/admin/v1/tenants/%FF/principals?limit=many").await,
            (400, "invalid_path".to_owned())
        );
        assert_eq!(
            get("/admin/v1/tenants/Not%20Valid/principals?limit=many").await,
            (400, "invalid_query".to_owned())
        );
        assert_eq!(
            get("/admin/v1/tenants/Not%20Valid/principals?limit=5").await,
            (400, "invalid_tenant".to_owned())
        );
        assert_eq!(
            get("/admin/v1/tenants/ghost/principals?limit=5").await,
            (404, "unknown_tenant".to_owned())
        );
        assert_eq!(
            get("/admin/v1/tenants/acme/principals?limit=5").await,
            (200, String::new())
        );
    }

    #[tokio::test]
    async fn handlers_that_do_not_need_the_tenant_to_exist_go_on_without_it() {
        let (_dir, router) = router().await;
        assert_eq!(
            call(
                &router,
                OPS,
                Method::DELETE,
                "/admin/v1/tenants/ghost",
                None
            )
            .await,
            (400, "confirmation_required".to_owned()),
            "the confirmation is asked for before the tenant is looked up"
        );
        assert_eq!(
            call(
                &router,
                AUDITOR,
                Method::DELETE,
                "/admin/v1/tenants/ghost",
                None
            )
            .await,
            (403, "denied".to_owned())
        );
        assert_eq!(
            call(&router, AUDITOR, Method::POST, "/admin/v1/reload", None).await,
            (403, "denied".to_owned()),
            "a node-wide action is authorized on tenant:*"
        );
        assert_eq!(
            call(&router, OPS, Method::POST, "/admin/v1/reload", None)
                .await
                .0,
            200
        );
    }
}
