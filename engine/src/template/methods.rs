//! Python methods playbooks call on values: `x.split(',')`, `s.startswith('a')`, `d.items()`, `d.get(k)`.
//!
//! minijinja has no Python methods; this is its unknown-method callback.

use minijinja::value::{from_args, Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::context::{is_undefined, list_of, to_json};
use super::filters::{check_defined, py_capitalize, py_eq, py_split, py_title, text};

fn unknown(value: &Value, method: &str) -> Error {
    Error::new(
        ErrorKind::UnknownMethod,
        format!(
            "object of type '{}' has no attribute '{method}'",
            super::context::type_name(value)
        ),
    )
}

pub(crate) fn call_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    check_defined(value)?;
    match value.kind() {
        ValueKind::String => string_method(value, method, args),
        ValueKind::Map => map_method(state, value, method, args),
        ValueKind::Seq | ValueKind::Iterable => list_method(value, method, args),
        _ => Err(unknown(value, method)),
    }
}

fn prefixes(arg: &Value) -> Result<Vec<String>, Error> {
    if arg.kind() == ValueKind::Seq {
        arg.try_iter()?.map(|v| text(&v)).collect()
    } else {
        Ok(vec![text(arg)?])
    }
}

fn strip_set(args: &[Value]) -> Result<Option<Vec<char>>, Error> {
    match args.first() {
        Some(v) if !v.is_none() => Ok(Some(text(v)?.chars().collect())),
        _ => Ok(None),
    }
}

