//! The statements of the database store, written once and spelled for each backend:
//! identifier quotes, parameter markers, casts and the forms of DDL and batched DELETE.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// Which database server (or file) holds the sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    MySql,
    Postgres,
    Sqlite,
}

impl Backend {
    /// `type` as ThinkJS and its adapters spell it, plus common aliases.
    pub fn from_name(name: &str) -> Option<Backend> {
        match name.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => Some(Backend::MySql),
            "postgresql" | "postgres" | "pg" => Some(Backend::Postgres),
            "sqlite" | "sqlite3" => Some(Backend::Sqlite),
            _ => None,
        }
    }

    /// The backend a connection URL names by its scheme.
    pub fn from_url(url: &str) -> Option<Backend> {
        Backend::from_name(url.split(':').next()?)
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::MySql => "mysql",
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        }
    }

    fn quote(self, ident: &str) -> String {
        // `ident` is checked to be a plain identifier before it gets here.
        match self {
            Backend::MySql => format!("`{ident}`"),
            Backend::Postgres | Backend::Sqlite => format!("\"{ident}\""),
        }
    }

    fn bigint(self, expr: &str) -> String {
        match self {
            Backend::MySql => format!("CAST({expr} AS SIGNED)"),
            Backend::Postgres | Backend::Sqlite => format!("CAST({expr} AS BIGINT)"),
        }
    }
}

/// Numbers parameters in the order they appear: `?` or `$1, $2, …`. Every statement binds
/// its values in that same order.
struct Params {
    backend: Backend,
    next: usize,
}

impl Params {
    fn new(backend: Backend) -> Self {
        Params { backend, next: 0 }
    }

    fn next(&mut self) -> String {
        self.next += 1;
        match self.backend {
            Backend::Postgres => format!("${}", self.next),
            Backend::MySql | Backend::Sqlite => "?".into(),
        }
    }
}

fn sql(text: String) -> SqlStr {
    // Table and column names are plain identifiers checked by `check_prefix`; every value
    // is a bound parameter.
    AssertSqlSafe(Arc::<str>::from(text)).into_sql_str()
}

