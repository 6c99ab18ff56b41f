//! Python `re` semantics on top of fancy-regex: pattern translation, replacement templates
//! (`\1`, `\g<name>`), Python's `re.subn` and a lossless bytes↔text mapping for files
//! that are not valid UTF-8.
//!
//! Ansible's text modules take Python regular expressions. fancy-regex reads most of that
//! syntax as it is (`(?P<name>...)`, `(?P=name)`, lookarounds, backreferences, `(?i)`);
//! `compile` rewrites the pieces that mean something else or do not parse:
//!
//! | Python                         | here                                        |
//! |--------------------------------|---------------------------------------------|
//! | `$` (no MULTILINE): end, or before a final `\n` | `(?=\n?\z)`                |
//! | `\Z` (end of text)             | `\z`                                        |
//! | `\<`, `\>`, `\'`, `\#`, `\ `... (escaped punctuation, a literal) | `\x{..}` (fancy-regex reads `\<` `\>` as word boundaries) |
//! | `\0`, `\012` (octal)           | `\x{..}`                                    |
//! | `[` `&` `~` inside a class (literal) | escaped (Rust reads nested classes and `&&` `~~` set operations) |
//! | `(?#comment)`                  | dropped                                     |
//! | flags `a` `L` `u` in `(?aiLmsux)` | dropped (Unicode matching is always on)   |
//!
//! Known differences left in place: a class written in `(?x)` mode ignores spaces here but
//! not in Python; Python rejects unknown escapes such as `\q` (here: fancy-regex's own error);
//! when Ansible matches bytes (lineinfile, blockinfile) `\w`, `\d`, `\s` are ASCII-only and
//! `.` matches one byte, while here they match Unicode characters.

use std::borrow::Cow;

use fancy_regex::{Captures, Regex};

/// Compile a Python regular expression. `multiline` is `re.MULTILINE` and `dotall` is
/// `re.DOTALL` as passed to `re.compile` (inline `(?m)`/`(?s)` flags work too).
/// The error is the regex engine's message.
pub fn compile(pattern: &str, multiline: bool, dotall: bool) -> Result<Regex, String> {
    let translated = translate(pattern, multiline);
    let mut full = String::new();
    if multiline {
        full.push_str("(?m)");
    }
    if dotall {
        full.push_str("(?s)");
    }
    full.push_str(&translated);
    Regex::new(&full).map_err(|e| e.to_string())
}

/// Whether a Python pattern turns on MULTILINE itself with a leading `(?m)`-style flag group
/// (Python only allows global flags at the start of the pattern).
pub fn has_inline_multiline(pattern: &str) -> bool {
    let mut rest = pattern;
    while let Some(after) = rest.strip_prefix("(?") {
        let Some(end) = after.find(')') else {
            return false;
        };
        let flags = &after[..end];
        if flags.is_empty() || !flags.chars().all(|c| "aiLmsux".contains(c)) {
            return false;
        }
        if flags.contains('m') {
            return true;
        }
        rest = &after[end + 1..];
    }
    false
}

