//! Python's `json.dumps`, for `to_json`/`to_nice_json`: separators, `ensure_ascii` escaping,
//! `sort_keys` and float formatting all differ from serde_json's output.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::pyfmt::float_repr;

#[derive(Debug, Clone)]
pub struct Options {
    pub indent: Option<String>,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
    pub item_separator: String,
    pub key_separator: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            indent: None,
            sort_keys: false,
            ensure_ascii: true,
            item_separator: ", ".into(),
            key_separator: ": ".into(),
        }
    }
}

pub fn dumps(value: &Json, opts: &Options) -> String {
    let mut out = String::new();
    write_value(&mut out, value, opts, 0);
    out
}

fn newline_indent(out: &mut String, opts: &Options, level: usize) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

fn write_value(out: &mut String, value: &Json, opts: &Options, level: usize) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    out.push_str(&float_repr(f));
                }
            } else {
                out.push_str(&n.to_string());
            }
        }
        Json::String(s) => write_string(out, s, opts.ensure_ascii),
        Json::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_separator);
                }
                newline_indent(out, opts, level + 1);
                write_value(out, item, opts, level + 1);
            }
            newline_indent(out, opts, level);
            out.push(']');
        }
        Json::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<_> = map.iter().collect();
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_separator);
                }
                newline_indent(out, opts, level + 1);
                write_string(out, k, opts.ensure_ascii);
                out.push_str(&opts.key_separator);
                write_value(out, v, opts, level + 1);
            }
            newline_indent(out, opts, level);
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_separators_and_escapes() {
        let v = json!({"z": 1, "a": [1, 2.0], "s": "é\n"});
        assert_eq!(
            dumps(&v, &Options::default()),
            r#"{"z": 1, "a": [1, 2.0], "s": "\u00e9\n"}"#
        );
        let nice = Options {
            indent: Some("    ".into()),
            sort_keys: true,
            item_separator: ",".into(),
            ..Options::default()
        };
        assert_eq!(
            dumps(&json!({"z": 1, "a": [1, 2]}), &nice),
            "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"z\": 1\n}"
        );
    }
}
