//! Printing answers: aligned columns for people, JSON or YAML for scripts.

use serde_json::Value;

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
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

/// Prints `value` as indented JSON, or as YAML.
pub fn data(format: Output, value: &Value) {
    match format {
        Output::Yaml => print!("{}", yaml(value)),
        _ => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        ),
    }
}

/// `value` as a YAML document (keys in the JSON object's order: sorted).
pub fn yaml(value: &Value) -> String {
    yaml_serde::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// A JSON or YAML text as a JSON value (JSON is a subset of YAML, but its
/// own parser gives JSON's error positions and exact numbers).
pub fn parse_data(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with(['{', '[']) {
        serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))
    } else {
        yaml_serde::from_str(text).map_err(|err| format!("not YAML (nor JSON): {err}"))
    }
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
