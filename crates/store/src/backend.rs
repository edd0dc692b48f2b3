//! Connecting, migrating, routing tenants to databases (shards), the directory and change
//! notifications.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use portcullis_core::TenantId;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::records::{DirectoryEntry, TenantStatus};
use crate::tenant::TenantStore;

/// The PostgreSQL channel on which every write announces its tenant.
pub const CHANNEL: &str = "portcullis_changes";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Where the store lives.
#[derive(Clone, Default)]
pub struct StoreConfig {
    /// `sqlite://path` (created if missing) or `postgres://…` as the service role.
    pub url: String,
    /// For PostgreSQL: the owner's URL, used to run migrations (which create the service role
    /// and the row-level security policies). Without it, migrations run through `url`, which
    /// then must be the owner — fine for SQLite, not for a hardened PostgreSQL deployment.
    pub migrate_url: Option<String>,
    /// Tenants placed on other PostgreSQL databases: tenant to (service URL, owner URL).
    pub shards: BTreeMap<TenantId, (String, Option<String>)>,
    /// Pool size per database.
    pub max_connections: u32,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry passwords.
        f.debug_struct("StoreConfig")
            .field(
                "backend",
                &if self.url.starts_with("sqlite") {
                    "sqlite"
                } else {
                    "postgres"
                },
            )
            .field("shards", &self.shards.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One database.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Backend {
    async fn open(
        url: &str,
        migrate_url: Option<&str>,
        max_connections: u32,
    ) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Invalid(format!("store url: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect_with(options)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            Ok(Backend::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Invalid(format!("store url: {e}")))?;
            {
                let owner = match migrate_url {
                    Some(owner) => PgConnectOptions::from_str(owner)
                        .map_err(|e| StoreError::Invalid(format!("store migrate url: {e}")))?,
                    None => options.clone(),
                };
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(owner)
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                pool.close().await;
            }
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            Ok(Backend::Postgres(pool))
        } else {
            Err(StoreError::Invalid(
                "store url must start with sqlite: or postgres:".to_owned(),
            ))
        }
    }

    async fn directory(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        let rows = match self {
            // The directory function is the one cross-tenant read; it exposes no tenant data.
            Backend::Postgres(pool) => {
                sqlx::query("SELECT tenant_id, status, domain, data_revision FROM portcullis_directory()")
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|row| directory_entry(&row))
                    .collect::<Result<Vec<_>, _>>()?
            }
            Backend::Sqlite(pool) => {
                sqlx::query("SELECT /* directory */ tenant_id, status, domain, data_revision FROM tenants ORDER BY tenant_id")
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|row| directory_entry(&row))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    async fn close(&self) {
        match self {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

fn directory_entry<R: Row>(row: &R) -> Result<DirectoryEntry, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let id: String = row.try_get("tenant_id")?;
    let status: String = row.try_get("status")?;
    Ok(DirectoryEntry {
        tenant: TenantId::new(&id).map_err(|e| StoreError::Database(e.to_string()))?,
        status: TenantStatus::parse(&status),
        domain: row.try_get("domain")?,
        data_revision: row.try_get("data_revision")?,
    })
}

/// A change announced by another node (or this one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A tenant's data changed.
    Tenant(TenantId),
    /// Notifications may have been missed (the listening connection was re-established):
    /// compare every tenant's revision.
    Resync,
}

/// The store: a default database and, optionally, tenants placed on other databases.
#[derive(Debug, Clone)]
pub struct Store {
    default: Backend,
    shards: BTreeMap<TenantId, Backend>,
}

impl Store {
    /// Connects to every database and runs the migrations.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let max = if config.max_connections == 0 {
            8
        } else {
            config.max_connections
        };
        let default = Backend::open(&config.url, config.migrate_url.as_deref(), max).await?;
        let mut shards = BTreeMap::new();
        for (tenant, (url, migrate_url)) in &config.shards {
            if !url.starts_with("postgres") {
                return Err(StoreError::Invalid(format!(
                    "shard of tenant `{tenant}` must be a PostgreSQL url"
                )));
            }
            shards.insert(
                tenant.clone(),
                Backend::open(url, migrate_url.as_deref(), max).await?,
            );
        }
        Ok(Store { default, shards })
    }

    /// Whether the default database is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.default, Backend::Postgres(_))
    }

    /// The data of one tenant, on the database that holds it.
    pub fn tenant(&self, tenant: &TenantId) -> TenantStore<'_> {
        let backend = self.shards.get(tenant).unwrap_or(&self.default);
        TenantStore::new(backend, tenant.clone())
    }

    /// Every tenant with its status and data revision, across all databases. A tenant is read
    /// only from the database it is placed on.
    pub async fn directory(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        let mut entries: Vec<DirectoryEntry> = self
            .default
            .directory()
            .await?
            .into_iter()
            .filter(|entry| !self.shards.contains_key(&entry.tenant))
            .collect();
        for (tenant, backend) in &self.shards {
            entries.extend(
                backend
                    .directory()
                    .await?
                    .into_iter()
                    .filter(|entry| &entry.tenant == tenant),
            );
        }
        entries.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(entries)
    }

    /// Listens for changes on every PostgreSQL database, reconnecting when a connection drops
    /// (and sending [`Change::Resync`] after each reconnection). SQLite announces nothing: a
    /// single node sees its own writes.
    pub fn listen(&self) -> mpsc::Receiver<Change> {
        let (sender, receiver) = mpsc::channel(1024);
        let mut pools: Vec<PgPool> = Vec::new();
        if let Backend::Postgres(pool) = &self.default {
            pools.push(pool.clone());
        }
        for backend in self.shards.values() {
            if let Backend::Postgres(pool) = backend {
                pools.push(pool.clone());
            }
        }
        for pool in pools {
            let sender = sender.clone();
            tokio::spawn(async move { listen_forever(pool, sender).await });
        }
        receiver
    }

    /// Closes every pool.
    pub async fn close(&self) {
        self.default.close().await;
        for backend in self.shards.values() {
            backend.close().await;
        }
    }
}

async fn listen_forever(pool: PgPool, sender: mpsc::Sender<Change>) {
    let mut first = true;
    loop {
        if sender.is_closed() {
            return;
        }
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for store changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "cannot listen for store changes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if !first && sender.send(Change::Resync).await.is_err() {
            return;
        }
        first = false;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Ok(tenant) = TenantId::new(notification.payload())
                        && sender.send(Change::Tenant(tenant)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!("store change notifications interrupted; reconnecting");
                    if sender.send(Change::Resync).await.is_err() {
                        return;
                    }
                }
                // Closing the pool (shutdown) ends the listener.
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "store change notifications failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
