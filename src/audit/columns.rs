//! The columns of `audit_log` the writer fills, defined once: each column's name, its type, and
//! how a row gives its value. The live `COPY`, its binary types, the replay `INSERT … UNNEST` and
//! its per-column arrays are all derived from [`COLUMNS`], so a column added here is added to
//! every statement, in the same place.

use super::record::AuditRecord;
use bytes::BytesMut;
use std::error::Error;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// One value of a row, borrowed from it (no string is copied but the address's text).
#[derive(Debug)]
enum Val<'a> {
    Time(SystemTime),
    Text(&'a str),
    OptText(Option<&'a str>),
    Owned(Option<String>),
    Texts(&'a [String]),
    Int(i32),
    OptInt(Option<i32>),
    Big(i64),
    Float(f64),
    OptFloat(Option<f64>),
}

impl ToSql for Val<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Val::Time(v) => v.to_sql(ty, out),
            Val::Text(v) => v.to_sql(ty, out),
            Val::OptText(v) => v.to_sql(ty, out),
            Val::Owned(v) => v.to_sql(ty, out),
            Val::Texts(v) => v.to_sql(ty, out),
            Val::Int(v) => v.to_sql(ty, out),
            Val::OptInt(v) => v.to_sql(ty, out),
            Val::Big(v) => v.to_sql(ty, out),
            Val::Float(v) => v.to_sql(ty, out),
            Val::OptFloat(v) => v.to_sql(ty, out),
        }
    }

    /// Each column's type is given by [`COLUMNS`] and checked by PostgreSQL.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One column: its name, its type in `COPY`, its array type and select expression in the replay
/// `INSERT` (`u.cN` is its unnested value), and its value for each statement.
struct Column {
    name: &'static str,
    copy_type: Type,
    array_type: &'static str,
    select: Option<&'static str>,
    copy: for<'a> fn(&'a AuditRecord) -> Val<'a>,
    /// The replay's value when it differs from the `COPY`'s.
    insert: Option<for<'a> fn(&'a AuditRecord) -> Val<'a>>,
}

const fn col(
    name: &'static str,
    copy_type: Type,
    array_type: &'static str,
    copy: for<'a> fn(&'a AuditRecord) -> Val<'a>,
) -> Column {
    Column {
        name,
        copy_type,
        array_type,
        select: None,
        copy,
        insert: None,
    }
}

/// Every column, in the order of the statements.
static COLUMNS: [Column; 29] = [
    Column {
        name: "time",
        copy_type: Type::TIMESTAMPTZ,
        array_type: "int8[]",
        select: Some("'epoch'::timestamptz + u.c0 * interval '1 microsecond'"),
        copy: |r| Val::Time(UNIX_EPOCH + Duration::from_micros(r.time_us.max(0) as u64)),
        insert: Some(|r| Val::Big(r.time_us)),
    },
    col("request_id", Type::TEXT, "text[]", |r| {
        Val::Text(&r.request_id)
    }),
    col("instance", Type::TEXT, "text[]", |r| Val::Text(&r.instance)),
    col("user_id", Type::TEXT, "text[]", |r| {
        Val::OptText(r.user_id.as_deref())
    }),
    col("tenant", Type::TEXT, "text[]", |r| {
        Val::OptText(r.tenant.as_deref())
    }),
    // Arrays of arrays cannot be unnested: the replay joins each row's roles with U+001F.
    Column {
        name: "roles",
        copy_type: Type::TEXT_ARRAY,
        array_type: "text[]",
        select: Some("string_to_array(u.c5, E'\\x1f')"),
        copy: |r| Val::Texts(&r.roles),
        insert: Some(|r| Val::Owned(Some(r.roles.join("\u{1f}")))),
    },
    col("scope", Type::TEXT, "text[]", |r| {
        Val::OptText(r.scope.as_deref())
    }),
    col("method", Type::TEXT, "text[]", |r| {
        Val::OptText(r.method.as_deref())
    }),
    col("tool", Type::TEXT, "text[]", |r| {
        Val::OptText(r.tool.as_deref())
    }),
    col("jsonrpc_id", Type::TEXT, "text[]", |r| {
        Val::OptText(r.jsonrpc_id.as_deref())
    }),
    col("outcome", Type::TEXT, "text[]", |r| {
        Val::Text(r.outcome.as_str())
    }),
    col("reason", Type::TEXT, "text[]", |r| {
        Val::OptText(r.reason.as_deref())
    }),
    col("rpc_error_code", Type::INT4, "int4[]", |r| {
        Val::OptInt(r.rpc_error_code)
    }),
    col("http_status", Type::INT4, "int4[]", |r| {
        Val::Int(r.http_status)
    }),
    col("upstream", Type::TEXT, "text[]", |r| {
        Val::OptText(r.upstream.as_deref())
    }),
    col("latency_ms", Type::FLOAT8, "float8[]", |r| {
        Val::Float(r.latency_ms)
    }),
    col("upstream_latency_ms", Type::FLOAT8, "float8[]", |r| {
        Val::OptFloat(r.upstream_latency_ms)
    }),
    col("request_bytes", Type::INT8, "int8[]", |r| {
        Val::Big(r.request_bytes)
    }),
    col("response_bytes", Type::INT8, "int8[]", |r| {
        Val::Big(r.response_bytes)
    }),
    col("client_addr", Type::TEXT, "text[]", |r| {
        Val::Owned(r.client_addr.map(|a| a.to_string()))
    }),
    col("session_hash", Type::TEXT, "text[]", |r| {
        Val::OptText(r.session_hash.as_deref())
    }),
    col("arguments_mode", Type::TEXT, "text[]", |r| {
        Val::Text(&r.arguments_mode)
    }),
    col("arguments", Type::TEXT, "text[]", |r| {
        Val::OptText(r.arguments.as_deref())
    }),
    col("client_cert", Type::TEXT, "text[]", |r| {
        Val::OptText(r.client_cert.as_deref())
    }),
    col("job_id", Type::TEXT, "text[]", |r| {
        Val::OptText(r.job_id.as_deref())
    }),
    col("upstream_credential", Type::TEXT, "text[]", |r| {
        Val::OptText(r.upstream_credential.as_deref())
    }),
    col("policy_rule", Type::TEXT, "text[]", |r| {
        Val::OptText(r.policy_rule.as_deref())
    }),
    col("guard_hits", Type::TEXT, "text[]", |r| {
        Val::OptText(r.guard_hits.as_deref())
    }),
    col("trace_id", Type::TEXT, "text[]", |r| {
        Val::OptText(r.trace_id.as_deref())
    }),
];

