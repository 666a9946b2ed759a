//! The bootstrap file: the last copy received from the server, written
//! periodically, so an application can start while Vexil is unreachable.
//! A file that is unreadable, of another format or older than allowed is
//! reported and ignored; the server's state always replaces it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use vexil_engine::Flag;

use crate::copy::FlagMap;

const FORMAT: &str = "vexil-bootstrap/1";

/// Reads `path`: the flags and their revision, unless the file is missing,
/// corrupt or older than `max_age`.
pub fn read(path: &Path, max_age: Option<Duration>) -> Result<(FlagMap, u64), String> {
    let bytes = std::fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    let mut file: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|err| format!("{} is not a bootstrap file: {err}", path.display()))?;
    if file["format"] != FORMAT {
        return Err(format!("{} is not a {FORMAT} file", path.display()));
    }
    let written_at: DateTime<Utc> = serde_json::from_value(file["written_at"].take())
        .map_err(|err| format!("{}: written_at: {err}", path.display()))?;
    if let Some(max_age) = max_age {
        let age = (Utc::now() - written_at).to_std().unwrap_or_default();
        if age > max_age {
            return Err(format!(
                "{} was written {}s ago, more than the {}s allowed",
                path.display(),
                age.as_secs(),
                max_age.as_secs()
            ));
        }
    }
    let revision = file["revision"]
        .as_u64()
        .ok_or_else(|| format!("{}: revision is missing", path.display()))?;
    let flags: Vec<Flag> = serde_json::from_value(file["flags"].take())
        .map_err(|err| format!("{}: flags: {err}", path.display()))?;
    let flags = flags
        .into_iter()
        .map(|flag| (Arc::from(flag.name.as_str()), Arc::new(flag)))
        .collect();
    Ok((flags, revision))
}

/// Writes the copy to `path` atomically (a temporary file renamed over it).
pub async fn write(path: &Path, flags: &FlagMap, revision: u64) -> std::io::Result<()> {
    let mut sorted: Vec<&Flag> = flags.values().map(Arc::as_ref).collect();
    sorted.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let file = json!({
        "format": FORMAT,
        "revision": revision,
        "written_at": Utc::now(),
        "flags": sorted,
    });
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    tokio::fs::write(&temporary, bytes).await?;
    tokio::fs::rename(&temporary, path).await
}
