//! Host patterns as in `hosts:` and `--limit`, evaluated as Ansible's `InventoryManager` does: names, groups, globs, `~regex`, `a:b`/`a,b`, `&`, `!`, `[i]`/`[i:j]`.
//!
//! Unions are applied first, then intersections, then exclusions, whatever the written
//! order; the result keeps inventory order and has no duplicates.

use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{exit, Diagnostic};

use super::{address, Inventory, LOCALHOST_NAMES};

/// `pattern[3]`, `pattern[-1]`, `pattern[1:3]`, `pattern[2:]` (and the old `[1-3]`).
static SUBSCRIPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$").expect("static regex")
});

/// One `:`-separated part: anything but whitespace, `:` and brackets, or a whole `[...]`.
static COLON_PART: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:[^\s:\[\]]|\[[^\]]*\])+").expect("static regex"));

/// Splits a pattern into its parts: on commas if there are any; otherwise on colons,
/// unless the whole thing is one address (`::1`, `web[1:3]`, `host:22`).
fn split_host_pattern(pattern: &str) -> Vec<String> {
    let parts: Vec<&str> = if pattern.contains(',') {
        pattern.split(',').collect()
    } else if address::parse_address(pattern, true).is_some() {
        vec![pattern]
    } else {
        COLON_PART.find_iter(pattern).map(|m| m.as_str()).collect()
    };
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// Unions, then `&` intersections, then `!` exclusions; only `&`/`!` parts act on `all`.
fn order_patterns(patterns: &[String]) -> Vec<&str> {
    let kind = |p: &&String| match p.chars().next() {
        Some('!') => 2,
        Some('&') => 1,
        _ => 0,
    };
    let mut ordered: Vec<&str> = Vec::new();
    if !patterns
        .iter()
        .filter(|p| !p.is_empty())
        .any(|p| kind(&p) == 0)
    {
        ordered.push("all");
    }
    for wanted in 0..3 {
        ordered.extend(
            patterns
                .iter()
                .filter(|p| !p.is_empty() && kind(p) == wanted)
                .map(String::as_str),
        );
    }
    ordered
}

pub(super) fn select(inventory: &Inventory, pattern: &str) -> Result<Vec<String>, Diagnostic> {
    evaluate(inventory, &split_host_pattern(pattern))
}

fn evaluate(inventory: &Inventory, patterns: &[String]) -> Result<Vec<String>, Diagnostic> {
    let mut hosts: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for pattern in order_patterns(patterns) {
        // A plain host name is taken as is, even when a group has the same name.
        if inventory.hosts.contains_key(pattern) {
            if seen.insert(pattern.to_string()) {
                hosts.push(pattern.to_string());
            }
            continue;
        }
        let matched = match_one(inventory, pattern)?;
        if pattern.starts_with('!') {
            let matched: HashSet<&String> = matched.iter().collect();
            hosts.retain(|h| !matched.contains(h));
            seen = hosts.iter().cloned().collect();
        } else if pattern.starts_with('&') {
            let matched: HashSet<&String> = matched.iter().collect();
            hosts.retain(|h| matched.contains(h));
            seen = hosts.iter().cloned().collect();
        } else {
            for host in matched {
                if seen.insert(host.clone()) {
                    hosts.push(host);
                }
            }
        }
    }
    Ok(hosts)
}

/// The hosts of one part, ignoring its `&`/`!`, with its subscript applied.
fn match_one(inventory: &Inventory, pattern: &str) -> Result<Vec<String>, Diagnostic> {
    let word = strip_operator(pattern);
    if word.is_empty() {
        return Ok(Vec::new());
    }
    let (expression, subscript) = split_subscript(word);
    let hosts = enumerate_matches(inventory, expression)?.hosts;
    apply_subscript(hosts, subscript).ok_or_else(|| {
        Diagnostic::new(format!("No hosts matched the subscripted pattern '{word}'"))
            .exit_code(exit::ERROR)
    })
}

fn strip_operator(pattern: &str) -> &str {
    pattern.strip_prefix(['&', '!']).unwrap_or(pattern)
}

/// `(start, end)`: `[i]` is `(i, None)`; `[i:j]` is `(i, Some(j))`, `[i:]` is `(i, Some(-1))`.
type Subscript = (i64, Option<i64>);

fn split_subscript(pattern: &str) -> (&str, Option<Subscript>) {
    // A regex keeps its brackets.
    if pattern.starts_with('~') {
        return (pattern, None);
    }
    let Some(caps) = SUBSCRIPT.captures(pattern) else {
        return (pattern, None);
    };
    let number = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
    let expression = caps.get(1).map_or(pattern, |m| m.as_str());
    let subscript = match number(2) {
        Some(index) => (index, None),
        None => {
            let Some(start) = number(3) else {
                return (pattern, None);
            };
            (start, Some(number(5).unwrap_or(-1)))
        }
    };
    (expression, Some(subscript))
}

/// Applies a subscript with Python's list semantics; `None` for an index out of range.
/// An end of 0 (`[2:0]`) counts as a single index, a quirk of Ansible's `if end:`.
fn apply_subscript(hosts: Vec<String>, subscript: Option<Subscript>) -> Option<Vec<String>> {
    let Some((start, end)) = subscript else {
        return Some(hosts);
    };
    if hosts.is_empty() {
        return Some(hosts);
    }
    let len = hosts.len() as i64;
    match end {
        Some(end) if end != 0 => {
            let end = if end == -1 { len - 1 } else { end };
            let from = start.clamp(0, len) as usize;
            let to = (end + 1).clamp(0, len) as usize;
            Some(if from < to {
                hosts[from..to].to_vec()
            } else {
                Vec::new()
            })
        }
        _ => {
            let index = if start < 0 { len + start } else { start };
            let index = usize::try_from(index).ok().filter(|&i| i < hosts.len())?;
            Some(vec![hosts[index].clone()])
        }
    }
}

struct Matches {
    hosts: Vec<String>,
    /// Whether the expression named at least one group (possibly empty).
    matched_group: bool,
}

/// Groups matching the expression contribute all their hosts; hosts are matched by name
/// when no group matched or the expression is a glob or regex (`.`, `?`, `*`, `[`, `~`).
/// `all` and `ungrouped` are groups like any other here, so `a*` matches everything, as in Ansible.
fn enumerate_matches(inventory: &Inventory, expression: &str) -> Result<Matches, Diagnostic> {
    let matcher = Matcher::new(expression)?;
    let mut hosts = Vec::new();
    let mut matched_group = false;
    for (index, name) in inventory.groups.keys().enumerate() {
        if matcher.is_match(name) {
            matched_group = true;
            hosts.extend(inventory.group_host_names(index));
        }
    }
    if !matched_group || expression.starts_with('~') || expression.contains(['.', '?', '*', '[']) {
        hosts.extend(
            inventory
                .hosts
                .keys()
                .filter(|name| matcher.is_match(name))
                .cloned(),
        );
    }
    if hosts.is_empty() && LOCALHOST_NAMES.contains(&expression) {
        // The implicit localhost, or the localhost-like host the inventory defines.
        let name = inventory
            .resolve_host(expression)
            .map_or(expression, |index| inventory.host_name(index));
        hosts.push(name.to_string());
    }
    Ok(Matches {
        hosts,
        matched_group,
    })
}

enum Matcher {
    /// An fnmatch glob (or a plain name), matched against the whole name.
    Glob(Regex),
    /// `~regex`, matched from the start of the name like Python's `re.match`.
    Regex(fancy_regex::Regex),
}

impl Matcher {
    fn new(expression: &str) -> Result<Matcher, Diagnostic> {
        let invalid = |why: String| {
            Diagnostic::new(format!("Invalid host list pattern: {expression}"))
                .note(why)
                .exit_code(exit::ERROR)
        };
        match expression.strip_prefix('~') {
            Some(regex) => fancy_regex::Regex::new(&format!("^(?:{regex})"))
                .map(Matcher::Regex)
                .map_err(|e| invalid(e.to_string())),
            None => Regex::new(&glob_to_regex(expression))
                .map(Matcher::Glob)
                .map_err(|e| invalid(e.to_string())),
        }
    }

    fn is_match(&self, name: &str) -> bool {
        match self {
            Matcher::Glob(regex) => regex.is_match(name),
            // A regex that exceeds the backtracking limit counts as no match.
            Matcher::Regex(regex) => regex.is_match(name).unwrap_or(false),
        }
    }
}

/// Python's `fnmatch.translate`: `*`, `?`, `[seq]`, `[!seq]`; an unclosed `[` is literal.
fn glob_to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::from("(?s)^(?:");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str(r"\[");
                } else {
                    out.push_str(&char_class(&chars[i..j]));
                    i = j + 1;
                }
            }
            other => out.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push_str(")$");
    out
}