/// Rewrite Python-only regex syntax into what fancy-regex reads the same way (table above).
fn translate(pattern: &str, multiline: bool) -> String {
    let multiline = multiline || has_inline_multiline(pattern);
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => i = translate_escape(&chars, i, false, &mut out),
            '[' => i = translate_class(&chars, i, &mut out),
            '$' if !multiline => {
                out.push_str(r"(?=\n?\z)");
                i += 1;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                i = translate_group_opening(&chars, i, &mut out);
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `(?#...)` comments are dropped; flag groups lose the flags Rust does not know.
/// Returns the index after what was consumed.
fn translate_group_opening(chars: &[char], start: usize, out: &mut String) -> usize {
    let rest = &chars[start + 2..];
    if rest.first() == Some(&'#') {
        // A comment runs to the first `)`; Python allows no escapes in it.
        return match rest.iter().position(|&c| c == ')') {
            Some(end) => start + 2 + end + 1,
            None => chars.len(),
        };
    }
    // A flag group `(?imsx)` or a scoped one `(?i:` / `(?-i:`.
    let flag_len = rest.iter().take_while(|c| "aiLmsux-".contains(**c)).count();
    let closer = rest.get(flag_len).copied();
    if flag_len > 0 && matches!(closer, Some(')') | Some(':')) {
        let kept: String = rest[..flag_len]
            .iter()
            .filter(|c| !"aLu".contains(**c))
            .collect();
        let kept = kept.trim_end_matches('-');
        if kept.is_empty() || kept == "-" {
            if closer == Some(':') {
                out.push_str("(?:");
            }
        } else {
            out.push_str("(?");
            out.push_str(kept);
            out.push(closer.unwrap_or(')'));
        }
        return start + 2 + flag_len + 1;
    }
    out.push_str("(?");
    start + 2
}

/// A character class: copied with Rust's extra class syntax (`[` nesting, `&&`, `~~`, `--`)
/// escaped. Returns the index after the closing `]`.
fn translate_class(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        out.push_str(r"\]");
        i += 1;
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ']' => {
                out.push(']');
                return i + 1;
            }
            '\\' => i = translate_escape(chars, i, true, out),
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                out.push_str(r"-\-");
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Unterminated class: let the regex engine report it.
    i
}

/// One backslash escape at `chars[start]`. Returns the index after it.
fn translate_escape(chars: &[char], start: usize, in_class: bool, out: &mut String) -> usize {
    let Some(&next) = chars.get(start + 1) else {
        out.push('\\');
        return start + 1;
    };
    match next {
        'Z' if !in_class => {
            out.push_str(r"\z");
            start + 2
        }
        '0' => {
            // Python: `\0` plus up to two more octal digits is a character.
            let digits: String = std::iter::once('0')
                .chain(
                    chars[start + 2..]
                        .iter()
                        .take(2)
                        .take_while(|c| c.is_digit(8))
                        .copied(),
                )
                .collect();
            let value = u32::from_str_radix(&digits, 8).unwrap_or(0);
            out.push_str(&format!("\\x{{{value:X}}}"));
            start + 1 + digits.len()
        }
        c if c.is_ascii_alphanumeric() => {
            out.push('\\');
            out.push(c);
            start + 2
        }
        // Regex metacharacters keep their escape.
        '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '\\'
        | '-' => {
            out.push('\\');
            out.push(next);
            start + 2
        }
        // Other escaped ASCII (`\<`, `\'`, `\ `, `\#`, ...) is a plain literal in Python.
        c if c.is_ascii() => {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
            start + 2
        }
        // `\é` is `é` in Python.
        c => {
            out.push(c);
            start + 2
        }
    }
}

/// A parsed Python replacement template (`re.sub` repl, `Match.expand`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Group(usize),
}

impl Template {
    /// Parse `template` for `regex`, with Python's rules: `\1`..`\99` and `\g<1>`/`\g<name>`
    /// are groups, `\n` `\t` `\r` `\f` `\v` `\a` `\b` `\\` and octal `\0`/`\123` are
    /// characters, any other escaped letter is an error, and other escapes (`\.`, `\$`) stay
    /// as they are (backslash included). `$` is never special. Errors use Python's wording.
    pub fn parse(template: &str, regex: &Regex) -> Result<Self, String> {
        let groups = regex.captures_len();
        let names: Vec<Option<String>> = regex
            .capture_names()
            .map(|n| n.map(str::to_string))
            .collect();
        let chars: Vec<char> = template.chars().collect();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        let group_ref = |n: usize, pos: usize| -> Result<Piece, String> {
            if n < groups {
                Ok(Piece::Group(n))
            } else {
                Err(format!("invalid group reference {n} at position {pos}"))
            }
        };
        while i < chars.len() {
            let c = chars[i];
            if c != '\\' {
                literal.push(c);
                i += 1;
                continue;
            }
            let Some(&next) = chars.get(i + 1) else {
                return Err("bad escape (end of pattern) at position ".to_string() + &i.to_string());
            };
            let flush = |pieces: &mut Vec<Piece>, literal: &mut String| {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(literal)));
                }
            };
            match next {
                'g' => {
                    let rest = &chars[i + 2..];
                    if rest.first() != Some(&'<') {
                        return Err(format!("missing < at position {}", i + 2));
                    }
                    let Some(close) = rest.iter().position(|&c| c == '>') else {
                        return Err(format!(
                            "missing >, unterminated name at position {}",
                            i + 3
                        ));
                    };
                    let name: String = rest[1..close].iter().collect();
                    if name.is_empty() {
                        return Err(format!("missing group name at position {}", i + 3));
                    }
                    let piece = if name.chars().all(|c| c.is_ascii_digit()) {
                        let n = name.parse::<usize>().unwrap_or(usize::MAX);
                        group_ref(n, i + 3)?
                    } else if let Some(index) = names
                        .iter()
                        .position(|n| n.as_deref() == Some(name.as_str()))
                    {
                        Piece::Group(index)
                    } else if is_identifier(&name) {
                        return Err(format!("unknown group name '{name}'"));
                    } else {
                        return Err(format!(
                            "bad character in group name '{name}' at position {}",
                            i + 3
                        ));
                    };
                    flush(&mut pieces, &mut literal);
                    pieces.push(piece);
                    i += 2 + close + 1;
                }
                '0' => {
                    let digits: String = chars[i + 1..]
                        .iter()
                        .take(3)
                        .take_while(|c| c.is_digit(8))
                        .collect();
                    literal.push(octal_char(&digits));
                    i += 1 + digits.len();
                }
                '1'..='9' => {
                    let d3: Vec<char> = chars[i + 1..].iter().take(3).copied().collect();
                    if d3.len() == 3 && d3.iter().all(|c| c.is_digit(8)) && d3[0] <= '3' {
                        let digits: String = d3.iter().collect();
                        literal.push(octal_char(&digits));
                        i += 4;
                    } else {
                        let digits: String = chars[i + 1..]
                            .iter()
                            .take(2)
                            .take_while(|c| c.is_ascii_digit())
                            .collect();
                        let n = digits.parse::<usize>().unwrap_or(usize::MAX);
                        let piece = group_ref(n, i + 1)?;
                        flush(&mut pieces, &mut literal);
                        pieces.push(piece);
                        i += 1 + digits.len();
                    }
                }
                'n' | 't' | 'r' | 'f' | 'v' | 'a' | 'b' | '\\' => {
                    literal.push(match next {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'f' => '\x0c',
                        'v' => '\x0b',
                        'a' => '\x07',
                        'b' => '\x08',
                        _ => '\\',
                    });
                    i += 2;
                }
                c if c.is_ascii_alphabetic() => {
                    return Err(format!("bad escape \\{c} at position {i}"));
                }
                c => {
                    literal.push('\\');
                    literal.push(c);
                    i += 2;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self { pieces })
    }

    /// The replacement for one match; a group that did not take part is empty (as Python ≥ 3.5).
    pub fn expand(&self, caps: &Captures<'_>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Group(n) => {
                    if let Some(m) = caps.get(*n) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
        out
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn octal_char(digits: &str) -> char {
    u32::from_str_radix(digits, 8)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\0')
}

/// Python's `re.subn(regex, template, text)`: every match replaced, left to right, and the
/// number of replacements. As Python ≥ 3.7, an empty match right after a non-empty one is
/// replaced too (`x*` on `abxd` gives `-a-b--d-`), but never two empty matches at one place.
/// Where Python, refusing a second empty match at a position, would backtrack into a
/// non-empty alternative at that same position (`x*|a`), the search here moves on one
/// character instead.
pub fn subn(regex: &Regex, template: &Template, text: &str) -> Result<(String, usize), String> {
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    // Where the unreplaced text starts, and where the next search starts.
    let mut copied_to = 0;
    let mut search_from = 0;
    let mut last_was_empty_at: Option<usize> = None;
    while search_from <= text.len() {
        let Some(caps) = regex
            .captures_from_pos(text, search_from)
            .map_err(|e| e.to_string())?
        else {
            break;
        };
        let Some(whole) = caps.get(0) else { break };
        let (start, end) = (whole.start(), whole.end());
        if start == end && last_was_empty_at == Some(start) {
            // Python requires the search to advance after an empty match.
            match text[start..].chars().next() {
                Some(c) => {
                    search_from = start + c.len_utf8();
                    continue;
                }
                None => break,
            }
        }
        out.push_str(&text[copied_to..start]);
        out.push_str(&template.expand(&caps));
        count += 1;
        copied_to = end;
        search_from = end;
        last_was_empty_at = (start == end).then_some(end);
    }
    out.push_str(&text[copied_to..]);
    Ok((out, count))
}

/// The first code point of the range that stands for undecodable bytes 0x80..=0xFF.
const ESCAPE_BASE: u32 = 0x10_FF00;

/// File bytes as text without losing anything: valid UTF-8 as it is, and each byte that is
/// not part of valid UTF-8 as a private-use character (U+10FF80..U+10FFFF), the way Python's
/// `surrogateescape` keeps such bytes. `encode` turns the text back into the same bytes.
/// Refused (None) in the one ambiguous case: a file with invalid bytes that also contains
/// those private-use characters itself.
pub fn decode(bytes: &[u8]) -> Option<Cow<'_, str>> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Some(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        if chunk.valid().chars().any(is_escape_char) {
            return None;
        }
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            out.push(char::from_u32(ESCAPE_BASE + u32::from(b)).unwrap_or('\u{FFFD}'));
        }
    }
    Some(Cow::Owned(out))
}

