//! A fresh database for a benchmark run: a SQLite file in a scratch
//! directory, or a new PostgreSQL database; removed when dropped (when the
//! run panics too).

#[path = "scratch.rs"]
mod scratch;

use sea_orm::{ConnectionTrait, Database};

/// A fresh database: a SQLite file, or a new PostgreSQL database; removed
/// when dropped (when the run panics too).
pub struct Db {
    pub url: String,
    _scratch: Option<scratch::Scratch>,
    admin: Option<(String, String)>,
}

impl Db {
    pub async fn create(postgres: Option<&str>, tag: &str) -> Self {
        match postgres {
            None => {
                let scratch = scratch::Scratch::create(&format!("scale-{tag}"));
                Db {
                    url: scratch.sqlite_url("vexil.db"),
                    _scratch: Some(scratch),
                    admin: None,
                }
            }
            Some(admin) => {
                let name = format!(
                    "vexil_scale_{}_{}",
                    tag.replace('-', "_"),
                    std::process::id()
                );
                let connection = Database::connect(admin).await.expect("postgres");
                connection
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                    .await
                    .expect("drop");
                connection
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create");
                // postgres://user@host/db[?options]: the same with this database.
                let (path, options) = admin.split_once('?').unwrap_or((admin, ""));
                let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
                let options = if options.is_empty() {
                    String::new()
                } else {
                    format!("?{options}")
                };
                Db {
                    url: format!("{base}/{name}{options}"),
                    _scratch: None,
                    admin: Some((admin.to_string(), name)),
                }
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((admin, name)) = self.admin.take() else {
            return;
        };
        // Drop cannot await, and a runtime cannot block inside another: a
        // thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let connection = Database::connect(&admin).await.expect("postgres");
                let _ = connection
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}
