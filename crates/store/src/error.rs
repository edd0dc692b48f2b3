//! Store errors, in terms a caller can answer with: not found, conflict, invalid, unavailable.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tenant, principal, bundle version or assignment does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It already exists (a tenant created twice).
    #[error("{0}")]
    Conflict(String),
    /// The input is not acceptable (an id too long, a bad resource pattern, ...).
    #[error("{0}")]
    Invalid(String),
    /// The change breaks a rule of the data as it stands (an access request approved by its
    /// own requester, twice by one person, or after it was closed); `code` names the rule.
    #[error("{message}")]
    Refused {
        /// The rule, as a stable code (`self_approval`, `already_approved`, ...).
        code: &'static str,
        /// What was refused and why, in words for the caller.
        message: String,
    },
    /// The database cannot be reached or refused the connection.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Any other database error.
    #[error("store error: {0}")]
    Database(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(error.to_string()),
            sqlx::Error::Database(database) if database.is_unique_violation() => {
                tracing::debug!(message = database.message(), "unique violation");
                StoreError::Conflict(
                    "a concurrent change wrote the same record first; retry".to_owned(),
                )
            }
            sqlx::Error::Database(database) if database.is_foreign_key_violation() => {
                tracing::debug!(message = database.message(), "foreign key violation");
                StoreError::NotFound("a record the change refers to does not exist".to_owned())
            }
            _ => StoreError::Database(error.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(error.to_string())
    }
}
