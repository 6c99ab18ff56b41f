//! INI inventories as Ansible's `ini` plugin reads them: `[group]`, `[group:vars]`, `[group:children]`, `host key=value …` lines.
//!
//! Host lines are split like Python's `shlex.split(line, comments=True)` (quotes removed,
//! `#` starts a comment even inside a word); values are then read as Python literals.
//! `[group:vars]` lines split on the first `=` without shlex, so quotes there are kept
//! for the literal reader (`x='1'` is the string "1", `x=1` the number).

use std::path::Path;
use std::sync::LazyLock;

use indexmap::IndexMap;
use regex::Regex;

use crate::error::{exit, Diagnostic, Span};

use super::address::expand_host_pattern;
use super::pyliteral::ini_value;
use super::{Inventory, Map};

/// `[name]` or `[name:kind]`, optionally followed by a comment.
static SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").expect("static regex"));

/// A child group name in a `[group:children]` section.
static GROUP_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([^:\]\s]+)\s*(?:#.*)?$").expect("static regex"));

#[derive(Clone, Copy, PartialEq, Debug)]
enum Section {
    Hosts,
    Children,
    Vars,
}

/// A group used before it is declared; Ansible accepts that if a later `[name]` or
/// `[name:children]` declares it, and reports the first undeclared one at the end.
struct Pending {
    line: usize,
    kind: Section,
    /// Groups that listed it as a child, in order.
    parents: Vec<usize>,
}

pub(super) fn parse(inventory: &mut Inventory, text: &str, path: &Path) -> Result<(), Diagnostic> {
    let error_at = |line: usize, message: String| {
        Diagnostic::new(message)
            .at(Span::new(path, line, 1))
            .exit_code(exit::PARSE)
    };
    // Lines before any section header belong to `ungrouped`.
    let mut group = super::UNGROUPED;
    let mut section = Section::Hosts;
    let mut pending: IndexMap<String, Pending> = IndexMap::new();

    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }

        if let Some(caps) = SECTION.captures(line) {
            let name = &caps[1];
            section = match caps.get(2).map(|m| m.as_str()) {
                None | Some("hosts") => Section::Hosts,
                Some("children") => Section::Children,
                Some("vars") => Section::Vars,
                Some(other) => {
                    return Err(error_at(
                        number,
                        format!("Section [{name}:{other}] has unknown type: {other}"),
                    ));
                }
            };
            if !inventory.groups.contains_key(name)
                && section == Section::Vars
                && !pending.contains_key(name)
            {
                // `[name:vars]` alone does not declare a group.
                pending.insert(
                    name.to_string(),
                    Pending {
                        line: number,
                        kind: Section::Vars,
                        parents: Vec::new(),
                    },
                );
            }
            group = inventory.ensure_group(name);
            if section != Section::Vars {
                match pending.get(name).map(|p| p.kind) {
                    Some(Section::Children) => {
                        add_pending_children(inventory, name, &mut pending)
                            .map_err(|message| error_at(number, message))?;
                    }
                    Some(_) => {
                        pending.shift_remove(name);
                    }
                    None => {}
                }
            }
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(error_at(
                number,
                format!(
                    "Invalid section entry: '{line}'. Please make sure that there are no spaces in the \
                     section entry, and that there are no other invalid characters"
                ),
            ));
        }

        match section {
            Section::Hosts => {
                let (names, port, vars) =
                    parse_host_line(line).map_err(|message| error_at(number, message))?;
                for name in names {
                    let host = inventory.ensure_host(&name, port, Some(path));
                    inventory.add_host_to_group(host, group);
                    for (key, value) in &vars {
                        inventory.set_host_var(host, key, value.clone());
                    }
                }
            }
            Section::Vars => {
                let Some((key, value)) = line.split_once('=') else {
                    return Err(error_at(number, format!("Expected key=value, got: {line}")));
                };
                inventory
                    .set_group_var(group, key.trim(), ini_value(value.trim()))
                    .map_err(|message| error_at(number, message))?;
            }
            Section::Children => {
                let Some(caps) = GROUP_NAME.captures(line) else {
                    return Err(error_at(
                        number,
                        format!("Expected group name, got: {line}"),
                    ));
                };
                let child = &caps[1];
                match inventory.groups.get_index_of(child) {
                    Some(child_index) => inventory
                        .add_child_group(group, child_index)
                        .map_err(|message| error_at(number, message))?,
                    None => {
                        pending
                            .entry(child.to_string())
                            .or_insert(Pending {
                                line: number,
                                kind: Section::Children,
                                parents: Vec::new(),
                            })
                            .parents
                            .push(group);
                    }
                }
            }
        }
    }

    if let Some((name, declaration)) = pending.first() {
        let message = match declaration.kind {
            Section::Vars => {
                format!("Section [{name}:vars] not valid for undefined group '{name}'.")
            }
            _ => {
                let parent = declaration
                    .parents
                    .last()
                    .map_or("", |&p| inventory.group_name(p));
                format!("Section [{parent}:children] includes undefined group '{name}'.")
            }
        };
        return Err(error_at(declaration.line, message));
    }
    Ok(())
}