fn string_method(value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    let s = text(value)?;
    let arg_text = |i: usize| -> Result<String, Error> {
        args.get(i)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::MissingArgument,
                    format!("{method}() missing an argument"),
                )
            })
            .and_then(text)
    };
    Ok(match method {
        "lower" => s.to_lowercase().into(),
        "upper" => s.to_uppercase().into(),
        "casefold" => s.to_lowercase().into(),
        "swapcase" => s
            .chars()
            .map(|c| {
                if c.is_uppercase() {
                    c.to_lowercase().collect::<String>()
                } else {
                    c.to_uppercase().collect()
                }
            })
            .collect::<String>()
            .into(),
        "capitalize" => py_capitalize(&s).into(),
        "title" => py_title(&s).into(),
        "strip" => match strip_set(args)? {
            Some(set) => s.trim_matches(|c| set.contains(&c)).into(),
            None => s.trim().into(),
        },
        "lstrip" => match strip_set(args)? {
            Some(set) => s.trim_start_matches(|c| set.contains(&c)).into(),
            None => s.trim_start().into(),
        },
        "rstrip" => match strip_set(args)? {
            Some(set) => s.trim_end_matches(|c| set.contains(&c)).into(),
            None => s.trim_end().into(),
        },
        "split" | "rsplit" => {
            let (args, kwargs): (&[Value], Option<Kwargs>) = from_args(args)?;
            let sep = match kwargs
                .as_ref()
                .and_then(|k| k.get::<Option<Value>>("sep").ok().flatten())
                .or_else(|| args.first().cloned())
            {
                Some(v) if !v.is_none() => Some(text(&v)?),
                _ => None,
            };
            let maxsplit = match kwargs
                .as_ref()
                .and_then(|k| k.get::<Option<i64>>("maxsplit").ok().flatten())
            {
                Some(m) => m,
                None => args.get(1).and_then(Value::as_i64).unwrap_or(-1),
            };
            if method == "rsplit" && maxsplit >= 0 {
                // rsplit: split from the right, keeping the left remainder whole.
                let reversed: String = s.chars().rev().collect();
                let rsep: Option<String> = sep.as_ref().map(|x| x.chars().rev().collect());
                let mut parts = py_split(&reversed, rsep.as_deref(), maxsplit)?;
                parts.reverse();
                list_of(
                    parts
                        .into_iter()
                        .map(|p| p.chars().rev().collect::<String>())
                        .collect::<Vec<_>>(),
                )
            } else {
                list_of(py_split(&s, sep.as_deref(), maxsplit)?)
            }
        }
        "splitlines" => Value::from(s.lines().map(str::to_string).collect::<Vec<_>>()),
        "startswith" => {
            let p = prefixes(args.first().ok_or_else(|| {
                Error::new(ErrorKind::MissingArgument, "startswith() takes a prefix")
            })?)?;
            p.iter().any(|p| s.starts_with(p.as_str())).into()
        }
        "endswith" => {
            let p = prefixes(args.first().ok_or_else(|| {
                Error::new(ErrorKind::MissingArgument, "endswith() takes a suffix")
            })?)?;
            p.iter().any(|p| s.ends_with(p.as_str())).into()
        }
        "replace" => {
            let (old, new) = (arg_text(0)?, arg_text(1)?);
            match args.get(2).and_then(Value::as_i64) {
                Some(n) if n >= 0 => s.replacen(&old, &new, n as usize).into(),
                _ => s.replace(&old, &new).into(),
            }
        }
        "find" | "index" => {
            let needle = arg_text(0)?;
            match s.find(&needle) {
                Some(pos) => Value::from(s[..pos].chars().count()),
                None if method == "find" => Value::from(-1),
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "substring not found",
                    ))
                }
            }
        }
        "rfind" | "rindex" => {
            let needle = arg_text(0)?;
            match s.rfind(&needle) {
                Some(pos) => Value::from(s[..pos].chars().count()),
                None if method == "rfind" => Value::from(-1),
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "substring not found",
                    ))
                }
            }
        }
        "count" => Value::from(s.matches(arg_text(0)?.as_str()).count()),
        "join" => {
            let items = args.first().ok_or_else(|| {
                Error::new(ErrorKind::MissingArgument, "join() takes an iterable")
            })?;
            let parts: Vec<String> = items
                .try_iter()?
                .map(|v| text(&v))
                .collect::<Result<_, _>>()?;
            parts.join(&s).into()
        }
        "isdigit" | "isnumeric" | "isdecimal" => {
            (!s.is_empty() && s.chars().all(|c| c.is_numeric())).into()
        }
        "isalpha" => (!s.is_empty() && s.chars().all(char::is_alphabetic)).into(),
        "isalnum" => (!s.is_empty() && s.chars().all(char::is_alphanumeric)).into(),
        "isspace" => (!s.is_empty() && s.chars().all(char::is_whitespace)).into(),
        "islower" => {
            (s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase)).into()
        }
        "isupper" => {
            (s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)).into()
        }
        "zfill" => {
            let width = args.first().and_then(Value::as_i64).unwrap_or(0).max(0) as usize;
            let len = s.chars().count();
            if len >= width {
                s.into()
            } else {
                let (sign, digits) = match s.chars().next() {
                    Some(c @ ('-' | '+')) => (c.to_string(), &s[1..]),
                    _ => (String::new(), s.as_str()),
                };
                format!("{sign}{}{digits}", "0".repeat(width - len)).into()
            }
        }
        "ljust" | "rjust" | "center" => {
            let width = args.first().and_then(Value::as_i64).unwrap_or(0).max(0) as usize;
            let fill = match args.get(1) {
                Some(f) => text(f)?.chars().next().unwrap_or(' '),
                None => ' ',
            };
            let len = s.chars().count();
            if len >= width {
                s.into()
            } else {
                let pad = width - len;
                let (l, r) = match method {
                    "ljust" => (0, pad),
                    "rjust" => (pad, 0),
                    _ => {
                        let left = pad / 2 + (pad & width & 1);
                        (left, pad - left)
                    }
                };
                format!(
                    "{}{s}{}",
                    fill.to_string().repeat(l),
                    fill.to_string().repeat(r)
                )
                .into()
            }
        }
        "partition" | "rpartition" => {
            let sep = arg_text(0)?;
            let found = if method == "partition" {
                s.find(&sep)
            } else {
                s.rfind(&sep)
            };
            match found {
                Some(i) => list_of(vec![
                    s[..i].to_string(),
                    sep.clone(),
                    s[i + sep.len()..].to_string(),
                ]),
                None if method == "partition" => {
                    list_of(vec![s.clone(), String::new(), String::new()])
                }
                None => list_of(vec![String::new(), String::new(), s.clone()]),
            }
        }
        "format" => {
            // str.format with positional `{}`/`{0}` and named `{name}` fields.
            let (pos, kwargs): (&[Value], Option<Kwargs>) = from_args(args)?;
            let mut out = String::new();
            let mut auto = 0;
            let mut rest = s.as_str();
            while let Some(open) = rest.find(['{', '}']) {
                out.push_str(&rest[..open]);
                let tail = &rest[open..];
                if tail.starts_with("{{") || tail.starts_with("}}") {
                    out.push_str(&tail[..1]);
                    rest = &tail[2..];
                    continue;
                }
                let close = tail.find('}').ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "Single '{' encountered in format string",
                    )
                })?;
                let field = &tail[1..close];
                let v = if field.is_empty() {
                    auto += 1;
                    pos.get(auto - 1).cloned()
                } else if let Ok(i) = field.parse::<usize>() {
                    pos.get(i).cloned()
                } else {
                    kwargs
                        .as_ref()
                        .and_then(|k| k.get::<Option<Value>>(field).ok().flatten())
                };
                let v = v.ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("format field {field:?} has no value"),
                    )
                })?;
                out.push_str(&text(&v)?);
                rest = &tail[close + 1..];
            }
            out.push_str(rest);
            out.into()
        }
        _ => return Err(unknown(value, method)),
    })
}

