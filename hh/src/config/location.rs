//! Where in a TOML file something is: byte offsets to line and column, and the dotted key
//! (`defaults.control.server_host`, `workspaces[1].canonical_path`) that covers an offset.
//!
//! Shared by the config loader and the rules file reader so both name file, line, column and
//! key the same way. Pure: works on text and a parsed [`toml_edit::Document`].

use std::ops::Range;

use toml_edit::{Document, Item, Value};

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let offset = (0..=offset)
        .rev()
        .find(|&o| text.is_char_boundary(o))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Every key path in a document with the span it covers (key through value).
#[derive(Debug, Default)]
pub struct KeySpans {
    entries: Vec<(String, Range<usize>)>,
}

impl KeySpans {
    pub fn new(document: &Document<&str>) -> KeySpans {
        let mut spans = KeySpans::default();
        for (key, item) in document.as_table().iter() {
            let key_span = document.as_table().key(key).and_then(|k| k.span());
            spans.walk_item(key.to_string(), key_span, item);
        }
        spans
    }

    /// The innermost key whose span holds `offset`.
    pub fn key_at(&self, offset: usize) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, span)| span.start <= offset && offset < span.end.max(span.start + 1))
            .min_by_key(|(_, span)| span.len())
            .map(|(key, _)| key.as_str())
    }

    /// The span of a key path, as [`KeySpans::key_at`] names them.
    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, span)| span.clone())
    }

    fn push(
        &mut self,
        key: String,
        key_span: Option<Range<usize>>,
        value_span: Option<Range<usize>>,
    ) {
        let span = match (key_span, value_span) {
            (Some(k), Some(v)) => k.start.min(v.start)..k.end.max(v.end),
            (Some(span), None) | (None, Some(span)) => span,
            (None, None) => return,
        };
        self.entries.push((key, span));
    }

    fn walk_item(&mut self, path: String, key_span: Option<Range<usize>>, item: &Item) {
        match item {
            Item::None => {}
            Item::Value(value) => self.walk_value(path, key_span, value),
            Item::Table(table) => {
                self.push(path.clone(), key_span, table.span());
                for (key, child) in table.iter() {
                    let child_key = table.key(key).and_then(|k| k.span());
                    self.walk_item(format!("{path}.{key}"), child_key, child);
                }
            }
            Item::ArrayOfTables(tables) => {
                self.push(path.clone(), key_span, tables.span());
                for (i, table) in tables.iter().enumerate() {
                    let element = format!("{path}[{i}]");
                    self.push(element.clone(), None, table.span());
                    for (key, child) in table.iter() {
                        let child_key = table.key(key).and_then(|k| k.span());
                        self.walk_item(format!("{element}.{key}"), child_key, child);
                    }
                }
            }
        }
    }

    fn walk_value(&mut self, path: String, key_span: Option<Range<usize>>, value: &Value) {
        self.push(path.clone(), key_span, value.span());
        match value {
            Value::Array(array) => {
                for (i, element) in array.iter().enumerate() {
                    self.walk_value(format!("{path}[{i}]"), None, element);
                }
            }
            Value::InlineTable(table) => {
                for (key, child) in table.iter() {
                    let child_key = table.key(key).and_then(|k| k.span());
                    self.walk_value(format!("{path}.{key}"), child_key, child);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_character_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn offsets_map_to_the_innermost_key() {
        let text = "version = 1\n[defaults.control]\nserver_host = \"x\"\n[[workspaces]]\nname = \"w\"\n[[workspaces]]\nname = \"v\"\nm = { a = [1, 2] }\n";
        let document = Document::parse(text).unwrap();
        let spans = KeySpans::new(&document);
        let at = |needle: &str| spans.key_at(text.find(needle).unwrap());
        assert_eq!(at("1\n"), Some("version"));
        assert_eq!(at("\"x\""), Some("defaults.control.server_host"));
        assert_eq!(at("\"v\""), Some("workspaces[1].name"));
        assert_eq!(at("2]"), Some("workspaces[1].m.a[1]"));
        let span = spans.span_of("workspaces[0].name").unwrap();
        assert_eq!(&text[span], "name = \"w\"");
    }
}
