//! Python `re` semantics on fancy-regex: pattern translation and `re.sub` replacement templates.
//!
//! Playbooks are written against Python's `re`; the differences that bite in practice are
//! `$` (Python also matches before a final newline), `\Z`, `(?P=name)` backreferences and the
//! replacement syntax (`\1`, `\g<1>`, `\g<name>`, `\n`).

use fancy_regex::{Captures, Regex};

/// A compiled Python-style regex.
pub struct PyRegex {
    regex: Regex,
    group_count: usize,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub ignorecase: bool,
    pub multiline: bool,
}

impl PyRegex {
    pub fn new(pattern: &str, flags: Flags) -> Result<PyRegex, String> {
        let mut translated = String::new();
        if flags.ignorecase || flags.multiline {
            translated.push_str("(?");
            if flags.ignorecase {
                translated.push('i');
            }
            if flags.multiline {
                translated.push('m');
            }
            translated.push(')');
        }
        translated.push_str(&translate(pattern, flags.multiline));
        let regex = Regex::new(&translated)
            .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))?;
        let group_count = regex.captures_len().saturating_sub(1);
        Ok(PyRegex { regex, group_count })
    }

    /// `re.match`: anchored at the start.
    pub fn new_anchored(pattern: &str, flags: Flags, full: bool) -> Result<PyRegex, String> {
        let wrapped = if full {
            format!("\\A(?:{pattern})\\Z")
        } else {
            format!("\\A(?:{pattern})")
        };
        PyRegex::new(&wrapped, flags)
    }

    pub fn is_match(&self, text: &str) -> Result<bool, String> {
        self.regex.is_match(text).map_err(|e| e.to_string())
    }

    pub fn captures<'t>(&self, text: &'t str) -> Result<Option<Captures<'t>>, String> {
        self.regex.captures(text).map_err(|e| e.to_string())
    }

    pub fn group_count(&self) -> usize {
        self.group_count
    }

    /// Index of a named group.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.regex.capture_names().position(|n| n == Some(name))
    }

    /// `re.findall`: whole matches, the one group, or lists of all groups.
    pub fn findall(&self, text: &str) -> Result<Vec<FindAll>, String> {
        let mut out = Vec::new();
        for caps in self.regex.captures_iter(text) {
            let caps = caps.map_err(|e| e.to_string())?;
            let group = |i: usize| {
                caps.get(i)
                    .map_or(String::new(), |m| m.as_str().to_string())
            };
            out.push(match self.group_count {
                0 => FindAll::One(group(0)),
                1 => FindAll::One(group(1)),
                n => FindAll::Groups((1..=n).map(group).collect()),
            });
        }
        Ok(out)
    }

    /// `re.subn`: the text with up to `count` (0 = all) matches replaced, and how many were.
    pub fn sub(
        &self,
        text: &str,
        replacement: &str,
        count: usize,
    ) -> Result<(String, usize), String> {
        let parts = parse_replacement(replacement, self)?;
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut n = 0;
        for caps in self.regex.captures_iter(text) {
            let caps = caps.map_err(|e| e.to_string())?;
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&text[last..m.start()]);
            for part in &parts {
                match part {
                    Part::Literal(s) => out.push_str(s),
                    Part::Group(i) => {
                        if let Some(g) = caps.get(*i) {
                            out.push_str(g.as_str());
                        }
                    }
                }
            }
            last = m.end();
            n += 1;
            if count > 0 && n >= count {
                break;
            }
        }
        out.push_str(&text[last..]);
        Ok((out, n))
    }
}

/// One `findall` result.
pub enum FindAll {
    One(String),
    Groups(Vec<String>),
}

enum Part {
    Literal(String),
    Group(usize),
}

