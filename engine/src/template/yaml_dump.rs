//! YAML output as PyYAML's `yaml.dump` writes it, for `to_yaml` and `to_nice_yaml`.
//!
//! Ansible's filters call `yaml.dump(..., allow_unicode=True, sort_keys=True)`, and templates
//! embed the text verbatim, so quoting, line folding at 80 columns and PyYAML's indentation
//! quirks (`-   key: v` at indent 4) are reproduced from PyYAML's emitter here.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value as Json;

use super::pyfmt::float_repr;

/// How to dump.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// PyYAML's `indent` (2 by default, 4 for `to_nice_yaml`).
    pub indent: usize,
    /// `default_flow_style`: `None` = flow for collections of scalars only.
    pub flow: Option<bool>,
    pub sort_keys: bool,
    pub width: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            indent: 2,
            flow: None,
            sort_keys: true,
            width: 80,
        }
    }
}

/// `yaml.dump(value)`.
pub fn dump(value: &Json, style: Style) -> String {
    let indent = if (2..10).contains(&style.indent) {
        style.indent
    } else {
        2
    };
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        indent: None,
        indents: Vec::new(),
        whitespace: true,
        indention: true,
        flow_level: 0,
        best_indent: indent,
        best_width: style.width.max(indent * 2 + 1),
        style,
    };
    e.node(value, Ctx::Root, false);
    // Document end: a line break. (Python's emitter adds `...` after a plain root scalar;
    // libyaml's, which Ansible uses, does not.)
    e.write_indent();
    e.out
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Root,
    Sequence,
    Mapping,
}

struct Emitter {
    out: String,
    column: usize,
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
    whitespace: bool,
    indention: bool,
    flow_level: usize,
    best_indent: usize,
    best_width: usize,
    style: Style,
}

#[derive(Clone, Copy, PartialEq)]
enum ScalarStyle {
    Plain,
    Single,
    Double,
}

