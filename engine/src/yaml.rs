//! Loading Ansible YAML (playbooks, vars files, inventories) into `Node`s that keep their source position.
//!
//! Why not serde_yaml here: Ansible reads YAML with PyYAML, i.e. YAML 1.1 scalars
//! (`yes`/`no`/`on`/`off` are booleans, `0644` is octal), and every error must name a file
//! and line. serde_yaml_ng is YAML 1.2 and has no positions, so Ansible-authored files go
//! through yaml-rust2's marked event parser and are resolved here with PyYAML's rules.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{Diagnostic, Span};

/// A YAML value with the position it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// A value with a local tag Ansible gives meaning to (`!vault`, `!unsafe`).
    Tagged(String, Box<Node>),
}

impl Node {
    /// The value for a key of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    /// Mapping entries with their keys as strings (non-string keys are stringified, as Ansible does).
    pub fn entries(&self) -> Option<Vec<(String, &Node)>> {
        match &self.kind {
            NodeKind::Map(entries) => {
                Some(entries.iter().map(|(k, v)| (k.key_string(), v)).collect())
            }
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }
    /// What kind of value this is, for error messages ("a list", "a mapping").
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) | NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
            NodeKind::Tagged(_, inner) => inner.type_name(),
        }
    }
    fn key_string(&self) -> String {
        match &self.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Null => "null".into(),
            NodeKind::Bool(b) => if *b { "True" } else { "False" }.into(),
            NodeKind::Int(i) => i.to_string(),
            NodeKind::Float(f) => f.to_string(),
            _ => self.to_value().to_string(),
        }
    }
    /// The plain data (positions dropped). Tagged values become their inner value;
    /// `!vault` values are kept as `{"__vault__": text}` for the vault to resolve; strings
    /// under `!unsafe` that look like templates become templates of their own literal text.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::Number((*i).into()),
            NodeKind::Float(f) => Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            NodeKind::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    map.insert(k.key_string(), v.to_value());
                }
                Value::Object(map)
            }
            NodeKind::Tagged(tag, inner) if tag == "vault" => {
                let mut map = Map::new();
                map.insert("__vault__".into(), inner.to_value());
                Value::Object(map)
            }
            NodeKind::Tagged(tag, inner) if tag == "unsafe" => literal_text(inner.to_value()),
            NodeKind::Tagged(_, inner) => inner.to_value(),
        }
    }
}

/// `!unsafe` data: each string that holds template markers becomes a template of its own
/// literal text (base64, which needs no quoting, then `b64decode`), which renders to exactly
/// that text wherever and however often it is templated, so the rest of the engine needs no
/// notion of unsafe strings.
pub(crate) fn literal_text(value: Value) -> Value {
    use base64::Engine as _;
    match value {
        Value::String(s) if crate::template::has_markers(&s) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            Value::String(format!("{{{{ '{encoded}' | b64decode }}}}"))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(literal_text).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, literal_text(v))).collect())
        }
        other => other,
    }
}

/// Parse every document of a YAML file. An empty file gives no documents.
pub fn load_file(path: &Path) -> Result<Vec<Node>, Diagnostic> {
    let (text, encrypted) = read_source(path)?;
    let mut docs = load_str(&text, path)?;
    for doc in &mut docs {
        reveal(doc, encrypted)?;
    }
    Ok(docs)
}

/// A file's text, decrypted in memory when it is an age file (the vault), and whether it was.
fn read_source(path: &Path) -> Result<(String, bool), Diagnostic> {
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::new(format!("could not read {}: {e}", path.display())).exit_code(1)
    })?;
    crate::vault::decrypt_file_if_encrypted(path, bytes)
}

/// Replace `!vault` values by their plaintext (registered as secrets, so output masks them).
/// In a file that was encrypted whole, every string value is a secret.
pub(crate) fn reveal(node: &mut Node, encrypted: bool) -> Result<(), Diagnostic> {
    match &mut node.kind {
        NodeKind::Tagged(tag, inner) if tag == "vault" => {
            let Some(text) = inner.as_str() else {
                return Err(
                    Diagnostic::new("a !vault value must be a string (the ciphertext)")
                        .at(node.span.clone())
                        .exit_code(4),
                );
            };
            let what = format!("the !vault value at {}", node.span);
            let plain = crate::vault::decrypt_value(text, &what)?;
            node.kind = NodeKind::Str(plain);
        }
        NodeKind::Tagged(_, inner) => reveal(inner, encrypted)?,
        NodeKind::Seq(items) => {
            for i in items {
                reveal(i, encrypted)?;
            }
        }
        NodeKind::Map(entries) => {
            for (_, v) in entries {
                reveal(v, encrypted)?;
            }
        }
        NodeKind::Str(s) if encrypted => crate::vault::register_secret(s),
        _ => {}
    }
    Ok(())
}