fn map_method(_state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    let keys: Vec<Value> = value.try_iter()?.collect();
    Ok(match method {
        "keys" => list_of(keys),
        "values" => list_of(
            keys.iter()
                .map(|k| value.get_item(k))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        "items" => list_of(
            keys.iter()
                .map(|k| Ok(list_of(vec![k.clone(), value.get_item(k)?])))
                .collect::<Result<Vec<_>, Error>>()?,
        ),
        "get" => {
            let key = args
                .first()
                .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "get() takes a key"))?;
            let fallback = args.get(1).cloned().unwrap_or(Value::from(()));
            match super::context::item_opt(value, key) {
                Some(v) if !is_undefined(&v) => v,
                Some(v) => {
                    if let Some(m) = super::context::as_missing(&v) {
                        m.consume();
                    }
                    fallback
                }
                None => fallback,
            }
        }
        "copy" => value.clone(),
        "__contains__" | "has_key" => {
            let key = args
                .first()
                .ok_or_else(|| Error::new(ErrorKind::MissingArgument, "a key is required"))?;
            match super::context::item_opt(value, key) {
                Some(v) => {
                    let found = !is_undefined(&v);
                    if let Some(m) = super::context::as_missing(&v) {
                        m.consume();
                    }
                    found.into()
                }
                None => false.into(),
            }
        }
        _ => return Err(unknown(value, method)),
    })
}

fn list_method(value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    let items: Vec<Value> = value.try_iter()?.collect();
    let needle = || -> Result<serde_json::Value, Error> {
        let a = args.first().ok_or_else(|| {
            Error::new(
                ErrorKind::MissingArgument,
                format!("{method}() takes an argument"),
            )
        })?;
        to_json(a)
    };
    Ok(match method {
        "index" => {
            let n = needle()?;
            for (i, item) in items.iter().enumerate() {
                if py_eq(&to_json(item)?, &n) {
                    return Ok(Value::from(i));
                }
            }
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "value is not in list",
            ));
        }
        "count" => {
            let n = needle()?;
            let mut count = 0;
            for item in &items {
                if py_eq(&to_json(item)?, &n) {
                    count += 1;
                }
            }
            Value::from(count)
        }
        "copy" => list_of(items),
        _ => return Err(unknown(value, method)),
    })
}
