//! What the session table is: read on first use (and created when missing and allowed),
//! checked to be a session table, and turned into the statements the store runs.

use sqlx::Row;

use super::connect::Pools;
use super::sql::{self, Statements};
use super::DbStore;
use crate::error::Result;

/// What the table turned out to be.
pub(super) struct Schema {
    pub statements: Statements,
    /// ThinkJS 3's table; ThinkJS 2's has no `maxage` and its records live by `expire` alone.
    pub with_max_age: bool,
    /// think-session-mysql's `maxage int(11)` holds at most 2^31-1 ms (24.8 days).
    pub max_age_limit: i64,
    /// The store's `maxBytes`, lowered to what the `data` column holds (64 KiB for TEXT).
    pub max_bytes: usize,
}

impl DbStore {
    /// The table's shape, read on first use.
    pub(super) async fn schema(&self) -> Result<&Schema> {
        self.schema.get_or_try_init(|| self.read_schema()).await
    }

    /// Reads the table's columns, creating the table first when it is missing and allowed.
    async fn read_schema(&self) -> Result<Schema> {
        let mut columns = self.columns().await?;
        if columns.is_empty() && self.create_table {
            let ddl = sql::create_table(self.backend(), &self.table);
            let created = on_connection!(self, |conn| sqlx::raw_sql(ddl.clone())
                .execute(&mut *conn)
                .await
                .map(|_| ()));
            columns = self.columns().await?;
            // Another process may have created it at the same moment: only a table still
            // missing makes the failure ours.
            if columns.is_empty() {
                created?;
            }
        }
        if columns.is_empty() {
            return Err(self.failure(format!(
                "the session table `{}` does not exist; create it (see the README) or set createTable: true",
                self.table
            )));
        }
        let column = |name: &str| {
            columns
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        };
        for name in ["cookie", "data", "expire"] {
            if column(name).is_none() {
                return Err(self.failure(format!(
                    "the table `{}` has no `{name}` column: it is not a session table",
                    self.table
                )));
            }
        }
        if self.unique_cookie_indexes().await? == 0 {
            return Err(self.failure(format!(
                "the table `{}` has no UNIQUE index on `cookie`; the store needs one row per session \
                 (add one, or let the store create its table)",
                self.table
            )));
        }
        let max_age = column("maxage");
        let max_age_limit = match max_age {
            Some((_, kind, _))
                if matches!(
                    kind.to_ascii_lowercase().as_str(),
                    "int" | "integer" | "mediumint"
                ) =>
            {
                i32::MAX as i64
            }
            _ => i64::MAX,
        };
        let data_limit = column("data")
            .and_then(|(_, _, bytes)| *bytes)
            .and_then(|bytes| usize::try_from(bytes).ok())
            .filter(|&bytes| bytes > 0);
        Ok(Schema {
            statements: Statements::new(self.backend(), &self.table, max_age.is_some()),
            with_max_age: max_age.is_some(),
            max_age_limit,
            max_bytes: data_limit.map_or(self.max_bytes, |limit| limit.min(self.max_bytes)),
        })
    }

    async fn columns(&self) -> Result<Vec<(String, String, Option<i64>)>> {
        let query = sql::columns(self.backend());
        let table = &self.table;
        on_connection!(self, |conn| {
            let rows = sqlx::query(query.clone())
                .bind(table)
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<sqlx::Result<Vec<_>>>()
        })
    }

    async fn unique_cookie_indexes(&self) -> Result<i64> {
        let query = sql::unique_cookie(self.backend());
        let table = &self.table;
        on_connection!(self, |conn| {
            let row = sqlx::query(query.clone())
                .bind(table)
                .fetch_one(&mut *conn)
                .await?;
            row.try_get(0)
        })
    }
}
