//! Python's `str()`/`repr()` of template values, so rendered output matches Ansible byte for byte.
//!
//! Jinja2 turns every non-string into text with Python's `str()`: `True`, `None`, `1.0`,
//! `['a', 1]`, `{'k': None}`. minijinja's own `Display` says `true`, `none`, `["a", 1]`, so
//! everything that turns a value into text in this module goes through here instead.

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};

use super::context::{self, Missing};

/// Python `repr()` of a float: shortest round-trip digits, exponent form outside `1e-4..1e16`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest digits that round-trip, like Python's repr.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp >= 0 {
            let int_len = (exp + 1) as usize;
            if n as usize <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - n as usize))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let mant = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// Python `repr()` of a string: single quotes unless the text has `'` and no `"`.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let code = c as u32;
                let _ = if code < 0x100 {
                    write!(out, "\\x{code:02x}")
                } else if code < 0x10000 {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one character, for the characters that occur in practice.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() {
        return false;
    }
    !matches!(c as u32,
        0xa0 | 0xad | 0x1680 | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064
        | 0x3000 | 0xfeff | 0xd800..=0xdfff | 0xe000..=0xf8ff | 0xfff9..=0xfffb)
}

/// Python `str()` of a value: strings as they are, everything else as `repr()`.
pub fn py_str(value: &Value) -> Result<String, minijinja::Error> {
    if let Some(s) = value.as_str() {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    write_repr(&mut out, value)?;
    Ok(out)
}

/// Python `repr()` of a value.
pub fn py_repr(value: &Value) -> Result<String, minijinja::Error> {
    let mut out = String::new();
    write_repr(&mut out, value)?;
    Ok(out)
}

fn write_repr(out: &mut String, value: &Value) -> Result<(), minijinja::Error> {
    match value.kind() {
        ValueKind::Undefined => {
            // Jinja2's str(Undefined) is empty; reaching here means a lenient path already allowed it.
        }
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => {
            if value.is_integer() {
                out.push_str(&value.to_string());
            } else {
                let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
                out.push_str(&float_repr(f));
            }
        }
        ValueKind::String => out.push_str(&str_repr(value.as_str().unwrap_or_default())),
        ValueKind::Bytes => {
            let bytes = value.as_bytes().unwrap_or_default();
            out.push('b');
            out.push_str(&str_repr(&String::from_utf8_lossy(bytes)));
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                context::check_valid(&item)?;
                write_repr(out, &item)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let item = value.get_item(&key)?;
                context::check_valid(&item)?;
                write_repr(out, &key)?;
                out.push_str(": ");
                write_repr(out, &item)?;
            }
            out.push('}');
        }
        ValueKind::Plain => {
            if let Some(missing) = value.downcast_object_ref::<Missing>() {
                return Err(missing.raise());
            }
            out.push_str(&value.to_string());
        }
        _ => {
            context::check_valid(value)?;
            out.push_str(&value.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(1.5), "1.5");
        assert_eq!(float_repr(0.1), "0.1");
        assert_eq!(float_repr(1e20), "1e+20");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1234567890123456.0), "1234567890123456.0");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(0.00001), "1e-05");
        assert_eq!(float_repr(1.5e-7), "1.5e-07");
        assert_eq!(float_repr(-2.25), "-2.25");
        assert_eq!(float_repr(100.0), "100.0");
        assert_eq!(float_repr(12.375), "12.375");
    }

    #[test]
    fn strings_quote_like_python() {
        assert_eq!(str_repr("a"), "'a'");
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(str_repr("a\nb\\"), "'a\\nb\\\\'");
        assert_eq!(str_repr("\u{1}é"), "'\\x01é'");
    }

    #[test]
    fn containers_print_like_python() {
        let v = Value::from_serialize(serde_json::json!({"a": [1, "x", null, true, 1.5], "b": {}}));
        assert_eq!(
            py_str(&v).expect("repr"),
            "{'a': [1, 'x', None, True, 1.5], 'b': {}}"
        );
    }
}