/// The regex for the inside of an fnmatch `[...]`; reversed ranges match nothing, as in Python.
fn char_class(body: &[char]) -> String {
    let (negated, body) = match body.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, body),
    };
    let escape = |c: char| match c {
        '\\' | '[' | ']' | '^' | '-' | '&' | '~' => format!("\\{c}"),
        other => other.to_string(),
    };
    let mut items = String::new();
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            if body[k] <= body[k + 2] {
                items.push_str(&format!("{}-{}", escape(body[k]), escape(body[k + 2])));
            }
            k += 3;
        } else {
            items.push_str(&escape(body[k]));
            k += 1;
        }
    }
    match (items.is_empty(), negated) {
        // Nothing allowed: never matches; nothing excluded: any character.
        (true, false) => r"\b\B".into(),
        (true, true) => ".".into(),
        (false, false) => format!("[{items}]"),
        (false, true) => format!("[^{items}]"),
    }
}

/// `--limit`: the hosts the limit allows. Every part must match some host or group.
pub(super) fn limit(inventory: &Inventory, pattern: &str) -> Result<Vec<String>, Diagnostic> {
    let mut patterns = Vec::new();
    for part in split_host_pattern(pattern) {
        match part.strip_prefix('@') {
            Some(file) => patterns.extend(read_limit_file(file)?),
            None => patterns.push(part),
        }
    }
    let mut unknown = Vec::new();
    for pattern in &patterns {
        let word = strip_operator(pattern);
        if word.is_empty() || inventory.hosts.contains_key(pattern.as_str()) {
            continue;
        }
        let matches = enumerate_matches(inventory, split_subscript(word).0)?;
        if matches.hosts.is_empty() && !matches.matched_group {
            unknown.push(word);
        }
    }
    if !unknown.is_empty() {
        return Err(unknown_limit_error(inventory, &unknown));
    }
    evaluate(inventory, &patterns)
}