/// `prefix` is glued to `session` to name the table: only a plain identifier may pass.
pub fn check_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    prefix.len() <= 48
        && chars
            .next()
            .is_none_or(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The columns of the table as it is, and the statements that fit it.
pub struct Statements {
    /// Binds cookie; yields data (text or NULL), expire, maxage (0 without the column).
    pub select: SqlStr,
    /// Binds data, expire, [maxage], cookie, the expire and the data read before.
    pub update: SqlStr,
    /// Binds cookie, data, expire, [maxage]; inserts nothing when the cookie has a row.
    /// With MySQL that is a duplicate-key error instead (INSERT IGNORE would also let
    /// through truncated or mangled text).
    pub insert: SqlStr,
    /// Binds expire, [maxage], cookie, now.
    pub touch: SqlStr,
    /// Binds cookie.
    pub delete: SqlStr,
    /// Gives a live row a new cookie; binds the new cookie, the old one, now.
    pub rename: SqlStr,
    /// Deletes up to `GC_BATCH` expired rows; binds now `gc_now_params` times.
    pub gc: SqlStr,
    pub gc_now_params: usize,
}

pub const GC_BATCH: u32 = 1000;

impl Statements {
    pub fn new(backend: Backend, table: &str, with_max_age: bool) -> Self {
        let t = backend.quote(table);
        let data = match backend {
            Backend::Postgres => "CAST(data AS TEXT)",
            Backend::MySql | Backend::Sqlite => "data",
        };
        let max_age = if with_max_age { "maxage" } else { "0" };

        let mut p = Params::new(backend);
        let select = format!(
            "SELECT {data}, {}, {} FROM {t} WHERE cookie = {}",
            backend.bigint("expire"),
            backend.bigint(max_age),
            p.next()
        );

        let mut p = Params::new(backend);
        let mut set = format!("data = {}, expire = {}", p.next(), p.next());
        if with_max_age {
            set += &format!(", maxage = {}", p.next());
        }
        let (cookie, old_expire, old_data) = (p.next(), p.next(), p.next());
        // The compare-and-set: the row must still hold exactly what was read (NULL-safe,
        // byte for byte whatever the column's collation).
        let same_data = match backend {
            // The column's text in the connection's utf8mb4, whatever its own character set.
            Backend::MySql => format!(
                "CAST(CONVERT(data USING utf8mb4) AS BINARY) <=> CAST({old_data} AS BINARY)"
            ),
            Backend::Postgres => format!("data IS NOT DISTINCT FROM {old_data}"),
            Backend::Sqlite => format!("data IS {old_data}"),
        };
        // `expire + 0` keeps the planner off the expire index, which MariaDB prefers to the
        // unique cookie for its shorter key: two writers of one row then lock its expire
        // entries in opposite orders and deadlock. Through the cookie they queue instead.
        let update = format!(
            "UPDATE {t} SET {set} WHERE cookie = {cookie} AND expire + 0 = {old_expire} \
             AND {same_data}"
        );

        let mut p = Params::new(backend);
        let columns = if with_max_age {
            "cookie, data, expire, maxage"
        } else {
            "cookie, data, expire"
        };
        let values: Vec<String> = (0..if with_max_age { 4 } else { 3 })
            .map(|_| p.next())
            .collect();
        let on_conflict = match backend {
            Backend::MySql => "",
            Backend::Postgres | Backend::Sqlite => " ON CONFLICT DO NOTHING",
        };
        let insert = format!(
            "INSERT INTO {t} ({columns}) VALUES ({}){on_conflict}",
            values.join(", ")
        );

        let mut p = Params::new(backend);
        let mut set = format!("expire = {}", p.next());
        if with_max_age {
            set += &format!(", maxage = {}", p.next());
        }
        // `expire + 0` here and in rename: as in update, the row is found by its cookie.
        let touch = format!(
            "UPDATE {t} SET {set} WHERE cookie = {} AND expire + 0 > {}",
            p.next(),
            p.next()
        );

        let delete = format!(
            "DELETE FROM {t} WHERE cookie = {}",
            Params::new(backend).next()
        );

        let mut p = Params::new(backend);
        let rename = format!(
            "UPDATE {t} SET cookie = {} WHERE cookie = {} AND expire + 0 > {}",
            p.next(),
            p.next(),
            p.next()
        );

        // Bounded batches keep each DELETE's locks short. MySQL takes LIMIT on DELETE
        // itself; the others pick the batch in a subquery and check the expiry again.
        let mut p = Params::new(backend);
        let (gc, gc_now_params) = match backend {
            Backend::MySql => (
                format!(
                    "DELETE FROM {t} WHERE expire <= {} LIMIT {GC_BATCH}",
                    p.next()
                ),
                1,
            ),
            Backend::Postgres | Backend::Sqlite => {
                let key = if backend == Backend::Sqlite {
                    "rowid"
                } else {
                    "cookie"
                };
                (
                    format!(
                        "DELETE FROM {t} WHERE expire <= {} AND {key} IN \
                         (SELECT {key} FROM {t} WHERE expire <= {} LIMIT {GC_BATCH})",
                        p.next(),
                        p.next()
                    ),
                    2,
                )
            }
        };

        Statements {
            select: sql(select),
            update: sql(update),
            insert: sql(insert),
            touch: sql(touch),
            delete: sql(delete),
            rename: sql(rename),
            gc: sql(gc),
            gc_now_params,
        }
    }
}

/// Lists the table's columns: name, type, and the most bytes a text column holds (NULL
/// where unbounded or unknown). Binds the table name.
pub fn columns(backend: Backend) -> SqlStr {
    sql(match backend {
        Backend::MySql => "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), \
             CAST(character_octet_length AS SIGNED) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ?"
            .into(),
        Backend::Postgres => "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT), \
             CAST(character_octet_length AS BIGINT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1"
            .into(),
        Backend::Sqlite => {
            "SELECT name, type, CAST(NULL AS INTEGER) FROM pragma_table_info(?)".into()
        }
    })
}

/// Counts the unique indexes (the primary key included) on `cookie`: the merge relies on one
/// row per session. Binds the table name.
pub fn unique_cookie(backend: Backend) -> SqlStr {
    sql(match backend {
        Backend::MySql => "SELECT COUNT(*) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'cookie' \
             AND non_unique = 0"
            .into(),
        Backend::Postgres => "SELECT COUNT(*) FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisunique AND a.attname = 'cookie'"
            .into(),
        Backend::Sqlite => "SELECT COUNT(*) FROM pragma_index_list(?) AS l \
             JOIN pragma_index_info(l.name) AS c WHERE l.\"unique\" = 1 AND c.name = 'cookie'"
            .into(),
    })
}

/// The DDL of a new table: ThinkJS 3's columns (ThinkJS 2's adapter ignores `maxage`), a
/// case-sensitive unique cookie, room for large sessions, and an index for gc.
pub fn create_table(backend: Backend, table: &str) -> SqlStr {
    let t = backend.quote(table);
    let index = backend.quote(&format!("{table}_expire"));
    sql(match backend {
        Backend::MySql => format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             `id` int unsigned NOT NULL AUTO_INCREMENT, \
             `cookie` varchar(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '', \
             `data` mediumtext, \
             `expire` bigint NOT NULL DEFAULT 0, \
             `maxage` bigint NOT NULL DEFAULT 0, \
             PRIMARY KEY (`id`), UNIQUE KEY `cookie` (`cookie`), KEY `expire` (`expire`)\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
        Backend::Postgres => format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id serial PRIMARY KEY, \
             cookie varchar(255) NOT NULL DEFAULT '' UNIQUE, \
             data text, \
             expire bigint NOT NULL DEFAULT 0, \
             maxage bigint NOT NULL DEFAULT 0); \
             CREATE INDEX IF NOT EXISTS {index} ON {t} (expire)"
        ),
        Backend::Sqlite => format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id INTEGER PRIMARY KEY AUTOINCREMENT, \
             cookie TEXT NOT NULL DEFAULT '' UNIQUE, \
             data TEXT, \
             expire INTEGER NOT NULL DEFAULT 0, \
             maxage INTEGER NOT NULL DEFAULT 0); \
             CREATE INDEX IF NOT EXISTS {index} ON {t} (expire)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_be_plain_identifiers() {
        for good in ["", "think_", "app2_", "_x"] {
            assert!(check_prefix(good), "{good:?}");
        }
        for bad in [
            "a b",
            "x`; DROP TABLE t; --",
            "x\"",
            "1x",
            "é_",
            "a.b",
            "a-b",
            &"x".repeat(49),
        ] {
            assert!(!check_prefix(bad), "{bad:?}");
        }
    }

    #[test]
    fn parameters_follow_the_backend() {
        let pg = Statements::new(Backend::Postgres, "think_session", true);
        assert!(pg.update.as_str().contains("$6"), "{}", pg.update.as_str());
        let my = Statements::new(Backend::MySql, "think_session", false);
        assert_eq!(my.insert.as_str().matches('?').count(), 3);
        assert!(my
            .select
            .as_str()
            .starts_with("SELECT data, CAST(expire AS SIGNED), CAST(0"));
    }
}
