//! Row-level-security migration statements: the schema half of the database backstop.
//!
//! This module owns the SQL text that puts a tenant table under row-level security: enabled,
//! forced (so the table's owner is filtered too), and one policy, `tenant_isolation`, whose
//! `USING` and `WITH CHECK` both compare the tenant column with the transaction's tenant setting.
//! It builds SQL from identifiers, so it must accept nothing but plain identifiers: letters,
//! digits and underscores.
//!
//! With no tenant set, `current_setting('app.tenant_id', true)` is NULL (never set on the
//! connection) or `''` (set by an earlier transaction that ended); `NULLIF(…, '')` turns both into
//! NULL, the comparison is then never true, and the query sees no rows and may write none.

use std::fmt;

/// The PostgreSQL setting that holds the tenant of the current transaction.
pub const TENANT_SETTING: &str = "app.tenant_id";

/// The name of the policy [`rls_statements`] creates (policy names are per table).
pub const POLICY_NAME: &str = "tenant_isolation";

/// Longest PostgreSQL identifier, in bytes (`NAMEDATALEN - 1`); longer names would be truncated
/// silently, so they are refused.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// The statements that put `table` under tenant row-level security on `tenant_column`.
///
/// `table` is `name` or `schema.name`; each part and the column are letters, digits and
/// underscores, not starting with a digit, at most 63 bytes. Names are folded to lower case and
/// quoted, which is exactly how PostgreSQL reads an unquoted name in hand-written SQL, while
/// letting reserved words such as `user` be used. The column must hold the tenant id as text.
///
/// The statements contain only the validated names and fixed text, so running them through
/// sqlx's `AssertSqlSafe` is sound. Run them as the table's owner, in the migration that creates
/// the table.
///
/// ```
/// let statements = portcullis_tenant::toolkit::rls_statements("tuples", "tenant_id").unwrap();
/// assert_eq!(statements, [
///     r#"ALTER TABLE "tuples" ENABLE ROW LEVEL SECURITY"#,
///     r#"ALTER TABLE "tuples" FORCE ROW LEVEL SECURITY"#,
///     r#"CREATE POLICY tenant_isolation ON "tuples" AS PERMISSIVE FOR ALL USING ("tenant_id" = NULLIF(current_setting('app.tenant_id', true), '')) WITH CHECK ("tenant_id" = NULLIF(current_setting('app.tenant_id', true), ''))"#,
/// ]);
/// ```
pub fn rls_statements(table: &str, tenant_column: &str) -> Result<Vec<String>, InvalidIdentifier> {
    let table = match table.split_once('.') {
        Some((schema, name)) => format!(
            "{}.{}",
            identifier(IdentifierKind::Schema, schema)?,
            identifier(IdentifierKind::Table, name)?
        ),
        None => identifier(IdentifierKind::Table, table)?,
    };
    let column = identifier(IdentifierKind::Column, tenant_column)?;
    let predicate = format!("{column} = NULLIF(current_setting('{TENANT_SETTING}', true), '')");
    Ok(vec![
        format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
        format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"),
        format!(
            "CREATE POLICY {POLICY_NAME} ON {table} AS PERMISSIVE FOR ALL \
             USING ({predicate}) WITH CHECK ({predicate})"
        ),
    ])
}

/// What an identifier names, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// A schema (the part before the dot of `schema.table`).
    Schema,
    /// A table.
    Table,
    /// A column.
    Column,
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentifierKind::Schema => "schema",
            IdentifierKind::Table => "table",
            IdentifierKind::Column => "column",
        })
    }
}

/// Why a name cannot be used in the generated SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {kind} name {value:?}: {problem}; use 1 to 63 ASCII letters, digits and '_', not starting with a digit"
)]
pub struct InvalidIdentifier {
    /// What the name was for.
    pub kind: IdentifierKind,
    /// The rejected name (truncated to 80 characters).
    pub value: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Checks one identifier and returns it folded to lower case and double-quoted.
fn identifier(kind: IdentifierKind, value: &str) -> Result<String, InvalidIdentifier> {
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > MAX_IDENTIFIER_LEN {
        Some("it is longer than 63 bytes")
    } else if value.starts_with(|c: char| c.is_ascii_digit()) {
        Some("it starts with a digit")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Some("it contains a character other than ASCII letters, digits and '_'")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(InvalidIdentifier {
            kind,
            value: value.chars().take(80).collect(),
            problem,
        }),
        None => Ok(format!("\"{}\"", value.to_ascii_lowercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_enable_force_and_create_the_policy() {
        let statements = rls_statements("portcullis.Role_Assignments", "tenant_id").unwrap();
        let predicate = r#""tenant_id" = NULLIF(current_setting('app.tenant_id', true), '')"#;
        assert_eq!(
            statements,
            vec![
                r#"ALTER TABLE "portcullis"."role_assignments" ENABLE ROW LEVEL SECURITY"#
                    .to_owned(),
                r#"ALTER TABLE "portcullis"."role_assignments" FORCE ROW LEVEL SECURITY"#
                    .to_owned(),
                format!(
                    r#"CREATE POLICY tenant_isolation ON "portcullis"."role_assignments" AS PERMISSIVE FOR ALL USING ({predicate}) WITH CHECK ({predicate})"#
                ),
            ]
        );
        // Reserved words are fine as names because they are quoted.
        let user = rls_statements("user", "order").unwrap();
        assert!(user[0].contains(r#"ALTER TABLE "user" "#), "{}", user[0]);
        assert!(user[2].contains(r#"USING ("order" = "#), "{}", user[2]);
    }

    #[test]
    fn anything_but_plain_identifiers_is_refused() {
        let long = "t".repeat(64);
        let cases = [
            (
                "items; DROP TABLE items",
                "tenant_id",
                IdentifierKind::Table,
                "character other",
            ),
            (
                "items",
                "tenant_id) OR (true",
                IdentifierKind::Column,
                "character other",
            ),
            (
                "\"items\"",
                "tenant_id",
                IdentifierKind::Table,
                "character other",
            ),
            (
                "items",
                "tenant-id",
                IdentifierKind::Column,
                "character other",
            ),
            (
                "a.b.c",
                "tenant_id",
                IdentifierKind::Table,
                "character other",
            ),
            (".items", "tenant_id", IdentifierKind::Schema, "empty"),
            ("public.", "tenant_id", IdentifierKind::Table, "empty"),
            ("", "tenant_id", IdentifierKind::Table, "empty"),
            ("items", "", IdentifierKind::Column, "empty"),
            (
                "1items",
                "tenant_id",
                IdentifierKind::Table,
                "starts with a digit",
            ),
            (
                long.as_str(),
                "tenant_id",
                IdentifierKind::Table,
                "longer than 63",
            ),
            (
                "itéms",
                "tenant_id",
                IdentifierKind::Table,
                "character other",
            ),
            (
                "items",
                "tenant_id\u{0}",
                IdentifierKind::Column,
                "character other",
            ),
        ];
        for (table, column, kind, problem) in cases {
            let err = rls_statements(table, column).unwrap_err();
            assert_eq!(err.kind, kind, "{table:?} {column:?}: {err}");
            assert!(err.problem.contains(problem), "{table:?} {column:?}: {err}");
        }
        assert!(rls_statements(&"t".repeat(63), "_tenant_2").is_ok());
    }
}