/// An `@file` limit: one pattern per line (retry files list one host a line).
fn read_limit_file(file: &str) -> Result<Vec<String>, Diagnostic> {
    let path = Path::new(file);
    if !path.exists() {
        return Err(
            Diagnostic::new(format!("Unable to find limit file {file}")).exit_code(exit::ERROR)
        );
    }
    if path.is_dir() {
        return Err(Diagnostic::new(format!(
            "Limit starting with \"@\" must be a file, not a directory: {file}"
        ))
        .exit_code(exit::ERROR));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(format!("could not read limit file {file}: {e}")).exit_code(exit::ERROR)
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect())
}

fn unknown_limit_error(inventory: &Inventory, unknown: &[&str]) -> Diagnostic {
    let quoted = |names: &[&str]| names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>();
    let message = match unknown {
        [one] => format!("--limit pattern '{one}' matches no host or group in the inventory"),
        _ => format!(
            "--limit patterns {} match no host or group in the inventory",
            quoted(unknown).join(", ")
        ),
    };
    let mut diagnostic = Diagnostic::new(message).exit_code(exit::ERROR);
    for word in unknown {
        let nearest = nearest_names(inventory, word);
        if nearest.is_empty() {
            continue;
        }
        let names: Vec<&str> = nearest.iter().map(String::as_str).collect();
        let suggestion = or_list(&quoted(&names));
        diagnostic = diagnostic.note(if unknown.len() == 1 {
            format!("did you mean {suggestion}?")
        } else {
            format!("'{word}': did you mean {suggestion}?")
        });
    }
    diagnostic
}