/// A group named earlier as a child is now declared: attach it to the parents that named
/// it, and in turn any of those parents that were waiting the same way.
fn add_pending_children(
    inventory: &mut Inventory,
    name: &str,
    pending: &mut IndexMap<String, Pending>,
) -> Result<(), String> {
    let mut declared = vec![name.to_string()];
    while let Some(name) = declared.pop() {
        let Some(declaration) = pending.shift_remove(&name) else {
            continue;
        };
        let child = inventory.ensure_group(&name);
        for parent in declaration.parents {
            inventory.add_child_group(parent, child)?;
            let parent_name = inventory.group_name(parent).to_string();
            if pending
                .get(&parent_name)
                .is_some_and(|p| p.kind == Section::Children)
            {
                declared.push(parent_name);
            }
        }
    }
    Ok(())
}

/// `web[1:3]:2222 user=admin tags="[1, 2]"` → host names, port, variables.
fn parse_host_line(line: &str) -> Result<(Vec<String>, Option<i64>, Map), String> {
    let tokens = shlex_split(line)
        .map_err(|why| format!("Error parsing host definition '{line}': {why}"))?;
    let Some((pattern, assignments)) = tokens.split_first() else {
        return Err(format!("Expected a host name, got: {line}"));
    };
    let (names, port) = expand_host_pattern(pattern)?;
    if pattern.trim().ends_with(':') && port.is_none() {
        return Err(format!(
            "Invalid host pattern '{pattern}' supplied, ending in ':' is not allowed, this character is reserved to provide a port."
        ));
    }
    if names.iter().any(|n| n.trim() == "---") {
        return Err(format!(
            "Invalid host pattern '{pattern}' supplied, '---' is normally a sign this is a YAML file."
        ));
    }
    if names.iter().any(String::is_empty) {
        return Err(format!("Expected a host name, got: {line}"));
    }
    let mut vars = Map::new();
    for assignment in assignments {
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(format!(
                "Expected key=value host variable assignment, got: {assignment}"
            ));
        };
        vars.insert(key.to_string(), ini_value(value));
    }
    Ok((names, port, vars))
}

