//! Starting and stopping the service: load the bundles, bind the listeners (plain or TLS for
//! the public API, always plain loopback-by-default for admin), watch the bundle folders,
//! reload on SIGHUP, and shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use notify_debouncer_full::notify::RecursiveMode;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{AdminToken, Config};
use crate::connection::HeadLimits;
use crate::identity::Verifier;
use crate::snapshots::reload::{install_embedded, poll, refresh_tenant, reload_all};
use crate::state::{AppState, Clock};
use crate::tls::{PlainListener, TlsListener, server_config};

/// A server started in this process.
pub struct RunningServer {
    /// The shared state (policies, metrics, ...).
    pub state: Arc<AppState>,
    /// Where the public API listens.
    pub addr: SocketAddr,
    /// Where the admin API listens.
    pub admin_addr: SocketAddr,
    /// Where the gateway listens, when `[gateway]` is configured.
    pub gateway_addr: Option<SocketAddr>,
    /// The running gateway, when `[gateway]` is configured (its configuration reloads through
    /// it).
    pub gateway: Option<Arc<crate::gateway::GatewayHandle>>,
    /// The admin token generated at start, when none was configured.
    pub generated_admin_token: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("admin_addr", &self.admin_addr)
            .field("gateway_addr", &self.gateway_addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// Stops accepting, lets requests in flight finish, and waits for the listeners to close.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(audit) = &self.state.audit {
            // Every log of a tenant this node serves is sealed at shutdown, written since the
            // start or not; the files were all recovered at start, but a stream in the store
            // is found only by its tenant.
            let tenants = self
                .state
                .policies()
                .iter()
                .map(|snapshot| snapshot.tenant().as_str().to_owned())
                .collect();
            if let Err(error) = audit.recover(tenants).await {
                tracing::error!(%error, "could not recover every audit log before sealing");
            }
            let state = Arc::clone(&self.state);
            let sealed = tokio::task::spawn_blocking(move || {
                state.audit.as_ref().map(crate::audit::Auditor::shutdown)
            })
            .await;
            if let Ok(Some(Err(error))) = sealed {
                tracing::error!(%error, "could not seal the audit log");
            }
        }
        self.state.store.close().await;
    }
}

/// The public router plus whatever other edges share its listener: the gRPC services (Envoy
/// ext_authz and `portcullis.v1.Decisions`), told apart from HTTP by their paths.
pub fn public_router(state: Arc<AppState>) -> Router {
    crate::edges::grpc::add_services(crate::edges::router(Arc::clone(&state)), &state)
}