/// "a", "a or b", "a, b or c".
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Up to three host or group names that look like `word` (typos, case, a missing suffix).
fn nearest_names(inventory: &Inventory, word: &str) -> Vec<String> {
    let word = word.to_lowercase();
    let mut scored: Vec<(f64, &String)> = inventory
        .groups
        .keys()
        .chain(inventory.hosts.keys())
        .map(|name| {
            let lower = name.to_lowercase();
            let score = strsim::jaro_winkler(&word, &lower)
                .max(strsim::normalized_damerau_levenshtein(&word, &lower));
            (score, name)
        })
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut names: Vec<String> = Vec::new();
    for (_, name) in scored {
        if !names.contains(name) {
            names.push(name.clone());
        }
        if names.len() == 3 {
            break;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_split_on_commas_or_colons_but_not_inside_addresses() {
        assert_eq!(split_host_pattern("web:db"), ["web", "db"]);
        assert_eq!(split_host_pattern("web, db ,,"), ["web", "db"]);
        assert_eq!(split_host_pattern("web:&db:!db1"), ["web", "&db", "!db1"]);
        assert_eq!(split_host_pattern("web[1:3]"), ["web[1:3]"]);
        assert_eq!(split_host_pattern("web*[1:3]:db"), ["web*[1:3]", "db"]);
        assert_eq!(split_host_pattern("::1"), ["::1"]);
        // With commas, colons are not separators any more (as in Ansible).
        assert_eq!(split_host_pattern("a:b,c"), ["a:b", "c"]);
    }

    #[test]
    fn subscripts_follow_python_indexing() {
        let hosts: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let apply = |pattern: &str| {
            let (_, subscript) = split_subscript(pattern);
            apply_subscript(hosts.clone(), subscript)
        };
        assert_eq!(apply("g[0]"), Some(vec!["a".to_string()]));
        assert_eq!(apply("g[-1]"), Some(vec!["d".to_string()]));
        assert_eq!(
            apply("g[1:2]"),
            Some(vec!["b".to_string(), "c".to_string()])
        );
        assert_eq!(apply("g[2:]"), Some(vec!["c".to_string(), "d".to_string()]));
        assert_eq!(apply("g[1:9]").map(|h| h.len()), Some(3));
        assert_eq!(apply("g[9]"), None);
        assert_eq!(split_subscript("~web[0]"), ("~web[0]", None));
        assert_eq!(split_subscript("web[a:b]"), ("web[a:b]", None));
    }

    #[test]
    fn globs_translate_like_fnmatch() {
        let matches = |glob: &str, name: &str| {
            Regex::new(&glob_to_regex(glob))
                .expect("compiles")
                .is_match(name)
        };
        assert!(matches("web*", "web01"));
        assert!(matches("*.example.com", "a.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("web?", "web1"));
        assert!(!matches("web?", "web10"));
        assert!(matches("db[0-9]", "db7"));
        assert!(matches("db[!0-9]", "dbx"));
        assert!(!matches("db[!0-9]", "db1"));
        assert!(matches("a[b", "a[b"));
        assert!(matches("a.c", "a.c"));
        assert!(!matches("a.c", "abc"));
        assert!(!matches("x[z-a]", "xz"));
        assert!(matches("x[-a]", "x-"));
    }
}
