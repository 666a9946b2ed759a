//! The bootstrap file: the last copy received from the server, written
//! periodically, so an application can start while Vexil is unreachable.
//! A file that is unreadable, of another format or older than allowed is
//! reported and ignored; the server's state always replaces it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use vexil_engine::{Flag, Segment};

use crate::copy::{FlagMap, SegmentMap};

const FORMAT: &str = "vexil-bootstrap/1";

/// What a bootstrap file holds.
pub struct Bootstrap {
    pub flags: FlagMap,
    pub segments: SegmentMap,
    pub revision: u64,
}

/// Reads `path`: the flags, segments and their revision, unless the file
/// is missing, corrupt or older than `max_age`. Files written before
/// segments existed have none.
pub fn read(path: &Path, max_age: Option<Duration>) -> Result<Bootstrap, String> {
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
    let segments: Vec<Segment> = match file["segments"].take() {
        serde_json::Value::Null => Vec::new(),
        segments => serde_json::from_value(segments)
            .map_err(|err| format!("{}: segments: {err}", path.display()))?,
    };
    let segments = segments
        .into_iter()
        .map(|segment| (Arc::from(segment.name.as_str()), Arc::new(segment)))
        .collect();
    Ok(Bootstrap {
        flags,
        segments,
        revision,
    })
}

/// Writes the copy to `path` atomically (a temporary file renamed over it).
pub async fn write(
    path: &Path,
    flags: Vec<Arc<Flag>>,
    segments: &SegmentMap,
    revision: u64,
) -> std::io::Result<()> {
    let mut sorted: Vec<&Flag> = flags.iter().map(Arc::as_ref).collect();
    sorted.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let mut sorted_segments: Vec<&Segment> = segments.values().map(Arc::as_ref).collect();
    sorted_segments.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let file = json!({
        "format": FORMAT,
        "revision": revision,
        "written_at": Utc::now(),
        "flags": sorted,
        "segments": sorted_segments,
    });
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    tokio::fs::write(&temporary, bytes).await?;
    tokio::fs::rename(&temporary, path).await
}