/// Python's `shlex.split(text, comments=True)` (POSIX mode).
fn shlex_split(text: &str) -> Result<Vec<String>, &'static str> {
    #[derive(PartialEq, Clone, Copy)]
    enum State {
        Space,
        Word,
        Quote(char),
        /// After a backslash; remembers where it was (`Word` or inside `"`).
        Escape(Option<char>),
    }
    let mut tokens = Vec::new();
    let mut token = String::new();
    // A quoted empty string ('') is still a token.
    let mut quoted = false;
    let mut state = State::Space;
    for c in text.chars() {
        match state {
            State::Space | State::Word => {
                // shlex's whitespace is exactly these four.
                if matches!(c, ' ' | '\t' | '\r' | '\n') {
                    if state == State::Word {
                        tokens.push(std::mem::take(&mut token));
                        quoted = false;
                    }
                    state = State::Space;
                } else if c == '#' {
                    // A comment runs to the end of the line, even in the middle of a word.
                    break;
                } else if c == '\'' || c == '"' {
                    state = State::Quote(c);
                    quoted = true;
                } else if c == '\\' {
                    state = State::Escape(None);
                } else {
                    token.push(c);
                    state = State::Word;
                }
            }
            State::Quote(q) => {
                if c == q {
                    state = State::Word;
                } else if c == '\\' && q == '"' {
                    state = State::Escape(Some('"'));
                } else {
                    token.push(c);
                }
            }
            State::Escape(inside) => {
                // Inside double quotes only `\"` and `\\` are escapes; others keep the backslash.
                if inside == Some('"') && c != '"' && c != '\\' {
                    token.push('\\');
                }
                token.push(c);
                state = match inside {
                    Some(q) => State::Quote(q),
                    None => State::Word,
                };
            }
        }
    }
    match state {
        State::Quote(_) => return Err("No closing quotation"),
        State::Escape(_) => return Err("No escaped character"),
        State::Space | State::Word => {}
    }
    if !token.is_empty() || quoted {
        tokens.push(token);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Expectations checked against Python 3.11's shlex.split(line, comments=True).
    #[test]
    fn host_lines_split_like_python_shlex() {
        let split = |s: &str| shlex_split(s).expect("splits");
        assert_eq!(split("h a=b#c"), ["h", "a=b"]);
        assert_eq!(split("h a=\"x y\" b='q'"), ["h", "a=x y", "b=q"]);
        assert_eq!(
            split(r#"h a="a\\b\"c" d=e\ f"#),
            ["h", r#"a=a\b"c"#, "d=e f"]
        );
        assert_eq!(split(r#"h "" x=1"#), ["h", "", "x=1"]);
        assert_eq!(split(r#"h a="\d""#), ["h", r"a=\d"]);
        assert_eq!(split("h # all comment"), ["h"]);
        assert_eq!(shlex_split("h a='open"), Err("No closing quotation"));
        assert_eq!(shlex_split("h a\\"), Err("No escaped character"));
    }

    #[test]
    fn host_line_values_are_python_literals_after_shlex() {
        let (names, port, vars) = parse_host_line(
            "web[1:2]:2222 a=1 b=True c='1' d=\"'1'\" e=0644 f=yes g=[1,2] k=\"hello world\"",
        )
        .expect("parses");
        assert_eq!(names, ["web1", "web2"]);
        assert_eq!(port, Some(2222));
        assert_eq!(
            serde_json::Value::Object(vars),
            json!({"a": 1, "b": true, "c": 1, "d": "1", "e": "0644", "f": "yes", "g": [1, 2], "k": "hello world"})
        );
    }

    #[test]
    fn bad_host_lines_say_why() {
        assert_eq!(
            parse_host_line("web1 novalue").map(|_| ()),
            Err("Expected key=value host variable assignment, got: novalue".into())
        );
        assert_eq!(
            parse_host_line("web1:").map(|_| ()),
            Err("Invalid host pattern 'web1:' supplied, ending in ':' is not allowed, this character is reserved to provide a port.".into())
        );
        assert_eq!(
            parse_host_line("---").map(|_| ()),
            Err("Invalid host pattern '---' supplied, '---' is normally a sign this is a YAML file.".into())
        );
        assert_eq!(
            parse_host_line("web1 a=\"x").map(|_| ()),
            Err("Error parsing host definition 'web1 a=\"x': No closing quotation".into())
        );
    }
}
