//! Python's `str()`/`repr()` of template values, so rendered output matches Ansible byte for byte.
//!
//! Jinja2 turns every non-string into text with Python's `str()`: `True`, `None`, `1.0`,
//! `['a', 1]`, `{'k': None}`. minijinja's own `Display` says `true`, `none`, `["a", 1]`, so
//! everything that turns a value into text in this module goes through here instead.

use minijinja::value::{Value, ValueKind};

use super::context::{self, Missing};

pub use modules::pyfmt::{float_repr, str_repr};

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