/// The audit columns in order, as `audit show` selects them.
pub fn names() -> String {
    COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `COPY audit_log (…) FROM STDIN (FORMAT binary)`.
static COPY: LazyLock<String> =
    LazyLock::new(|| format!("COPY audit_log ({}) FROM STDIN (FORMAT binary)", names()));

/// The column types of [`COPY`], in its order.
static COPY_TYPES: LazyLock<Vec<Type>> =
    LazyLock::new(|| COLUMNS.iter().map(|c| c.copy_type.clone()).collect());

/// `INSERT INTO audit_log (…) SELECT … FROM UNNEST($1::…[], …) ON CONFLICT (request_id) DO NOTHING`.
static INSERT: LazyLock<String> = LazyLock::new(|| {
    let each = |f: &dyn Fn(usize, &Column) -> String| {
        let parts: Vec<String> = COLUMNS.iter().enumerate().map(|(i, c)| f(i, c)).collect();
        parts.join(", ")
    };
    format!(
        "INSERT INTO audit_log ({}) SELECT {} FROM UNNEST({}) AS u({}) ON CONFLICT (request_id) DO NOTHING",
        names(),
        each(&|i, c| c.select.map_or_else(|| format!("u.c{i}"), str::to_string)),
        each(&|i, c| format!("${}::{}", i + 1, c.array_type)),
        each(&|i, _| format!("c{i}")),
    )
});

/// Live rows, with one binary COPY.
pub async fn copy(
    client: &deadpool_postgres::Client,
    rows: &[AuditRecord],
) -> Result<(), tokio_postgres::Error> {
    let sink = client.copy_in(COPY.as_str()).await?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &COPY_TYPES));
    for r in rows {
        let values = COLUMNS.each_ref().map(|c| (c.copy)(r));
        let refs = values.each_ref().map(|v| v as &(dyn ToSql + Sync));
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Replayed rows, skipping those stored already: one array per column.
pub async fn insert(
    client: &deadpool_postgres::Client,
    rows: &[AuditRecord],
) -> Result<(), tokio_postgres::Error> {
    let stmt = client.prepare_cached(INSERT.as_str()).await?;
    let arrays = COLUMNS.each_ref().map(|c| {
        let value = c.insert.unwrap_or(c.copy);
        rows.iter().map(value).collect::<Vec<Val>>()
    });
    let refs = arrays.each_ref().map(|a| a as &(dyn ToSql + Sync));
    client.execute(&stmt, &refs).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statements_name_every_column_once_in_order() {
        assert!(COPY.starts_with("COPY audit_log (time, request_id, instance, user_id,"));
        assert!(COPY.ends_with(
            "upstream_credential, policy_rule, guard_hits, trace_id) FROM STDIN (FORMAT binary)"
        ));
        assert!(INSERT.contains("FROM UNNEST($1::int8[], $2::text[],"));
        assert!(INSERT.contains("$29::text[]) AS u(c0, c1,"));
        assert!(
            INSERT.contains("SELECT 'epoch'::timestamptz + u.c0 * interval '1 microsecond', u.c1,")
        );
        assert!(INSERT.contains("string_to_array(u.c5, E'\\x1f'), u.c6,"));
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
