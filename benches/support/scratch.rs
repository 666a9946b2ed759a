//! A benchmark run's scratch directory under the temp directory
//! (`vexil-bench-{name}-…`), removed with the SQLite databases in it when
//! dropped: when the run panics too.

use std::path::PathBuf;

pub struct Scratch(PathBuf);

impl Scratch {
    pub fn create(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("vexil-bench-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create the scratch directory");
        Self(path)
    }

    /// The URL of SQLite database `file` in the directory (created on use).
    pub fn sqlite_url(&self, file: &str) -> String {
        format!("sqlite://{}?mode=rwc", self.0.join(file).display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