struct Analysis {
    empty: bool,
    multiline: bool,
    allow_flow_plain: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

impl Emitter {
    fn write(&mut self, s: &str) {
        self.column += s.chars().count();
        self.out.push_str(s);
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None => Some(if flow { self.best_indent } else { 0 }),
            Some(i) if !indentless => Some(i + self.best_indent),
            Some(i) => Some(i),
        };
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().flatten();
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.out.push_str(&pad);
            self.column = indent;
        }
    }

    fn write_line_break(&mut self) {
        self.whitespace = true;
        self.indention = true;
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        whitespace: bool,
        indention: bool,
    ) {
        if self.whitespace || !need_whitespace {
            self.write(indicator);
        } else {
            self.write(&format!(" {indicator}"));
        }
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    fn is_flow(&self, value: &Json) -> bool {
        let children_scalar = |mut it: Box<dyn Iterator<Item = &Json> + '_>| {
            it.all(|v| !matches!(v, Json::Array(_) | Json::Object(_)))
        };
        let empty = match value {
            Json::Array(a) => a.is_empty(),
            Json::Object(m) => m.is_empty(),
            _ => false,
        };
        if self.flow_level > 0 || empty {
            return true;
        }
        match self.style.flow {
            Some(flow) => flow,
            None => match value {
                Json::Array(a) => children_scalar(Box::new(a.iter())),
                Json::Object(m) => children_scalar(Box::new(m.values())),
                _ => false,
            },
        }
    }

    fn node(&mut self, value: &Json, ctx: Ctx, simple_key: bool) {
        match value {
            Json::Array(items) => {
                if self.is_flow(value) {
                    self.flow_sequence(items);
                } else {
                    self.block_sequence(items, ctx);
                }
            }
            Json::Object(map) => {
                if self.is_flow(value) {
                    self.flow_mapping(map);
                } else {
                    self.block_mapping(map);
                }
            }
            scalar => {
                let (text, implicit) = scalar_text(scalar);
                self.increase_indent(true, false);
                self.scalar(&text, implicit, simple_key);
                self.pop_indent();
            }
        }
    }

    fn sorted_entries<'a>(
        &self,
        map: &'a serde_json::Map<String, Json>,
    ) -> Vec<(&'a String, &'a Json)> {
        let mut entries: Vec<_> = map.iter().collect();
        if self.style.sort_keys {
            entries.sort_by(|a, b| a.0.cmp(b.0));
        }
        entries
    }

    fn flow_sequence(&mut self, items: &[Json]) {
        self.write_indicator("[", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent();
            }
            self.node(item, Ctx::Sequence, false);
        }
        self.pop_indent();
        self.flow_level -= 1;
        self.write_indicator("]", false, false, false);
    }

    fn flow_mapping(&mut self, map: &serde_json::Map<String, Json>) {
        self.write_indicator("{", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        for (i, (k, v)) in self.sorted_entries(map).into_iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent();
            }
            self.node(&Json::String(k.clone()), Ctx::Mapping, true);
            self.write_indicator(":", false, false, false);
            self.node(v, Ctx::Mapping, false);
        }
        self.pop_indent();
        self.flow_level -= 1;
        self.write_indicator("}", false, false, false);
    }

    fn block_sequence(&mut self, items: &[Json], ctx: Ctx) {
        // PyYAML does not indent a sequence that is a mapping's value.
        let indentless = ctx == Ctx::Mapping && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, Ctx::Sequence, false);
        }
        self.pop_indent();
    }

    fn block_mapping(&mut self, map: &serde_json::Map<String, Json>) {
        self.increase_indent(false, false);
        for (k, v) in self.sorted_entries(map) {
            self.write_indent();
            if k.chars().count() < 128 && !k.contains(['\n', '\u{85}', '\u{2028}', '\u{2029}']) {
                self.node(&Json::String(k.clone()), Ctx::Mapping, true);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node(&Json::String(k.clone()), Ctx::Mapping, false);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(v, Ctx::Mapping, false);
        }
        self.pop_indent();
    }

    fn scalar(&mut self, text: &str, implicit: bool, simple_key: bool) {
        let a = analyze(text);
        let style = if implicit
            && !(simple_key && (a.empty || a.multiline))
            && ((self.flow_level > 0 && a.allow_flow_plain)
                || (self.flow_level == 0 && a.allow_block_plain))
        {
            ScalarStyle::Plain
        } else if a.allow_single_quoted && !(simple_key && a.multiline) {
            ScalarStyle::Single
        } else {
            ScalarStyle::Double
        };
        let split = !simple_key;
        match style {
            ScalarStyle::Plain => self.write_plain(text, split),
            ScalarStyle::Single => self.write_single_quoted(text, split),
            ScalarStyle::Double => self.write_double_quoted(text, split),
        }
    }

    fn write_plain(&mut self, text: &str, split: bool) {
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let (mut start, mut end) = (0usize, 0usize);
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > self.best_width && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        let data: String = chars[start..end].iter().collect();
                        self.write(&data);
                    }
                    start = end;
                }
            } else if breaks {
                if !matches!(ch, Some('\n' | '\u{85}' | '\u{2028}' | '\u{2029}')) {
                    if chars[start] == '\n' {
                        self.write_line_break();
                    }
                    for _ in start..end {
                        self.write_line_break();
                    }
                    self.write_indent();
                    self.whitespace = false;
                    self.indention = false;
                    start = end;
                }
            } else if matches!(
                ch,
                None | Some(' ' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
            ) {
                let data: String = chars[start..end].iter().collect();
                self.write(&data);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
            }
            end += 1;
        }
    }

    fn write_single_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let (mut start, mut end) = (0usize, 0usize);
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column > self.best_width
                        && split
                        && start != 0
                        && end != chars.len()
                    {
                        self.write_indent();
                    } else {
                        let data: String = chars[start..end].iter().collect();
                        self.write(&data);
                    }
                    start = end;
                }
            } else if breaks {
                if !matches!(ch, Some('\n' | '\u{85}' | '\u{2028}' | '\u{2029}')) {
                    if chars[start] == '\n' {
                        self.write_line_break();
                    }
                    for _ in start..end {
                        self.write_line_break();
                    }
                    self.write_indent();
                    start = end;
                }
            } else if matches!(
                ch,
                None | Some(' ' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\'')
            ) && start < end
            {
                let data: String = chars[start..end].iter().collect();
                self.write(&data);
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
            }
            end += 1;
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut start, mut end) = (0usize, 0usize);
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            let needs_escape = match ch {
                None => true,
                Some(c) => {
                    matches!(
                        c,
                        '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
                    ) || !((' '..='~').contains(&c)
                        || ('\u{a0}'..='\u{d7ff}').contains(&c)
                        || ('\u{e000}'..='\u{fffd}').contains(&c))
                }
            };
            if needs_escape {
                if start < end {
                    let data: String = chars[start..end].iter().collect();
                    self.write(&data);
                    start = end;
                }
                if let Some(c) = ch {
                    let data = match c {
                        '\0' => "\\0".to_string(),
                        '\x07' => "\\a".to_string(),
                        '\x08' => "\\b".to_string(),
                        '\t' => "\\t".to_string(),
                        '\n' => "\\n".to_string(),
                        '\x0b' => "\\v".to_string(),
                        '\x0c' => "\\f".to_string(),
                        '\r' => "\\r".to_string(),
                        '\x1b' => "\\e".to_string(),
                        '"' => "\\\"".to_string(),
                        '\\' => "\\\\".to_string(),
                        '\u{85}' => "\\N".to_string(),
                        '\u{a0}' => "\\_".to_string(),
                        '\u{2028}' => "\\L".to_string(),
                        '\u{2029}' => "\\P".to_string(),
                        c if (c as u32) <= 0xff => format!("\\x{:02X}", c as u32),
                        c if (c as u32) <= 0xffff => format!("\\u{:04X}", c as u32),
                        c => format!("\\U{:08X}", c as u32),
                    };
                    self.write(&data);
                    start = end + 1;
                }
            }
            if end > 0
                && end + 1 < chars.len()
                && (ch == Some(' ') || start >= end)
                && self.column + end.saturating_sub(start) > self.best_width
                && split
            {
                let mut data: String = chars[start.min(end)..end].iter().collect();
                data.push('\\');
                if start < end {
                    start = end;
                }
                self.write(&data);
                self.write_indent();
                self.whitespace = false;
                self.indention = false;
                if chars.get(start) == Some(&' ') {
                    self.write("\\");
                }
            }
            end += 1;
        }
        self.write_indicator("\"", false, false, false);
    }
}

