//! Flags written straight into a migrated database (one multi-row INSERT
//! per 400 flags, one transaction), as if created one by one: seconds for
//! 100,000 flags, where CreateFlag takes minutes.

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait, Value};

fn config(url: &str) -> vexil::Config {
    vexil::Config::with_database(url).without_caller_limits()
}

/// Writes `count` flags straight into the (migrated) database, with their
/// revisions, as if created one by one; with `lists`, 1% of them carry a
/// 1,000-id whitelist.
pub async fn populate(url: &str, count: usize, lists: bool) {
    vexil::migrate(&config(url)).await.expect("migrate");
    let connection = Database::connect(url).await.expect("connect");
    let backend = connection.get_database_backend();
    let now = chrono::Utc::now();
    let columns = "name, description, enabled, percentage, whitelist, blacklist, environments, \
                   environment_overrides, starts_at, expires_at, tags, metadata, group_name, \
                   revision, created_at, updated_at, created_by, updated_by";
    const PER_STATEMENT: usize = 400;
    let transaction = connection.begin().await.expect("begin");
    for start in (0..count).step_by(PER_STATEMENT) {
        let end = (start + PER_STATEMENT).min(count);
        let mut values: Vec<Value> = Vec::new();
        let mut rows = Vec::new();
        for i in start..end {
            let whitelist: Vec<String> = if lists && i % 100 == 0 {
                (0..1000).map(|u| format!("user-{u:06}")).collect()
            } else {
                Vec::new()
            };
            let row: [Value; 18] = [
                format!("flag-{i:06}").into(),
                String::new().into(),
                true.into(),
                50.0f64.into(),
                serde_json::json!(whitelist).into(),
                serde_json::json!([]).into(),
                serde_json::json!(["prod"]).into(),
                serde_json::json!({}).into(),
                Value::ChronoDateTimeUtc(None),
                Value::ChronoDateTimeUtc(None),
                serde_json::json!([format!("t{}", i % 10)]).into(),
                serde_json::json!({}).into(),
                Value::String(None),
                (i as i64 + 1).into(),
                now.into(),
                now.into(),
                "bench".into(),
                "bench".into(),
            ];
            let base = values.len();
            let placeholders: Vec<String> = (0..row.len())
                .map(|k| match backend {
                    DbBackend::Postgres => format!("${}", base + k + 1),
                    _ => "?".to_string(),
                })
                .collect();
            rows.push(format!("({})", placeholders.join(", ")));
            values.extend(row);
        }
        let sql = format!(
            "INSERT INTO feature_flags ({columns}) VALUES {}",
            rows.join(", ")
        );
        transaction
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .expect("insert flags");
    }
    transaction
        .execute_unprepared(&format!(
            "UPDATE feature_flag_revision SET revision = {count} WHERE id = 1"
        ))
        .await
        .expect("revision");
    transaction.commit().await.expect("commit");
    connection.close().await.ok();
}
