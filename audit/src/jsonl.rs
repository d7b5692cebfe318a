//! The export format: JSON Lines, one record (or digest) per line, in chain order.
//!
//! `kmsctl audit export` writes `to_jsonl(&records)` and `to_jsonl(&digests)` side by side;
//! `kmsctl audit verify` reads them back with `parse_jsonl::<AuditRecord>` and
//! `parse_jsonl::<DigestRecord>`. Blank lines are ignored; any other line that is not exactly
//! one object of the expected shape (unknown members included) is an error naming its line.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::AuditError;

/// One compact JSON object per line, each line ending in `\n`.
pub fn to_jsonl<T: Serialize>(items: &[T]) -> String {
    let mut out = String::new();
    for item in items {
        // Records and digests are plain structs of strings and integers: serializing them
        // cannot fail; skipping instead of panicking keeps this total.
        if let Ok(line) = serde_json::to_string(item) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Parses a JSON Lines file; errors name the 1-based line.
pub fn parse_jsonl<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, AuditError> {
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(line).map_err(|e| AuditError::Jsonl {
            line: index + 1,
            message: e.to_string(),
        })?;
        items.push(item);
    }
    Ok(items)
}