/// A scalar's text and whether it may be written plain (a string that would not read back
/// as another type).
fn scalar_text(value: &Json) -> (String, bool) {
    match value {
        Json::Null => ("null".into(), true),
        Json::Bool(b) => ((if *b { "true" } else { "false" }).into(), true),
        Json::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let text = if f.is_nan() {
                    ".nan".to_string()
                } else if f.is_infinite() {
                    if f > 0.0 { ".inf" } else { "-.inf" }.to_string()
                } else {
                    let r = float_repr(f).to_lowercase();
                    if !r.contains('.') && r.contains('e') {
                        r.replacen('e', ".0e", 1)
                    } else {
                        r
                    }
                };
                (text, true)
            } else {
                (n.to_string(), true)
            }
        }
        Json::String(s) => (s.clone(), !resolves_to_non_string(s)),
        Json::Array(_) | Json::Object(_) => (String::new(), true),
    }
}

/// PyYAML's implicit resolvers: would this plain text read back as something other than a string?
fn resolves_to_non_string(s: &str) -> bool {
    static RESOLVERS: OnceLock<Vec<Regex>> = OnceLock::new();
    let resolvers = RESOLVERS.get_or_init(|| {
        [
            r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
            r"^(?:<<)$",
            r"^(?:~|null|Null|NULL|)$",
            r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
            r"^(?:=)$",
        ]
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
    });
    resolvers.iter().any(|r| r.is_match(s))
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank_or_break(c: Option<char>) -> bool {
    matches!(
        c,
        None | Some('\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
    )
}

/// PyYAML's `analyze_scalar` (with `allow_unicode=True`).
fn analyze(text: &str) -> Analysis {
    if text.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            allow_flow_plain: false,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    if text.starts_with("---") || text.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = chars.len() == 1 || is_blank_or_break(chars.get(1).copied());
    let (mut previous_space, mut previous_break) = (false, false);
    for (index, &ch) in chars.iter().enumerate() {
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_indicators = true;
                block_indicators = true;
            }
            if ch == '?' || ch == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if ch == '-' && followed_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_indicators = true;
            }
            if ch == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if ch == '#' && preceded_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            let unicode_ok = (ch == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&ch)
                || ('\u{e000}'..='\u{fffd}').contains(&ch)
                || ('\u{10000}'..'\u{10ffff}').contains(&ch))
                && ch != '\u{feff}';
            if !unicode_ok {
                special_characters = true;
            }
        }
        if ch == ' ' {
            if index == 0 {
                leading_space = true;
            }
            if index == chars.len() - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(ch) {
            if index == 0 {
                leading_break = true;
            }
            if index == chars.len() - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank_or_break(Some(ch));
        followed_by_whitespace = is_blank_or_break(chars.get(index + 2).copied());
    }
    let mut allow_flow_plain = true;
    let mut allow_block_plain = true;
    let mut allow_single_quoted = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        allow_flow_plain = false;
        allow_block_plain = false;
    }
    if break_space {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special_characters {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks {
        allow_flow_plain = false;
        allow_block_plain = false;
    }
    if flow_indicators {
        allow_flow_plain = false;
    }
    if block_indicators {
        allow_block_plain = false;
    }
    Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain,
        allow_block_plain,
        allow_single_quoted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nice(v: Json) -> String {
        dump(
            &v,
            Style {
                indent: 4,
                flow: Some(false),
                ..Style::default()
            },
        )
    }

    #[test]
    fn block_style_like_pyyaml() {
        assert_eq!(
            nice(json!({"z": 1, "a": [1, 2], "u": "é"})),
            "a:\n- 1\n- 2\nu: é\nz: 1\n"
        );
        assert_eq!(
            nice(json!([{"a": 1, "b": {"c": "yes"}}])),
            "-   a: 1\n    b:\n        c: 'yes'\n"
        );
    }

    #[test]
    fn flow_for_scalar_collections() {
        assert_eq!(
            dump(&json!({"z": 1, "a": [1, 2]}), Style::default()),
            "a: [1, 2]\nz: 1\n"
        );
        assert_eq!(dump(&json!("abc"), Style::default()), "abc\n");
    }
}