/// What the public listeners answer without their router: forward-auth
/// ([`crate::edges::forward::ForwardShortcut`]).
pub fn public_shortcut(state: &Arc<AppState>) -> Arc<dyn crate::connection::Shortcut> {
    Arc::new(crate::edges::forward::ForwardShortcut::new(Arc::clone(
        state,
    )))
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// Loads the bundles and starts the listeners; returns once they are bound.
pub async fn start(mut config: Config, clock: Option<Clock>) -> Result<RunningServer, String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let generated_admin_token = if config.admin.tokens.is_empty() {
        let secret = random_token();
        config.admin.tokens.push(AdminToken {
            name: "local-admin".into(),
            secret: secret.clone(),
        });
        Some(secret)
    } else {
        None
    };
    let verifier = Verifier::new(&config.identity).map_err(|e| e.to_string())?;
    // Integrity first: a binary, configuration or bundle that is not the one signed does not
    // start (or, when so configured, starts with every write denied).
    let integrity = match &config.integrity {
        None => None,
        Some(settings) => Some(match crate::supply::verify_integrity(settings) {
            Ok(verified) => Ok(verified),
            Err(error) if settings.read_only_on_failure => {
                tracing::error!(%error, "integrity check failed: starting read-only, every write is denied");
                Err(format!("integrity check failed: {error}"))
            }
            Err(error) => return Err(format!("integrity check failed; not starting: {error}")),
        }),
    };
    let state = Arc::new(AppState::open(config, verifier, clock).await?);
    match integrity {
        Some(Ok(verified)) => {
            let _ = state.integrity.set(verified);
        }
        Some(Err(reason)) => state.set_read_only(reason),
        None => {}
    }

    // Bundles: refuse to start on any problem, so a broken deployment is noticed at once.
    if state.config.embedded_demo {
        install_embedded(&state, &crate::demo::bundles())
            .await
            .map_err(|e| e.to_string())?;
    }
    let report = reload_all(&state, "start").await;
    if !report.failed.is_empty() {
        let mut message = String::from("bundles with problems; not starting:\n");
        for failed in &report.failed {
            for error in &failed.errors {
                message.push_str(error);
                message.push('\n');
            }
        }
        return Err(message);
    }
    // The supply-chain signal is known before the first request is answered.
    crate::snapshots::supply::scan(&state, "start").await;

    let (shutdown, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.extend(crate::snapshots::supply::spawn_periodic(
        Arc::clone(&state),
        stop.clone(),
    ));
    // Every listener enforces the same limits on request heads.
    let limits = HeadLimits::new(&state.config.limits);

    // Public listener.
    let public = TcpListener::bind(state.config.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (listen): {e}", state.config.listen))?;
    let addr = public.local_addr().map_err(|e| e.to_string())?;
    let router = public_router(Arc::clone(&state));
    let shortcut = public_shortcut(&state);
    match &state.config.tls {
        Some(tls) => {
            let rustls_config = server_config(tls)?;
            let listener = TlsListener::new(public, rustls_config).map_err(|e| e.to_string())?;
            tasks.push(crate::connection::spawn(
                listener,
                router,
                Some(shortcut),
                limits,
                stop.clone(),
            ));
        }
        None => tasks.push(crate::connection::spawn(
            PlainListener::new(public),
            router,
            Some(shortcut),
            limits,
            stop.clone(),
        )),
    }

    // Separate gRPC listener, when configured: the same router (gRPC routes included).
    if let Some(grpc) = state.config.grpc_listen {
        let listener = TcpListener::bind(grpc)
            .await
            .map_err(|e| format!("cannot listen on {grpc} (grpc_listen): {e}"))?;
        tasks.push(crate::connection::spawn(
            PlainListener::new(listener),
            public_router(Arc::clone(&state)),
            Some(public_shortcut(&state)),
            limits,
            stop.clone(),
        ));
    }

    // The protecting gateway, when configured: its own listener, the same limits on heads.
    let mut gateway = None;
    let gateway_addr = match &state.config.gateway {
        None => None,
        Some(settings) => {
            let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
                format!("cannot listen on {} (gateway.listen): {e}", settings.listen)
            })?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let handle = crate::gateway::GatewayHandle::new(Arc::clone(&state), settings);
            let router = handle.router();
            gateway = Some(handle);
            match (&state.config.tls, settings.tls) {
                (Some(tls), true) => {
                    let listener = TlsListener::new(listener, server_config(tls)?)
                        .map_err(|e| e.to_string())?;
                    tasks.push(crate::connection::spawn(
                        listener,
                        router,
                        None,
                        limits,
                        stop.clone(),
                    ));
                }
                _ => tasks.push(crate::connection::spawn(
                    PlainListener::new(listener),
                    router,
                    None,
                    limits,
                    stop.clone(),
                )),
            }
            Some(addr)
        }
    };

    // Admin listener.
    let admin = TcpListener::bind(state.config.admin.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} (admin.listen): {e}",
                state.config.admin.listen
            )
        })?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
    tasks.push(crate::connection::spawn(
        PlainListener::new(admin),
        crate::edges::grpc::add_admin_services(crate::admin::router(Arc::clone(&state)), &state),
        None,
        limits,
        stop.clone(),
    ));

    // Reload triggers: file changes (debounced) and SIGHUP.
    let (trigger, mut triggers) = mpsc::unbounded_channel::<&'static str>();
    // The configuration file is watched for the gateway's section.
    let config_file = match (&gateway, &state.config.config_file) {
        (Some(_), Some(file)) => Some(
            std::path::absolute(file)
                .map_err(|e| format!("cannot resolve {}: {e}", file.display()))?,
        ),
        _ => None,
    };
    let watcher = if state.config.reload.watch
        && (!state.config.bundles.is_empty() || config_file.is_some())
    {
        Some(watch_folders(
            &state,
            config_file.as_deref(),
            trigger.clone(),
        )?)
    } else {
        None
    };
    #[cfg(unix)]
    {
        let sighup = trigger.clone();
        let mut stop_signal = stop.clone();
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    received = hangups.recv() => {
                        if received.is_none() { break; }
                        let _ = sighup.send("signal");
                    }
                    _ = stop_signal.changed() => break,
                }
            }
        }));
    }
    let reloader = Arc::clone(&state);
    let reloaded_gateway = gateway.clone().zip(config_file);
    let mut stop_reload = stop.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let cause = tokio::select! {
                cause = triggers.recv() => cause,
                _ = stop_reload.changed() => None,
            };
            let Some(first) = cause else { break };
            // Coalesce a burst of triggers into one reload; a SIGHUP among them also rescans
            // the dependencies and reloads the gateway's section, as does a change of the
            // configuration file (which alone reloads no bundle).
            let mut configured = first == CONFIG_CHANGED;
            let mut bundles = (first != CONFIG_CHANGED).then_some(first);
            let mut signalled = first == "signal";
            while let Ok(next) = triggers.try_recv() {
                signalled |= next == "signal";
                if next == CONFIG_CHANGED {
                    configured = true;
                } else {
                    bundles = Some(next);
                }
            }
            if let Some((gateway, file)) = &reloaded_gateway
                && (signalled || configured)
            {
                let _ = gateway.reload(file, if signalled { "signal" } else { "watch" });
            }
            let Some(cause) = bundles else { continue };
            let report = reload_all(&reloader, cause).await;
            if signalled {
                crate::snapshots::supply::scan(&reloader, "signal").await;
            }
            {
                tracing::info!(
                    trigger = cause,
                    applied = report.applied.len(),
                    unchanged = report.unchanged.len(),
                    failed = report.failed.len(),
                    removed = report.removed.len(),
                    "bundles reloaded"
                );
            }
        }
    }));

    // The store: changes announced by other nodes, and a periodic comparison of revisions in
    // case an announcement was missed.
    let mut changes = state.store.listen();
    let listener_state = Arc::clone(&state);
    let mut stop_listener = stop.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                _ = stop_listener.changed() => None,
            };
            match change {
                Some(portcullis_store::Change::Tenant(tenant)) => {
                    refresh_tenant(&listener_state, &tenant).await
                }
                Some(portcullis_store::Change::Resync) => poll(&listener_state).await,
                None => break,
            }
        }
    }));
    let poller = Arc::clone(&state);
    let mut stop_poll = stop.clone();
    tasks.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(poller.config.store.poll);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => poll(&poller).await,
                _ = stop_poll.changed() => break,
            }
        }
    }));
    // Temporary access: requests whose window ended are recorded as expired (an audit event
    // each). Decisions never wait for this; a grant ends with its window.
    let sweeper = Arc::clone(&state);
    let mut stop_sweep = stop.clone();
    tasks.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(EXPIRY_SWEEP);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => crate::edges::access::sweep_expired(&sweeper).await,
                _ = stop_sweep.changed() => break,
            }
        }
    }));

    Ok(RunningServer {
        state,
        addr,
        admin_addr,
        gateway_addr,
        gateway,
        generated_admin_token,
        shutdown,
        tasks,
        _watcher: watcher,
    })
}

