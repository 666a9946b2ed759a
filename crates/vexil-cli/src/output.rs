//! Printing answers: aligned columns for people, JSON for scripts.

use serde_json::Value;

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Prints `rows` under `header`, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Prints `value` as indented JSON.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// `field: before → after` for each top-level field of two JSON objects
/// that differs (`-` for an absent one), leaving out `ignored` fields, each
/// value shown by `show`.
pub fn field_changes(
    before: &Value,
    after: &Value,
    ignored: &[&str],
    show: impl Fn(&Value) -> String,
) -> Vec<String> {
    let empty = serde_json::Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|field| !ignored.contains(&field.as_str()))
        .filter(|field| before.get(*field) != after.get(*field))
        .map(|field| {
            let shown = |value: Option<&Value>| value.map_or("-".to_owned(), &show);
            format!(
                "{field}: {} → {}",
                shown(before.get(field)),
                shown(after.get(field))
            )
        })
        .collect()
}