fn is_escape_char(c: char) -> bool {
    (ESCAPE_BASE + 0x80..=ESCAPE_BASE + 0xFF).contains(&(c as u32))
}

/// The bytes `decode` read `text` from (escape characters back to their raw bytes).
pub fn encode(text: &str) -> Vec<u8> {
    if !text.chars().any(is_escape_char) {
        return text.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if is_escape_char(c) {
            out.push((c as u32 - ESCAPE_BASE) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> Regex {
        compile(p, false, false).expect("compiles")
    }

    fn sub(p: &str, repl: &str, text: &str, multiline: bool) -> (String, usize) {
        let r = compile(p, multiline, false).expect("compiles");
        let t = Template::parse(repl, &r).expect("template");
        subn(&r, &t, text).expect("subn")
    }

    #[test]
    fn dollar_matches_before_a_final_newline_as_in_python() {
        assert!(re("^foo$").is_match("foo\n").expect("runs"));
        assert!(re("^foo$").is_match("foo").expect("runs"));
        assert!(!re("^foo$").is_match("foo\nbar").expect("runs"));
        assert!(!re(r"^foo\Z").is_match("foo\n").expect("runs"));
        assert!(re(r"^foo\Z").is_match("foo").expect("runs"));
        // A `$` inside a class is a literal.
        assert!(re("[$]x").is_match("$x").expect("runs"));
        assert!(re(r"\$x").is_match("$x").expect("runs"));
        // (?m) at the start switches to multiline `$`.
        assert!(re("(?m)^a$").is_match("a\nb").expect("runs"));
    }

    #[test]
    fn python_only_syntax_is_translated() {
        assert!(re(r"\<tag\>").is_match("<tag>").expect("runs"));
        assert!(re(r"a\ b\#c\'").is_match("a b#c'").expect("runs"));
        assert!(re("[[]x").is_match("[x").expect("runs"));
        assert!(re("[a&&b]").is_match("&").expect("runs"));
        assert!(re("[~]").is_match("~").expect("runs"));
        assert!(re("a(?#a comment)b").is_match("ab").expect("runs"));
        assert!(re("(?ai)ABC").is_match("abc").expect("runs"));
        assert!(re(r"\0101").is_match("\x081").expect("runs"));
        assert!(re(r"{foo}").is_match("{foo}").expect("runs"));
        assert!(re(r"a{,2}b").is_match("aab").expect("runs"));
        assert!(re(r"(?P<k>\w+)=(?P=k)").is_match("ab=ab").expect("runs"));
        assert!(re(r"(a)\1").is_match("aa").expect("runs"));
        assert!(re(r"(?i:X)y").is_match("xy").expect("runs"));
        assert!(!re(r"(?i:X)y").is_match("xY").expect("runs"));
        assert!(re(r"[\]]").is_match("]").expect("runs"));
        assert!(re(r"[]]").is_match("]").expect("runs"));
        assert!(re(r"\d+").is_match("12").expect("runs"));
    }

    #[test]
    fn templates_follow_python_rules() {
        let r = re(r"(?P<key>\w+)=(\w+)");
        let caps = r.captures("a=b").expect("runs").expect("matches");
        let expand = |t: &str| Template::parse(t, &r).map(|t| t.expand(&caps));
        assert_eq!(expand(r"\2=\1").as_deref(), Ok("b=a"));
        assert_eq!(expand(r"\g<2>0\g<key>").as_deref(), Ok("b0a"));
        assert_eq!(expand(r"$1 \\ \n\t.\.").as_deref(), Ok("$1 \\ \n\t.\\."));
        assert_eq!(expand(r"\0").as_deref(), Ok("\0"));
        assert_eq!(expand(r"\101").as_deref(), Ok("A"));
        assert_eq!(
            expand(r"\3"),
            Err("invalid group reference 3 at position 1".into())
        );
        assert_eq!(expand(r"\g<nope>"), Err("unknown group name 'nope'".into()));
        assert_eq!(expand(r"\q"), Err("bad escape \\q at position 0".into()));
        assert_eq!(
            expand("x\\"),
            Err("bad escape (end of pattern) at position 1".into())
        );
        // A group that did not take part is empty.
        let r = re(r"(a)|(b)");
        let caps = r.captures("b").expect("runs").expect("matches");
        let t = Template::parse(r"[\1][\2]", &r).expect("template");
        assert_eq!(t.expand(&caps), "[][b]");
    }

    #[test]
    fn subn_matches_python_including_empty_matches() {
        assert_eq!(sub("x*", "-", "abxd", false), ("-a-b--d-".into(), 5));
        assert_eq!(sub("^", "#", "a\nb\n", true), ("#a\n#b\n#".into(), 3));
        assert_eq!(sub("$", ";", "a\nb\n", true), ("a;\nb;\n;".into(), 3));
        assert_eq!(sub("o", "0", "foo", false), ("f00".into(), 2));
        assert_eq!(sub("z", "0", "foo", false), ("foo".into(), 0));
        assert_eq!(sub("", "-", "ab", false), ("-a-b-".into(), 3));
        assert_eq!(sub("é*", "-", "aé", false), ("-a--".into(), 3));
    }

    #[test]
    fn invalid_utf8_round_trips() {
        let bytes = b"caf\xe9 \xff\xfe ok \xc3\xa9\n";
        let text = decode(bytes).expect("decodes");
        assert!(text.contains(" ok é\n"));
        assert_eq!(encode(&text), bytes.to_vec());
        let valid = "plain é";
        assert_eq!(
            encode(&decode(valid.as_bytes()).expect("decodes")),
            valid.as_bytes()
        );
        let ambiguous = [b"\xff".as_slice(), "\u{10FFAA}".as_bytes()].concat();
        assert_eq!(decode(&ambiguous), None);
    }
}