/// Python's replacement template: `\1`, `\g<1>`, `\g<name>`, and the usual escapes.
fn parse_replacement(repl: &str, regex: &PyRegex) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let chars: Vec<char> = repl.chars().collect();
    let mut i = 0;
    let push_group = |parts: &mut Vec<Part>, lit: &mut String, idx: usize| -> Result<(), String> {
        if idx > regex.group_count {
            return Err(format!("invalid group reference {idx}"));
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(std::mem::take(lit)));
        }
        parts.push(Part::Group(idx));
        Ok(())
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            lit.push(c);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        match next {
            'g' if chars.get(i + 2) == Some(&'<') => {
                let close = chars[i + 3..]
                    .iter()
                    .position(|c| *c == '>')
                    .ok_or("missing >, unterminated name")?;
                let name: String = chars[i + 3..i + 3 + close].iter().collect();
                let idx = match name.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => regex
                        .group_index(&name)
                        .ok_or_else(|| format!("unknown group name '{name}'"))?,
                };
                push_group(&mut parts, &mut lit, idx)?;
                i += 4 + close;
            }
            '0'..='9' => {
                // Up to two digits form a group number (Python's rule, octal aside).
                let mut j = i + 1;
                let mut num = 0usize;
                while j < chars.len() && j < i + 3 && chars[j].is_ascii_digit() {
                    num = num * 10 + chars[j].to_digit(10).unwrap_or(0) as usize;
                    j += 1;
                }
                push_group(&mut parts, &mut lit, num)?;
                i = j;
            }
            'n' => {
                lit.push('\n');
                i += 2;
            }
            't' => {
                lit.push('\t');
                i += 2;
            }
            'r' => {
                lit.push('\r');
                i += 2;
            }
            'f' => {
                lit.push('\x0c');
                i += 2;
            }
            'v' => {
                lit.push('\x0b');
                i += 2;
            }
            'a' => {
                lit.push('\x07');
                i += 2;
            }
            'b' => {
                lit.push('\x08');
                i += 2;
            }
            '\\' => {
                lit.push('\\');
                i += 2;
            }
            other if other.is_ascii_alphabetic() => {
                return Err(format!("bad escape \\{other}"));
            }
            other => {
                // Python keeps unknown non-letter escapes as written.
                lit.push('\\');
                lit.push(other);
                i += 2;
            }
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    Ok(parts)
}

/// Rewrites the Python-only parts of a pattern for fancy-regex.
fn translate(pattern: &str, multiline: bool) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let next = chars[i + 1];
                if !in_class && next == 'Z' {
                    out.push_str("\\z");
                } else {
                    out.push(c);
                    out.push(next);
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` (or `^]`) right after the opening bracket is literal.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '[' if in_class => out.push_str("\\["),
            '$' if !in_class && !multiline => {
                // Python's `$` also matches just before a trailing newline.
                out.push_str("(?=\\n?\\z)");
            }
            '(' if !in_class
                && chars.get(i + 1) == Some(&'?')
                && chars.get(i + 2) == Some(&'P')
                && chars.get(i + 3) == Some(&'=') =>
            {
                // (?P=name) backreference.
                let close = chars[i + 4..].iter().position(|c| *c == ')');
                if let Some(close) = close {
                    let name: String = chars[i + 4..i + 4 + close].iter().collect();
                    out.push_str(&format!("\\k<{name}>"));
                    i += 5 + close;
                    continue;
                }
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Python's `re.escape`: every character except ASCII letters, digits and `_` is escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        // Python 3.7+ escapes only regex-special characters.
        if "()[]{}?*+-|^$\\.&~# \t\n\r\x0b\x0c".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(p: &str, r: &str, t: &str) -> String {
        PyRegex::new(p, Flags::default())
            .expect("compile")
            .sub(t, r, 0)
            .expect("sub")
            .0
    }

    #[test]
    fn python_replacement_syntax() {
        assert_eq!(sub("^(.*)_name$", "\\1", "test1_name"), "test1");
        assert_eq!(
            sub("(?P<a>\\w+)@(?P<b>\\w+)", "\\g<b>@\\g<a>", "x@y"),
            "y@x"
        );
        assert_eq!(sub("(a)", "\\g<1>\\n", "a"), "a\n");
        assert_eq!(sub("b", "[\\.]", "abc"), "a[\\.]c");
    }

    #[test]
    fn dollar_matches_before_final_newline() {
        assert_eq!(sub("x$", "y", "ax\n"), "ay\n");
        let r = PyRegex::new("a\\Z", Flags::default()).expect("compile");
        assert!(!r.is_match("a\n").expect("match"));
    }

    #[test]
    fn named_backreference() {
        let r = PyRegex::new("(?P<q>['\"]).*(?P=q)", Flags::default()).expect("compile");
        assert!(r.is_match("'abc'").expect("match"));
        assert!(!r.is_match("'abc\"").expect("match"));
    }

    #[test]
    fn escape_like_python() {
        assert_eq!(escape("a.b*c d"), "a\\.b\\*c\\ d");
    }
}