/// Parse a file that must hold one document (or be empty: `Node` null).
pub fn load_one(path: &Path) -> Result<Node, Diagnostic> {
    let docs = load_file(path)?;
    Ok(docs.into_iter().next().unwrap_or(Node {
        kind: NodeKind::Null,
        span: Span::new(path, 1, 1),
    }))
}

/// Parse YAML text; `origin` names it in positions and errors.
pub fn load_str(text: &str, origin: &Path) -> Result<Vec<Node>, Diagnostic> {
    let file: Arc<PathBuf> = Arc::new(origin.to_path_buf());
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        docs: Vec::new(),
        anchors: HashMap::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(Diagnostic::new(format!("YAML syntax error: {}", e.info()))
            .at(Span {
                file,
                line: m.line(),
                col: m.col() + 1,
            })
            .exit_code(4));
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs)
}

/// Deeper nesting than any real playbook uses is refused rather than risking the stack.
const MAX_DEPTH: usize = 512;

enum Open {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
        tag: Option<String>,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        span: Span,
        anchor: usize,
        tag: Option<String>,
    },
}

struct Builder {
    file: Arc<PathBuf>,
    stack: Vec<Open>,
    docs: Vec<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<Diagnostic>,
}

impl Builder {
    fn span(&self, mark: &Marker) -> Span {
        Span {
            file: self.file.clone(),
            line: mark.line(),
            col: mark.col() + 1,
        }
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.push(node);
    }

    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    // `<<: *anchor` merge keys, as PyYAML resolves them: existing keys win.
                    if matches!(&key.kind, NodeKind::Str(s) if s == "<<") {
                        let sources: Vec<Node> = match node.kind {
                            NodeKind::Seq(items) => items,
                            _ => vec![node],
                        };
                        for src in sources {
                            if let NodeKind::Map(src_entries) = src.kind {
                                for (k, v) in src_entries {
                                    if !entries.iter().any(|(ek, _)| ek.kind == k.kind) {
                                        entries.push((k, v));
                                    }
                                }
                            }
                        }
                    } else if let Some(slot) =
                        entries.iter_mut().find(|(ek, _)| ek.kind == key.kind)
                    {
                        // A repeated key: the last one wins, as in PyYAML.
                        slot.1 = node;
                    } else {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

fn tag_name(tag: &Option<Tag>) -> Option<String> {
    tag.as_ref().and_then(|t| match t.handle.as_str() {
        "!" => Some(t.suffix.clone()),
        _ => None,
    })
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let span = self.span(&mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let kind = if style == TScalarStyle::Plain && tag.is_none() {
                    resolve_plain(&text)
                } else {
                    match tag.as_ref().map(|t| (t.handle.as_str(), t.suffix.as_str())) {
                        Some(("tag:yaml.org,2002:", "int")) => text
                            .parse()
                            .map(NodeKind::Int)
                            .unwrap_or(NodeKind::Str(text.clone())),
                        Some(("tag:yaml.org,2002:", "float")) => text
                            .parse()
                            .map(NodeKind::Float)
                            .unwrap_or(NodeKind::Str(text.clone())),
                        Some(("tag:yaml.org,2002:", "bool")) => resolve_plain(&text),
                        Some(("tag:yaml.org,2002:", "null")) => NodeKind::Null,
                        _ => NodeKind::Str(text),
                    }
                };
                let node = Node {
                    kind,
                    span: span.clone(),
                };
                let node = match tag_name(&tag) {
                    Some(t) => Node {
                        kind: NodeKind::Tagged(t, Box::new(node)),
                        span,
                    },
                    None => node,
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.error = Some(
                    Diagnostic::new(format!("YAML nesting deeper than {MAX_DEPTH} levels"))
                        .at(span)
                        .exit_code(4),
                );
            }
            Event::SequenceStart(anchor, tag) => self.stack.push(Open::Seq {
                items: Vec::new(),
                span,
                anchor,
                tag: tag_name(&tag),
            }),
            Event::MappingStart(anchor, tag) => self.stack.push(Open::Map {
                entries: Vec::new(),
                pending_key: None,
                span,
                anchor,
                tag: tag_name(&tag),
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, tag) = match self.stack.pop() {
                    Some(Open::Seq {
                        items,
                        span,
                        anchor,
                        tag,
                    }) => (
                        Node {
                            kind: NodeKind::Seq(items),
                            span,
                        },
                        anchor,
                        tag,
                    ),
                    Some(Open::Map {
                        entries,
                        span,
                        anchor,
                        tag,
                        ..
                    }) => (
                        Node {
                            kind: NodeKind::Map(entries),
                            span,
                        },
                        anchor,
                        tag,
                    ),
                    None => return,
                };
                let node = match tag {
                    Some(t) => Node {
                        span: node.span.clone(),
                        kind: NodeKind::Tagged(t, Box::new(node)),
                    },
                    None => node,
                };
                self.finish(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let node = node.clone();
                    self.push(node);
                }
                None => {
                    self.error = Some(
                        Diagnostic::new("YAML error: an alias refers to an unknown anchor")
                            .at(span)
                            .exit_code(4),
                    )
                }
            },
            Event::DocumentStart => self.anchors.clear(),
            Event::DocumentEnd | Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

/// PyYAML's (YAML 1.1) resolution of an untagged plain scalar.
pub fn resolve_plain(text: &str) -> NodeKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return NodeKind::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return NodeKind::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeKind::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeKind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeKind::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = resolve_int(text) {
        return NodeKind::Int(i);
    }
    if is_yaml11_float(text) {
        if let Ok(f) = text.replace('_', "").parse::<f64>() {
            return NodeKind::Float(f);
        }
    }
    NodeKind::Str(text.to_string())
}

fn resolve_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || body.starts_with('_') {
        return None;
    }
    let digits = |s: &str, radix: u32| -> Option<i64> {
        let clean: String = s.chars().filter(|c| *c != '_').collect();
        if clean.is_empty() {
            return None;
        }
        i64::from_str_radix(&clean, radix).ok()
    };
    let value = if let Some(b) = body.strip_prefix("0b") {
        digits(b, 2)?
    } else if let Some(h) = body.strip_prefix("0x") {
        digits(h, 16)?
    } else if body == "0" {
        0
    } else if let Some(o) = body.strip_prefix('0') {
        if !o.chars().all(|c| matches!(c, '0'..='7' | '_')) {
            return None;
        }
        digits(o, 8)?
    } else if body.contains(':') {
        // Sexagesimal (base 60), e.g. 1:30 = 90, as PyYAML reads it.
        let mut total: i64 = 0;
        for (i, part) in body.split(':').enumerate() {
            if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit() || c == '_') {
                return None;
            }
            if i > 0 && digits(part, 10)? >= 60 {
                return None;
            }
            total = total.checked_mul(60)?.checked_add(digits(part, 10)?)?;
        }
        if !body.starts_with(|c: char| c.is_ascii_digit() && c != '0') {
            return None;
        }
        total
    } else {
        if !body.starts_with(|c: char| c.is_ascii_digit())
            || !body.chars().all(|c| c.is_ascii_digit() || c == '_')
        {
            return None;
        }
        digits(body, 10)?
    };
    Some(if neg { -value } else { value })
}

/// PyYAML's float pattern: a dot is required (`1e3` stays a string, `1.0e+3` is a float).
fn is_yaml11_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let Some(dot) = mantissa.find('.') else {
        return false;
    };
    let (int_part, frac) = (&mantissa[..dot], &mantissa[dot + 1..]);
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mantissa_ok = digits_ok(int_part)
        && digits_ok(frac)
        && (!int_part.is_empty() || !frac.is_empty())
        && (int_part.is_empty() || int_part.starts_with(|c: char| c.is_ascii_digit()));
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']);
            matches!(e, Some(d) if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        }
    };
    mantissa_ok && exp_ok
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        load_str(text, Path::new("t.yml"))
            .expect("parses")
            .remove(0)
    }

    #[test]
    fn yaml11_scalars_resolve_as_pyyaml_does() {
        let v = one(
            "a: yes\nb: off\nc: 0644\nd: '0644'\ne: 1.5\nf: 1e3\ng: ~\nh: 0x1F\ni: 1:30\nj: 08\n",
        )
        .to_value();
        assert_eq!(
            v,
            serde_json::json!({"a": true, "b": false, "c": 420, "d": "0644", "e": 1.5, "f": "1e3", "g": null, "h": 31, "i": 90, "j": "08"})
        );
    }

    #[test]
    fn positions_anchors_merge_and_tags() {
        let n =
            one("base: &b\n  x: 1\n  y: 2\nchild:\n  <<: *b\n  y: 3\nsecret: !vault |\n  abc\n");
        assert_eq!(
            n.get("child").expect("child").to_value(),
            serde_json::json!({"y": 3, "x": 1})
        );
        assert_eq!(n.get("child").expect("child").span.line, 5);
        assert!(
            matches!(&n.get("secret").expect("secret").kind, NodeKind::Tagged(t, _) if t == "vault")
        );
    }

    #[test]
    fn syntax_errors_name_the_place() {
        let err = load_str("a: [1, 2\nb: 3\n", Path::new("bad.yml")).expect_err("fails");
        let span = err.span.expect("has a span");
        assert_eq!(span.file.as_path(), Path::new("bad.yml"));
        assert!(
            err.message.starts_with("YAML syntax error"),
            "{}",
            err.message
        );
    }
}