/// How often ended access requests are recorded as expired.
const EXPIRY_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// The reload trigger of a change of the configuration file (the gateway's section).
const CONFIG_CHANGED: &str = "config";

/// Watches the bundle folders (a change reloads the bundles) and, when given, the
/// configuration file (a change reloads the gateway's section).
fn watch_folders(
    state: &AppState,
    config_file: Option<&std::path::Path>,
    trigger: mpsc::UnboundedSender<&'static str>,
) -> Result<Box<dyn std::any::Any + Send>, String> {
    let config_path = config_file.map(std::path::Path::to_path_buf);
    let bundle_folders: Vec<std::path::PathBuf> = state
        .config
        .bundles
        .iter()
        .filter_map(|folder| std::path::absolute(folder).ok())
        .collect();
    let in_bundles = move |path: &std::path::Path| {
        std::path::absolute(path)
            .is_ok_and(|path| bundle_folders.iter().any(|folder| path.starts_with(folder)))
    };
    let mut debouncer = notify_debouncer_full::new_debouncer(
        state.config.reload.debounce,
        None,
        move |result: notify_debouncer_full::DebounceEventResult| {
            let Ok(events) = result else { return };
            let (mut bundles, mut config) = (false, false);
            // Reading the bundles produces access events; only changes count.
            let config_folder = config_path.as_deref().and_then(std::path::Path::parent);
            for event in events.iter().filter(|event| {
                !matches!(
                    event.event.kind,
                    notify_debouncer_full::notify::EventKind::Access(_)
                )
            }) {
                for path in &event.event.paths {
                    if config_path.as_deref() == Some(path.as_path()) {
                        config = true;
                    } else if config_folder.is_none()
                        || path.parent() != config_folder
                        || in_bundles(path)
                    {
                        // The file's neighbours are seen only because its folder is watched.
                        bundles = true;
                    }
                }
            }
            if config {
                let _ = trigger.send(CONFIG_CHANGED);
            }
            if bundles {
                let _ = trigger.send("watch");
            }
        },
    )
    .map_err(|e| format!("cannot watch the bundle folders: {e}"))?;
    for folder in &state.config.bundles {
        debouncer
            .watch(folder, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
    }
    // The file's folder: an editor replaces the file rather than writing it.
    if let Some(folder) = config_file.and_then(std::path::Path::parent) {
        debouncer
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
    }
    Ok(Box::new(debouncer))
}

/// Runs until SIGINT or SIGTERM, printing where to reach the service.
pub async fn run(config: Config) -> Result<(), String> {
    let server = start(config, None).await?;
    // The handlers are in place before the banner says the service is up: a signal sent as
    // soon as it is read must stop the service cleanly (sealing the audit logs), not kill it.
    let termination = termination_signals();
    println!("{}", banner(&server));
    termination.await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now; the future completes on the first signal.
fn termination_signals() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                (Ok(mut only), Err(_)) | (Err(_), Ok(mut only)) => {
                    only.recv().await;
                }
                (Err(_), Err(_)) => std::future::pending::<()>().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What `portcullis serve` prints at start.
pub fn banner(server: &RunningServer) -> String {
    let config = &server.state.config;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{}", server.addr);
    let tenants: Vec<String> = server
        .state
        .policies()
        .iter()
        .map(|s| format!("{} ({})", s.tenant(), &s.revision()[..19]))
        .collect();
    let source = if config.embedded_demo {
        "the demo bundles built into this binary".to_owned()
    } else {
        config
            .bundles
            .iter()
            .map(|b| b.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "Portcullis is serving {source}\n  tenants: {}\n  API:     {base}   (OpenAPI {base}/openapi.json, docs {base}/docs)\n  admin:   http://{admin}   (OpenAPI http://{admin}/openapi.json)\n",
        tenants.join(", "),
        admin = server.admin_addr
    );
    if let (Some(addr), Some(settings)) = (server.gateway_addr, &config.gateway) {
        let apps: Vec<String> = settings
            .apps
            .iter()
            .map(|app| format!("{} → {}", app.host, app.upstream.url()))
            .collect();
        let scheme = if settings.tls { "https" } else { "http" };
        text.push_str(&format!(
            "  gateway: {scheme}://{addr}   (applications: {})\n",
            apps.join(", ")
        ));
    }
    if let Some(token) = &server.generated_admin_token {
        text.push_str(&format!(
            "  admin token (generated for this run; configure [[admin.tokens]] or PORTCULLIS_ADMIN_TOKEN to keep one):\n    {token}\n"
        ));
    }
    text.push_str(&format!(
        "\nTry it:\n  curl -s {base}/v1/check -H 'content-type: application/json' -d '{{\"tenant\":\"acme\",\"principal\":{{\"id\":\"bob\"}},\"action\":\"app:logs.download\",\"resource\":{{\"type\":\"app\",\"id\":\"payments\"}},\"context\":{{\"ip\":\"172.16.3.4\"}}}}'\n"
    ));
    text
}
