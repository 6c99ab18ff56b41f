//! Python literal evaluation (`ast.literal_eval`) of INI inventory values, which Ansible's INI plugin applies to every `key=value`.
//!
//! `a=1` is an int, `b=True` a bool, `c=[1, 'x']` a list, `d='0644'` a string; anything
//! that is not a Python literal (`yes`, `0644`, `hello world`) stays the text it was.

use serde_json::{Number, Value};

/// The value of an INI `key=value`: the Python literal it spells, else the text itself.
pub(super) fn ini_value(text: &str) -> Value {
    literal_eval(text).unwrap_or_else(|| Value::String(text.to_string()))
}

/// `ast.literal_eval(text)` converted as Ansible converts the result: tuples and sets
/// become lists, complex numbers and `...` become their text. `None` when Python
/// would raise (the caller then keeps the raw text).
pub(super) fn literal_eval(text: &str) -> Option<Value> {
    // literal_eval strips leading spaces and tabs before parsing.
    let text = text.trim_start_matches([' ', '\t']);
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let lit = parser.expression_list()?;
    parser.skip_space();
    if parser.pos != parser.chars.len() {
        return None;
    }
    Some(lit.into_value())
}

/// A Python literal, before conversion to JSON.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    /// Kept as text when it does not fit 64 bits (Python ints are unbounded).
    Int(i128),
    Float(f64),
    Complex(f64, f64),
    Str(String),
    Bytes(Vec<u8>),
    Bool(bool),
    None,
    Ellipsis,
    List(Vec<Lit>),
    Tuple(Vec<Lit>),
    Set(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

impl Lit {
    fn into_value(self) -> Value {
        match self {
            Lit::Int(i) => i64::try_from(i)
                .map(Value::from)
                .or_else(|_| u64::try_from(i).map(Value::from))
                .unwrap_or_else(|_| Value::String(i.to_string())),
            Lit::Float(f) => Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(py_float_repr(f))),
            Lit::Str(s) => Value::String(s),
            Lit::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
            Lit::Bool(b) => Value::Bool(b),
            Lit::None => Value::Null,
            Lit::Ellipsis => Value::String("...".into()),
            lit @ Lit::Complex(..) => Value::String(lit.py_str()),
            Lit::List(items) | Lit::Tuple(items) | Lit::Set(items) => {
                Value::Array(items.into_iter().map(Lit::into_value).collect())
            }
            Lit::Dict(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.key_text(), v.into_value()))
                    .collect(),
            ),
        }
    }

    /// A dict key as a JSON object key: strings as they are, others as Python prints them.
    fn key_text(&self) -> String {
        match self {
            Lit::Str(s) => s.clone(),
            other => other.py_str(),
        }
    }

    /// Python's `str()` of the value (used for complex numbers and non-string keys).
    fn py_str(&self) -> String {
        let seq = |items: &[Lit]| {
            items
                .iter()
                .map(Lit::py_repr)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Lit::Int(i) => i.to_string(),
            Lit::Float(f) => py_float_repr(*f),
            Lit::Complex(re, im) => {
                let im_text = py_float_repr(*im);
                let im_text = im_text.strip_suffix(".0").unwrap_or(&im_text);
                if *re == 0.0 && re.is_sign_positive() {
                    format!("{im_text}j")
                } else {
                    let re_text = py_float_repr(*re);
                    let re_text = re_text.strip_suffix(".0").unwrap_or(&re_text);
                    let sign = if im_text.starts_with('-') { "" } else { "+" };
                    format!("({re_text}{sign}{im_text}j)")
                }
            }
            Lit::Str(s) => s.clone(),
            Lit::Bytes(b) => format!("b'{}'", String::from_utf8_lossy(b)),
            Lit::Bool(true) => "True".into(),
            Lit::Bool(false) => "False".into(),
            Lit::None => "None".into(),
            Lit::Ellipsis => "Ellipsis".into(),
            Lit::List(items) => format!("[{}]", seq(items)),
            Lit::Tuple(items) if items.len() == 1 => format!("({},)", seq(items)),
            Lit::Tuple(items) => format!("({})", seq(items)),
            Lit::Set(items) => format!("{{{}}}", seq(items)),
            Lit::Dict(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.py_repr(), v.py_repr()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn py_repr(&self) -> String {
        match self {
            Lit::Str(s) => format!("'{s}'"),
            other => other.py_str(),
        }
    }

    /// Whether Python could hash it (a dict key or set member); lists, dicts and sets can't be.
    fn hashable(&self) -> bool {
        match self {
            Lit::List(_) | Lit::Set(_) | Lit::Dict(_) => false,
            Lit::Tuple(items) => items.iter().all(Lit::hashable),
            _ => true,
        }
    }

    fn is_real_number(&self) -> bool {
        matches!(self, Lit::Int(_) | Lit::Float(_))
    }
}

/// Python's `repr(float)`: always a dot or exponent, `inf`/`nan` spelled out.
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// How a parsed operand may take part in `-x` and `a+bj`: literal_eval only accepts a
/// sign or a complex sum on plain number constants (parentheses don't count as nodes).
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Constant,
    Signed,
    Other,
}

/// How deep brackets may nest (CPython's parser stops at 200 too).
const MAX_NESTING: usize = 200;

struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// Brackets currently open.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }
    /// Skips spaces and a `# comment` (Python ignores both between tokens).
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' || c == '\x0c' {
                self.pos += 1;
            } else if c == '#' {
                self.pos = self.chars.len();
            } else {
                break;
            }
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `a, b, c` at the top level or inside parentheses: one item, or a tuple when there is a comma.
    fn expression_list(&mut self) -> Option<Lit> {
        let (first, _) = self.expression()?;
        self.skip_space();
        if self.peek() != Some(',') {
            return Some(first);
        }
        let mut items = vec![first];
        while self.eat(',') {
            self.skip_space();
            if matches!(self.peek(), None | Some(')')) {
                break;
            }
            items.push(self.expression()?.0);
        }
        Some(Lit::Tuple(items))
    }

    /// A value, with literal_eval's one arithmetic exception: `real ± imaginary`.
    fn expression(&mut self) -> Option<(Lit, Form)> {
        let (left, form) = self.unary()?;
        self.skip_space();
        let sign = match self.peek() {
            Some('+') => 1.0,
            Some('-') => -1.0,
            _ => return Some((left, form)),
        };
        self.pos += 1;
        let (right, right_form) = self.atom()?;
        match (left, right) {
            (left, Lit::Complex(right_re, im))
                if right_re == 0.0
                    && form != Form::Other
                    && right_form == Form::Constant
                    && left.is_real_number() =>
            {
                let re = match left {
                    Lit::Int(i) => i as f64,
                    Lit::Float(f) => f,
                    _ => return None,
                };
                Some((Lit::Complex(re, sign * im), Form::Other))
            }
            _ => None,
        }
    }

    fn unary(&mut self) -> Option<(Lit, Form)> {
        self.skip_space();
        let negate = match self.peek() {
            Some('-') => true,
            Some('+') => false,
            _ => return self.atom(),
        };
        self.pos += 1;
        let (operand, form) = self.atom()?;
        if form != Form::Constant {
            return None;
        }
        let value = match (operand, negate) {
            (lit @ (Lit::Int(_) | Lit::Float(_) | Lit::Complex(..)), false) => lit,
            (Lit::Int(i), true) => Lit::Int(-i),
            (Lit::Float(f), true) => Lit::Float(-f),
            (Lit::Complex(re, im), true) => Lit::Complex(-re, -im),
            _ => return None,
        };
        Some((value, Form::Signed))
    }

    fn atom(&mut self) -> Option<(Lit, Form)> {
        self.skip_space();
        let c = self.peek()?;
        if c.is_ascii_digit() || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) {
            return Some((self.number()?, Form::Constant));
        }
        if c == '\'' || c == '"' || self.string_prefix_len().is_some() {
            return Some((self.strings()?, Form::Constant));
        }
        match c {
            '[' | '(' | '{' => {
                // Python's parser gives up on deep nesting too; this also bounds our recursion.
                if self.depth >= MAX_NESTING {
                    return None;
                }
                self.depth += 1;
                self.pos += 1;
                let container = self.container(c);
                self.depth -= 1;
                container
            }
            '.' if self.peek_at(1) == Some('.') && self.peek_at(2) == Some('.') => {
                self.pos += 3;
                Some((Lit::Ellipsis, Form::Other))
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().collect();
                match name.as_str() {
                    "True" => Some((Lit::Bool(true), Form::Other)),
                    "False" => Some((Lit::Bool(false), Form::Other)),
                    "None" => Some((Lit::None, Form::Other)),
                    // literal_eval's one allowed call: an empty set.
                    "set" if self.eat('(') && self.eat(')') => {
                        Some((Lit::Set(Vec::new()), Form::Other))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The rest of a `[...]`, `(...)` or `{...}` after its opening bracket.
    fn container(&mut self, open: char) -> Option<(Lit, Form)> {
        match open {
            '[' => Some((Lit::List(self.items(']')?), Form::Other)),
            '{' => Some((self.dict_or_set()?, Form::Other)),
            _ => {
                if self.eat(')') {
                    return Some((Lit::Tuple(Vec::new()), Form::Other));
                }
                let (first, form) = self.expression()?;
                if self.eat(')') {
                    // Parentheses around one value are just grouping.
                    return Some((first, form));
                }
                if !self.eat(',') {
                    return None;
                }
                let mut items = vec![first];
                items.extend(self.items(')')?);
                Some((Lit::Tuple(items), Form::Other))
            }
        }
    }

    /// Comma-separated values up to `close` (a trailing comma is allowed).
    fn items(&mut self, close: char) -> Option<Vec<Lit>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.expression()?.0);
            if !self.eat(',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    fn dict_or_set(&mut self) -> Option<Lit> {
        if self.eat('}') {
            return Some(Lit::Dict(Vec::new()));
        }
        let (first, _) = self.expression()?;
        if !first.hashable() {
            return None;
        }
        if self.eat(':') {
            let mut entries = vec![(first, self.expression()?.0)];
            while self.eat(',') {
                if self.eat('}') {
                    return Some(Lit::Dict(dedup_keys(entries)));
                }
                let (key, _) = self.expression()?;
                if !key.hashable() || !self.eat(':') {
                    return None;
                }
                entries.push((key, self.expression()?.0));
            }
            return self.eat('}').then(|| Lit::Dict(dedup_keys(entries)));
        }
        let mut members = vec![first];
        while self.eat(',') {
            if self.eat('}') {
                return Some(Lit::Set(dedup(members)));
            }
            let (member, _) = self.expression()?;
            if !member.hashable() {
                return None;
            }
            members.push(member);
        }
        self.eat('}').then(|| Lit::Set(dedup(members)))
    }

    /// Digits with single underscores between them (`1_000`), in the given radix.
    fn digits(&mut self, radix: u32) -> Option<String> {
        let mut out = String::new();
        loop {
            match self.peek() {
                Some(c) if c.is_digit(radix) => {
                    out.push(c);
                    self.pos += 1;
                }
                Some('_')
                    if !out.is_empty() && self.peek_at(1).is_some_and(|d| d.is_digit(radix)) =>
                {
                    self.pos += 1;
                }
                _ => break,
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn number(&mut self) -> Option<Lit> {
        let radix = match (self.peek(), self.peek_at(1).map(|c| c.to_ascii_lowercase())) {
            (Some('0'), Some('x')) => Some(16),
            (Some('0'), Some('o')) => Some(8),
            (Some('0'), Some('b')) => Some(2),
            _ => None,
        };
        let lit = if let Some(radix) = radix {
            self.pos += 2;
            // Python allows one underscore right after the base prefix (`0x_ff`).
            if self.peek() == Some('_') {
                self.pos += 1;
            }
            let digits = self.digits(radix)?;
            Lit::Int(i128::from_str_radix(&digits, radix).ok()?)
        } else {
            let int_part = self.digits(10).unwrap_or_default();
            let mut text = int_part.clone();
            let mut is_float = false;
            if self.peek() == Some('.') {
                self.pos += 1;
                is_float = true;
                text.push('.');
                text.push_str(&self.digits(10).unwrap_or_default());
            }
            if matches!(self.peek(), Some('e' | 'E')) {
                let save = self.pos;
                self.pos += 1;
                let mut exp = String::from("e");
                if let Some(sign @ ('+' | '-')) = self.peek() {
                    exp.push(sign);
                    self.pos += 1;
                }
                match self.digits(10) {
                    Some(d) => {
                        exp.push_str(&d);
                        text.push_str(&exp);
                        is_float = true;
                    }
                    None => self.pos = save,
                }
            }
            if matches!(self.peek(), Some('j' | 'J')) {
                self.pos += 1;
                let im: f64 = text.parse().ok()?;
                Lit::Complex(0.0, im)
            } else if is_float {
                Lit::Float(text.parse().ok()?)
            } else {
                // Python 3 rejects leading zeros in decimal ints, except for zero itself.
                if int_part.len() > 1
                    && int_part.starts_with('0')
                    && int_part.chars().any(|c| c != '0')
                {
                    return None;
                }
                Lit::Int(int_part.parse().ok()?)
            }
        };
        // `1abc`, `0x1g`, `1.2.3` are syntax errors, not a number followed by something.
        if self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return None;
        }
        Some(lit)
    }

    /// The length of a string prefix (`r`, `b`, `rb`, …) directly followed by a quote.
    fn string_prefix_len(&self) -> Option<usize> {
        let mut len = 0;
        while self.peek_at(len).is_some_and(|c| c.is_ascii_alphabetic()) && len < 3 {
            len += 1;
        }
        if len == 0 || !matches!(self.peek_at(len), Some('\'' | '"')) {
            return None;
        }
        let prefix: String = self.chars[self.pos..self.pos + len]
            .iter()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        matches!(
            prefix.as_str(),
            "r" | "u" | "b" | "f" | "br" | "rb" | "fr" | "rf"
        )
        .then_some(len)
    }

    /// One or more adjacent string literals, concatenated as Python does.
    fn strings(&mut self) -> Option<Lit> {
        let mut text = String::new();
        let mut bytes: Option<Vec<u8>> = None;
        let mut count = 0;
        loop {
            self.skip_space();
            let prefix_len = match self.peek() {
                Some('\'' | '"') => 0,
                _ => match self.string_prefix_len() {
                    Some(n) => n,
                    None => break,
                },
            };
            let prefix: String = self.chars[self.pos..self.pos + prefix_len]
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect();
            self.pos += prefix_len;
            // f-strings are expressions, which literal_eval rejects.
            if prefix.contains('f') {
                return None;
            }
            let raw = prefix.contains('r');
            let is_bytes = prefix.contains('b');
            // Mixing bytes and str literals is a syntax error.
            if count > 0 && is_bytes != bytes.is_some() {
                return None;
            }
            let body = self.string_body(raw, is_bytes)?;
            if is_bytes {
                bytes
                    .get_or_insert_with(Vec::new)
                    .extend(body.chars().map(|c| c as u32 as u8));
            } else {
                text.push_str(&body);
            }
            count += 1;
        }
        match bytes {
            Some(b) => Some(Lit::Bytes(b)),
            None if count > 0 => Some(Lit::Str(text)),
            None => None,
        }
    }

    /// The text between the quotes at the cursor, escapes resolved unless raw. For bytes,
    /// `\xNN` escapes above 0x7f are returned as the chars U+0080..U+00FF.
    fn string_body(&mut self, raw: bool, is_bytes: bool) -> Option<String> {
        let quote = self.peek()?;
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            if c == quote
                && (!triple || (self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote)))
            {
                self.pos += if triple { 3 } else { 1 };
                return Some(out);
            }
            if c == '\\' {
                let next = self.peek_at(1)?;
                self.pos += 2;
                if raw {
                    out.push('\\');
                    out.push(next);
                } else {
                    self.escape(next, is_bytes, &mut out)?;
                }
                continue;
            }
            if !is_bytes || c.is_ascii() {
                out.push(c);
            } else {
                return None;
            }
            self.pos += 1;
        }
    }

    fn escape(&mut self, c: char, is_bytes: bool, out: &mut String) -> Option<()> {
        let simple = match c {
            '\\' => Some('\\'),
            '\'' => Some('\''),
            '"' => Some('"'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            return Some(());
        }
        let mut hex = |count: usize| -> Option<u32> {
            let digits: String = (0..count)
                .map(|i| self.peek_at(i))
                .collect::<Option<String>>()?;
            let value = u32::from_str_radix(&digits, 16).ok()?;
            if !digits.chars().all(|d| d.is_ascii_hexdigit()) {
                return None;
            }
            self.pos += count;
            Some(value)
        };
        match c {
            '0'..='7' => {
                let mut value = c.to_digit(8)?;
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(if is_bytes { value & 0xff } else { value })?);
            }
            'x' => out.push(char::from_u32(hex(2)?)?),
            'u' if !is_bytes => out.push(char::from_u32(hex(4)?)?),
            'U' if !is_bytes => out.push(char::from_u32(hex(8)?)?),
            // `\N{NAME}` needs the Unicode name table; treat it as "not a literal".
            'N' if !is_bytes => return None,
            // Unknown escapes keep their backslash.
            other => {
                out.push('\\');
                out.push(other);
            }
        }
        Some(())
    }
}

fn dedup(items: Vec<Lit>) -> Vec<Lit> {
    let mut out: Vec<Lit> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// A repeated dict key keeps its first position and its last value, as in Python.
fn dedup_keys(entries: Vec<(Lit, Lit)>) -> Vec<(Lit, Lit)> {
    let mut out: Vec<(Lit, Lit)> = Vec::new();
    for (k, v) in entries {
        match out.iter_mut().find(|(existing, _)| *existing == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Expectations checked against Python 3.11's ast.literal_eval as ansible-core 2.19 uses it.
    #[test]
    fn python_literals_become_json_values() {
        let cases = [
            ("1", json!(1)),
            ("-5", json!(-5)),
            ("- 1", json!(-1)),
            ("-(1)", json!(-1)),
            ("1_000", json!(1000)),
            ("0x1F", json!(31)),
            ("0o17", json!(15)),
            ("0b101", json!(5)),
            ("00", json!(0)),
            ("1.5", json!(1.5)),
            ("1e3", json!(1000.0)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("True", json!(true)),
            ("False", json!(false)),
            ("None", json!(null)),
            ("'x'", json!("x")),
            ("\"a b\"", json!("a b")),
            ("'a' \"b\"", json!("ab")),
            ("u'x'", json!("x")),
            ("b'x'", json!("x")),
            ("r'a\\nb'", json!("a\\nb")),
            ("'a\\nb\\x41\\u00e9\\101'", json!("a\nbAéA")),
            ("'\\d'", json!("\\d")),
            ("[1, 'two', [3]]", json!([1, "two", [3]])),
            ("(1, 2)", json!([1, 2])),
            ("(1,)", json!([1])),
            ("()", json!([])),
            ("(1)", json!(1)),
            ("1,2", json!([1, 2])),
            ("{'k': 1, 2: [True]}", json!({"k": 1, "2": [true]})),
            ("{1, 2, 1}", json!([1, 2])),
            ("set()", json!([])),
            ("{}", json!({})),
            ("1 # comment", json!(1)),
            ("  7", json!(7)),
            ("...", json!("...")),
            ("1j", json!("1j")),
            ("1+2j", json!("(1+2j)")),
            ("[1, 2,]", json!([1, 2])),
        ];
        for (text, expected) in cases {
            assert_eq!(literal_eval(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn deep_nesting_is_text_not_a_stack_overflow() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(literal_eval(&deep), None);
        let tuples = format!("{}1{}", "(".repeat(150), ",)".repeat(150));
        assert!(literal_eval(&tuples).is_some());
    }

    #[test]
    fn non_literals_stay_text() {
        for text in [
            "",
            "yes",
            "true",
            "0644",
            "1.2.3",
            "hello world",
            "hello # c",
            "1abc",
            "1+2",
            "--1",
            "f'x'",
            "{k:1}",
            "[1, 2",
            "'open",
            "{[1]: 2}",
            "a=b",
            "1e",
            "x'y'",
            "0x",
            "1__0",
        ] {
            assert_eq!(literal_eval(text), None, "{text}");
            assert_eq!(ini_value(text), json!(text), "{text}");
        }
    }
}
