//! Jinja2's and Ansible's filters, with Python's results (types, text, ordering).
//!
//! minijinja's builtins are kept where they already agree with Jinja2 (`length`, `first`,
//! `batch`, `dictsort`, ...); anything that turns values into text, compares them, or has
//! Ansible-specific arguments is reimplemented here.

use std::cmp::Ordering;
use std::path::Path;

use base64::Engine as _;
use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use serde_json::Value as Json;

use super::context::{self, as_missing, data_value, dict_value, is_undefined, list_of, to_json};
use super::pyfmt::{float_repr, py_repr, py_str};
use super::pyrandom::{PyRandom, Seed};
use super::pyre::{self, Flags, PyRegex};
use super::{pyjson, yaml_dump, Map};

pub(crate) fn register(env: &mut Environment<'static>) {
    // Undefined handling.
    env.add_filter("default", default);
    env.add_filter("d", default);
    env.add_filter("mandatory", mandatory);
    // Types.
    env.add_filter("bool", to_bool_filter);
    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("string", string);
    env.add_filter("list", list);
    env.add_filter("type_debug", type_debug);
    // Text.
    env.add_filter("lower", |v: Value| -> Result<Value, Error> {
        Ok(text(&v)?.to_lowercase().into())
    });
    env.add_filter("upper", |v: Value| -> Result<Value, Error> {
        Ok(text(&v)?.to_uppercase().into())
    });
    env.add_filter("capitalize", capitalize);
    env.add_filter("title", title);
    env.add_filter("trim", trim);
    env.add_filter("replace", replace);
    env.add_filter("split", split);
    env.add_filter("join", join);
    env.add_filter("indent", indent);
    env.add_filter("truncate", truncate);
    env.add_filter("wordcount", |v: Value| -> Result<Value, Error> {
        Ok(Value::from(text(&v)?.split_whitespace().count()))
    });
    env.add_filter("format", format);
    env.add_filter("center", center);
    env.add_filter("quote", quote);
    env.add_filter("comment", comment);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("to_uuid", to_uuid);
    // Paths.
    env.add_filter("basename", |v: Value| -> Result<Value, Error> {
        Ok(basename(&text(&v)?).into())
    });
    env.add_filter("dirname", |v: Value| -> Result<Value, Error> {
        Ok(dirname(&text(&v)?).into())
    });
    env.add_filter("expanduser", |v: Value| -> Result<Value, Error> {
        Ok(expanduser(&text(&v)?).into())
    });
    env.add_filter("realpath", realpath);
    env.add_filter("normpath", |v: Value| -> Result<Value, Error> {
        Ok(normpath(&text(&v)?).into())
    });
    env.add_filter("splitext", splitext);
    env.add_filter("path_join", path_join);
    // Numbers.
    env.add_filter("abs", abs);
    env.add_filter("round", round);
    env.add_filter("log", log);
    env.add_filter("pow", pow);
    env.add_filter("root", root);
    // Hashing.
    env.add_filter("hash", hash);
    env.add_filter("checksum", |v: Value| -> Result<Value, Error> {
        digest("sha1", &text(&v)?)
    });
    env.add_filter("sha1", |v: Value| -> Result<Value, Error> {
        digest("sha1", &text(&v)?)
    });
    env.add_filter("md5", |v: Value| -> Result<Value, Error> {
        digest("md5", &text(&v)?)
    });
    env.add_filter("password_hash", password_hash);
    // Conditionals.
    env.add_filter("ternary", ternary);
    // Lists.
    env.add_filter("min", |s: &State, v: Value, a: Rest<Value>, k: Kwargs| {
        min_max(s, v, a, k, Ordering::Less)
    });
    env.add_filter("max", |s: &State, v: Value, a: Rest<Value>, k: Kwargs| {
        min_max(s, v, a, k, Ordering::Greater)
    });
    env.add_filter("sum", sum);
    env.add_filter("unique", unique);
    env.add_filter("union", |a: Value, b: Value| set_op(a, b, SetOp::Union));
    env.add_filter("intersect", |a: Value, b: Value| {
        set_op(a, b, SetOp::Intersect)
    });
    env.add_filter("difference", |a: Value, b: Value| {
        set_op(a, b, SetOp::Difference)
    });
    env.add_filter("symmetric_difference", |a: Value, b: Value| {
        set_op(a, b, SetOp::Symmetric)
    });
    env.add_filter("sort", sort);
    env.add_filter("flatten", flatten);
    env.add_filter("zip", zip);
    env.add_filter("zip_longest", zip_longest);
    env.add_filter("product", product);
    env.add_filter("shuffle", shuffle);
    env.add_filter("random", random);
    env.add_filter("map", map);
    env.add_filter("select", |s: &State, v: Value, a: Rest<Value>| {
        select(s, v, a, None, true)
    });
    env.add_filter("reject", |s: &State, v: Value, a: Rest<Value>| {
        select(s, v, a, None, false)
    });
    env.add_filter(
        "selectattr",
        |s: &State, v: Value, attr: String, a: Rest<Value>| select(s, v, a, Some(attr), true),
    );
    env.add_filter(
        "rejectattr",
        |s: &State, v: Value, attr: String, a: Rest<Value>| select(s, v, a, Some(attr), false),
    );
    env.add_filter("subelements", subelements);
    env.add_filter("extract", extract);
    // Dicts.
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    // Serialization.
    env.add_filter("to_json", to_json_filter);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json);
    env.add_filter("to_yaml", |v: Value, a: Rest<Value>, k: Kwargs| {
        to_yaml(v, a, k, false)
    });
    env.add_filter("to_nice_yaml", |v: Value, a: Rest<Value>, k: Kwargs| {
        to_yaml(v, a, k, true)
    });
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("from_yaml_all", from_yaml_all);
    env.add_filter("urldecode", urldecode);
    env.add_filter("urlencode", urlencode);
}

// ---------------------------------------------------------------------------------------------
// Arguments

/// Positional-or-keyword arguments by name, as Python filters take them.
struct Params {
    values: Vec<Option<Value>>,
}

impl Params {
    fn new(args: &[Value], kwargs: &Kwargs, names: &[&str]) -> Result<Params, Error> {
        if args.len() > names.len() {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!(
                    "expected at most {} arguments, got {}",
                    names.len(),
                    args.len()
                ),
            ));
        }
        let mut values: Vec<Option<Value>> = args.iter().cloned().map(Some).collect();
        values.resize(names.len(), None);
        for (i, name) in names.iter().enumerate() {
            if let Some(v) = kwargs.get::<Option<Value>>(name)? {
                values[i] = Some(v);
            }
        }
        kwargs.assert_all_used()?;
        Ok(Params { values })
    }

    fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i).and_then(Option::as_ref)
    }

    fn string(&self, i: usize, default: &str) -> Result<String, Error> {
        match self.get(i) {
            Some(v) if !v.is_none() => text(v),
            _ => Ok(default.to_string()),
        }
    }

    fn flag(&self, i: usize, default: bool) -> Result<bool, Error> {
        match self.get(i) {
            Some(v) => {
                check_defined(v)?;
                Ok(v.is_true())
            }
            None => Ok(default),
        }
    }

    fn int(&self, i: usize) -> Result<Option<i64>, Error> {
        match self.get(i) {
            Some(v) if !v.is_none() => Ok(Some(as_int(v)?)),
            _ => Ok(None),
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Fails on an undefined value with its name.
pub(crate) fn check_defined(v: &Value) -> Result<(), Error> {
    if let Some(m) = as_missing(v) {
        return Err(m.raise());
    }
    if v.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    context::check_valid(v)
}

/// Python `str(v)`.
pub(crate) fn text(v: &Value) -> Result<String, Error> {
    check_defined(v)?;
    py_str(v)
}

fn as_int(v: &Value) -> Result<i64, Error> {
    check_defined(v)?;
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    if v.kind() == ValueKind::Bool {
        return Ok(i64::from(v.is_true()));
    }
    if let Ok(f) = f64::try_from(v.clone()) {
        return Ok(f.trunc() as i64);
    }
    if let Some(s) = v.as_str() {
        if let Ok(i) = s.trim().parse::<i64>() {
            return Ok(i);
        }
    }
    Err(invalid(format!("expected an integer, got {}", py_repr(v)?)))
}

fn as_f64(v: &Value) -> Option<f64> {
    if v.kind() == ValueKind::Bool {
        return Some(if v.is_true() { 1.0 } else { 0.0 });
    }
    if v.kind() == ValueKind::Number {
        return f64::try_from(v.clone()).ok();
    }
    None
}

fn values_of(v: &Value) -> Result<Vec<Value>, Error> {
    check_defined(v)?;
    if v.kind() == ValueKind::String {
        return Ok(text(v)?
            .chars()
            .map(|c| Value::from(c.to_string()))
            .collect());
    }
    let iter = v.try_iter().map_err(|_| {
        invalid(format!(
            "object of type '{}' is not iterable",
            context::type_name(v)
        ))
    })?;
    let items: Vec<Value> = iter.collect();
    for item in &items {
        context::check_valid(item)?;
    }
    Ok(items)
}

// ---------------------------------------------------------------------------------------------
// Undefined handling

fn default(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["default_value", "boolean"])?;
    let fallback = p.get(0).cloned().unwrap_or_else(|| Value::from(""));
    if let Some(m) = as_missing(&value) {
        m.consume();
        return Ok(fallback);
    }
    if value.is_undefined() {
        return Ok(fallback);
    }
    if p.flag(1, false)? && !value.is_true() {
        return Ok(fallback);
    }
    Ok(value)
}

fn mandatory(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["msg"])?;
    if is_undefined(&value) {
        let name = as_missing(&value).map(|m| {
            m.consume();
            m.name().to_string()
        });
        let message = match (p.get(0), name) {
            (Some(msg), _) if !msg.is_none() => text(msg)?,
            (_, Some(name)) => format!("Mandatory variable '{name}' not defined."),
            _ => "Mandatory variable not defined.".to_string(),
        };
        return Err(invalid(message));
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Types

/// Ansible's `bool`: yes/on/true/1 and no/off/false/0, any case; anything else is false.
pub(crate) fn to_bool(v: &Value) -> Result<bool, Error> {
    check_defined(v)?;
    if v.kind() == ValueKind::Bool {
        return Ok(v.is_true());
    }
    if v.is_none() {
        return Ok(false);
    }
    let s = if v.is_integer() {
        v.to_string()
    } else if let Some(s) = v.as_str() {
        s.to_lowercase()
    } else if let Some(f) = as_f64(v) {
        return Ok(f == 1.0);
    } else {
        return Ok(false);
    };
    Ok(matches!(s.as_str(), "yes" | "on" | "true" | "1"))
}

fn to_bool_filter(v: Value) -> Result<Value, Error> {
    Ok(Value::from(to_bool(&v)?))
}

/// Jinja2's `int`: numbers truncate, strings parse (in `base`, or as a float), else `default`.
fn int(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["default", "base"])?;
    check_defined(&value)?;
    let fallback = p.get(0).cloned().unwrap_or_else(|| Value::from(0));
    let base = p.int(1)?.unwrap_or(10);
    if value.is_integer() {
        return Ok(value);
    }
    if value.kind() == ValueKind::Bool {
        return Ok(Value::from(i64::from(value.is_true())));
    }
    if let Some(f) = as_f64(&value) {
        return Ok(if f.is_finite() {
            Value::from(f.trunc() as i64)
        } else {
            fallback
        });
    }
    if let Some(s) = value.as_str() {
        let t = s.trim().replace('_', "");
        if base != 10 {
            let (neg, digits) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t.strip_prefix('+').unwrap_or(&t)),
            };
            let lowered = digits.to_lowercase();
            let digits = match base {
                16 => lowered.strip_prefix("0x").unwrap_or(&lowered),
                8 => lowered.strip_prefix("0o").unwrap_or(&lowered),
                2 => lowered.strip_prefix("0b").unwrap_or(&lowered),
                _ => &lowered,
            };
            return Ok(match i64::from_str_radix(digits, base as u32) {
                Ok(i) => Value::from(if neg { -i } else { i }),
                Err(_) => fallback,
            });
        }
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(f) = t.parse::<f64>() {
            if f.is_finite() {
                return Ok(Value::from(f.trunc() as i64));
            }
        }
    }
    Ok(fallback)
}

fn float(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["default"])?;
    check_defined(&value)?;
    let fallback = p.get(0).cloned().unwrap_or_else(|| Value::from(0.0));
    if let Some(f) = as_f64(&value) {
        return Ok(Value::from(f));
    }
    if let Some(s) = value.as_str() {
        let t = s.trim().to_lowercase();
        let parsed = match t.as_str() {
            "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            "nan" => Some(f64::NAN),
            _ => t.replace('_', "").parse::<f64>().ok(),
        };
        if let Some(f) = parsed {
            return Ok(Value::from(f));
        }
    }
    Ok(fallback)
}

fn string(value: Value) -> Result<Value, Error> {
    Ok(Value::from(text(&value)?))
}

fn list(value: Value) -> Result<Value, Error> {
    if value.kind() == ValueKind::Map {
        return Ok(Value::from(values_of(&value)?));
    }
    Ok(Value::from(values_of(&value)?))
}

/// The generator a `seed` argument asks for: Python's `Random(seed)`, or one seeded from the
/// system when there is none.
fn generator(seed: Option<&Value>) -> Result<PyRandom, Error> {
    let Some(seed) = seed.filter(|s| !s.is_none()) else {
        return Ok(PyRandom::from_entropy());
    };
    check_defined(seed)?;
    if seed.kind() == ValueKind::Bool {
        return Ok(PyRandom::new(Seed::Int(i128::from(seed.is_true()))));
    }
    if let Some(n) = seed.as_i64().filter(|_| seed.is_integer()) {
        return Ok(PyRandom::new(Seed::Int(i128::from(n))));
    }
    if let Ok(f) = f64::try_from(seed.clone()) {
        // Python seeds a float by its hash, which is the integer itself for whole numbers.
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            return Ok(PyRandom::new(Seed::Int(f as i128)));
        }
        return Err(invalid(
            "random: a seed must be an integer or a string here",
        ));
    }
    Ok(PyRandom::new(Seed::Str(&text(seed)?)))
}

/// Ansible's `random`: an integer in `range(start, end, step)`, or an item of a list (a
/// character of a string). With `seed`, Python's sequence: the same pick as Ansible.
fn random(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["start", "step", "seed"])?;
    check_defined(&value)?;
    let mut rng = generator(p.get(2))?;
    if value.is_integer() || value.kind() == ValueKind::Bool {
        let end = if value.kind() == ValueKind::Bool {
            i64::from(value.is_true())
        } else {
            as_int(&value)?
        };
        let start = p.int(0)?.unwrap_or(0);
        let step = p.int(1)?.filter(|s| *s != 0).unwrap_or(1);
        return rng
            .randrange(start, end, step)
            .map(Value::from)
            .map_err(invalid);
    }
    if matches!(
        value.kind(),
        ValueKind::Seq | ValueKind::String | ValueKind::Iterable
    ) {
        if p.get(0).is_some_and(Value::is_true) || p.get(1).is_some_and(Value::is_true) {
            return Err(invalid(
                "start and step can only be used with integer values",
            ));
        }
        let items = values_of(&value)?;
        if items.is_empty() {
            return Err(invalid("Cannot choose from an empty sequence"));
        }
        let pick = rng.below(items.len() as u64) as usize;
        return Ok(items[pick].clone());
    }
    Err(invalid("random can only be used on sequences and integers"))
}

/// Ansible's `shuffle`: the items in a random order; with a (truthy) `seed`, Python's
/// `Random(seed).shuffle`, the order Ansible gives.
fn shuffle(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["seed"])?;
    let mut items = values_of(&value)?;
    let seed = p.get(0).filter(|s| s.is_true());
    generator(seed)?.shuffle(&mut items);
    Ok(Value::from(items))
}

fn type_debug(value: Value) -> Result<Value, Error> {
    check_defined(&value)?;
    Ok(Value::from(context::type_name(&value)))
}

// ---------------------------------------------------------------------------------------------
// Text

/// Python's `str.capitalize()`.
pub(crate) fn py_capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => format!("{}{}", first.to_uppercase(), chars.as_str().to_lowercase()),
        None => String::new(),
    }
}

fn capitalize(value: Value) -> Result<Value, Error> {
    Ok(py_capitalize(&text(&value)?).into())
}

/// Python's `str.title()`: upper after any non-letter, lower elsewhere.
pub(crate) fn py_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = c.is_alphabetic();
    }
    out
}

fn title(value: Value) -> Result<Value, Error> {
    Ok(py_title(&text(&value)?).into())
}

fn trim(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["chars"])?;
    let s = text(&value)?;
    Ok(match p.get(0) {
        Some(chars) if !chars.is_none() => {
            let set: Vec<char> = text(chars)?.chars().collect();
            s.trim_matches(|c| set.contains(&c)).to_string()
        }
        _ => s.trim().to_string(),
    }
    .into())
}

fn replace(
    value: Value,
    old: Value,
    new: Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["count"])?;
    let s = text(&value)?;
    let (old, new) = (text(&old)?, text(&new)?);
    Ok(match p.int(0)? {
        Some(n) if n >= 0 => s.replacen(&old, &new, n as usize),
        _ => s.replace(&old, &new),
    }
    .into())
}

/// Python's `str.split(sep=None, maxsplit=-1)`.
pub(crate) fn py_split(s: &str, sep: Option<&str>, maxsplit: i64) -> Result<Vec<String>, Error> {
    let limit = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    match sep {
        Some("") => Err(invalid("empty separator")),
        Some(sep) => {
            if limit == usize::MAX {
                Ok(s.split(sep).map(str::to_string).collect())
            } else {
                Ok(s.splitn(limit + 1, sep).map(str::to_string).collect())
            }
        }
        None => {
            let mut out = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if out.len() == limit {
                    out.push(rest.to_string());
                    return Ok(out);
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            Ok(out)
        }
    }
}

fn split(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["sep", "maxsplit"])?;
    let s = text(&value)?;
    let sep = match p.get(0) {
        Some(v) if !v.is_none() => Some(text(v)?),
        _ => None,
    };
    let parts = py_split(&s, sep.as_deref(), p.int(1)?.unwrap_or(-1))?;
    Ok(list_of(parts))
}

fn join(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["d", "attribute"])?;
    let sep = p.string(0, "")?;
    let items = values_of(&value)?;
    let mut parts = Vec::with_capacity(items.len());
    for item in &items {
        let item = match p.get(1) {
            Some(attr) => attr_path(state, item, attr)?,
            None => item.clone(),
        };
        parts.push(text(&item)?);
    }
    Ok(parts.join(&sep).into())
}

/// Python's `str.splitlines()` for the line breaks that occur in practice.
fn splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < bytes.len() {
        let (pos, c) = bytes[i];
        if matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        ) {
            out.push(&s[start..pos]);
            let mut next = pos + c.len_utf8();
            if c == '\r' && bytes.get(i + 1).map(|b| b.1) == Some('\n') {
                next += 1;
                i += 1;
            }
            start = next;
        }
        i += 1;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Jinja2 3.x `indent(width=4, first=False, blank=False)`.
fn indent(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["width", "first", "blank"])?;
    let s = text(&value)?;
    let indention = match p.get(0) {
        Some(w) if w.kind() == ValueKind::String => text(w)?,
        Some(w) => " ".repeat(as_int(w)?.max(0) as usize),
        None => "    ".to_string(),
    };
    let first = p.flag(1, false)?;
    let blank = p.flag(2, false)?;
    let s = format!("{s}\n");
    let lines = splitlines(&s);
    let mut rv = if blank {
        lines.join(&format!("\n{indention}"))
    } else {
        let mut iter = lines.into_iter();
        let mut rv = iter.next().unwrap_or_default().to_string();
        let rest: Vec<String> = iter
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{indention}{l}")
                }
            })
            .collect();
        if !rest.is_empty() {
            rv.push('\n');
            rv.push_str(&rest.join("\n"));
        }
        rv
    };
    if first {
        rv = format!("{indention}{rv}");
    }
    Ok(rv.into())
}

/// Jinja2's `truncate(length=255, killwords=False, end='...', leeway=5)`.
fn truncate(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["length", "killwords", "end", "leeway"])?;
    let s = text(&value)?;
    let length = p.int(0)?.unwrap_or(255).max(0) as usize;
    let killwords = p.flag(1, false)?;
    let end = p.string(2, "...")?;
    let leeway = p.int(3)?.unwrap_or(5).max(0) as usize;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= length + leeway {
        return Ok(s.into());
    }
    let keep: String = chars[..length.saturating_sub(end.chars().count())]
        .iter()
        .collect();
    if killwords {
        return Ok(format!("{keep}{end}").into());
    }
    let cut = match keep.rfind(' ') {
        Some(pos) => &keep[..pos],
        None => keep.as_str(),
    };
    Ok(format!("{cut}{end}").into())
}

fn center(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["width"])?;
    let s = text(&value)?;
    let width = p.int(0)?.unwrap_or(80).max(0) as usize;
    let len = s.chars().count();
    if len >= width {
        return Ok(s.into());
    }
    // Python's str.center puts the extra space on the left when the padding and width are odd.
    let pad = width - len;
    let left = pad / 2 + (pad & width & 1);
    Ok(format!("{}{s}{}", " ".repeat(left), " ".repeat(pad - left)).into())
}

/// Python's `%` formatting, the conversions playbooks use.
pub(crate) fn percent_format(
    fmt: &str,
    args: &[Value],
    mapping: Option<&Value>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(fmt.len() + 16);
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut next_arg = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let mut key = None;
        if chars.get(i) == Some(&'(') {
            let close = chars[i..]
                .iter()
                .position(|c| *c == ')')
                .ok_or_else(|| invalid("incomplete format key"))?;
            key = Some(chars[i + 1..i + close].iter().collect::<String>());
            i += close + 1;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.get(i) {
            if "-+ 0#".contains(f) {
                flags.push(f);
                i += 1;
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.get(i) {
            if d.is_ascii_digit() {
                width.push(d);
                i += 1;
            } else {
                break;
            }
        }
        let mut precision: Option<usize> = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = String::new();
            while let Some(&d) = chars.get(i) {
                if d.is_ascii_digit() {
                    p.push(d);
                    i += 1;
                } else {
                    break;
                }
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let conv = *chars.get(i).ok_or_else(|| invalid("incomplete format"))?;
        i += 1;
        let arg = match (&key, mapping) {
            (Some(k), Some(map)) => map.get_item(&Value::from(k.as_str()))?,
            (Some(_), None) => return Err(invalid("format requires a mapping")),
            (None, _) => {
                let a = args
                    .get(next_arg)
                    .cloned()
                    .ok_or_else(|| invalid("not enough arguments for format string"))?;
                next_arg += 1;
                a
            }
        };
        check_defined(&arg)?;
        let number = || -> Result<f64, Error> {
            as_f64(&arg).ok_or_else(|| {
                invalid(format!(
                    "%{conv} format: a real number is required, not {}",
                    context::type_name(&arg)
                ))
            })
        };
        let sign = |neg: bool| -> &str {
            if neg {
                "-"
            } else if flags.contains('+') {
                "+"
            } else if flags.contains(' ') {
                " "
            } else {
                ""
            }
        };
        let body = match conv {
            's' => {
                let s = text(&arg)?;
                match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            'r' | 'a' => py_repr(&arg)?,
            'd' | 'i' | 'u' => {
                let n = number()?.trunc();
                format!("{}{}", sign(n < 0.0), (n.abs() as i128))
            }
            'f' | 'F' => {
                let n = number()?;
                format!("{}{:.*}", sign(n < 0.0), precision.unwrap_or(6), n.abs())
            }
            'e' | 'E' => {
                let n = number()?;
                let s = format!("{:.*e}", precision.unwrap_or(6), n.abs());
                let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                let e: i32 = e.parse().unwrap_or(0);
                let s = format!(
                    "{}{m}e{}{:02}",
                    sign(n < 0.0),
                    if e < 0 { '-' } else { '+' },
                    e.abs()
                );
                if conv == 'E' {
                    s.to_uppercase()
                } else {
                    s
                }
            }
            'g' => float_repr(number()?),
            'x' | 'X' | 'o' => {
                let n = number()?.trunc() as i128;
                let digits = match conv {
                    'x' => format!("{:x}", n.abs()),
                    'X' => format!("{:X}", n.abs()),
                    _ => format!("{:o}", n.abs()),
                };
                format!("{}{digits}", sign(n < 0))
            }
            'c' => match arg.as_i64() {
                Some(code) => char::from_u32(code as u32)
                    .map(String::from)
                    .unwrap_or_default(),
                None => text(&arg)?,
            },
            other => return Err(invalid(format!("unsupported format character '{other}'"))),
        };
        let width: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len < width {
            let pad = width - len;
            if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&" ".repeat(pad));
            } else if flags.contains('0') && conv != 's' && conv != 'r' {
                let (sign_part, digits) = match body.chars().next() {
                    Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
                    _ => (String::new(), body.clone()),
                };
                out.push_str(&sign_part);
                out.push_str(&"0".repeat(pad));
                out.push_str(&digits);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    Ok(out)
}

fn format(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let fmt = text(&value)?;
    let keys: Vec<&str> = kwargs.args().collect();
    if !keys.is_empty() {
        let mut map = Map::new();
        for k in keys {
            let v: Value = kwargs.get(k)?;
            map.insert(k.to_string(), to_json(&v)?);
        }
        return Ok(percent_format(&fmt, &args, Some(&data_value(Json::Object(map))))?.into());
    }
    // A single dict argument serves `%(name)s` keys.
    let mapping = match args.as_slice() {
        [one] if one.kind() == ValueKind::Map => Some(one),
        _ => None,
    };
    Ok(percent_format(&fmt, &args, mapping)?.into())
}

/// Python's `shlex.quote`, as Ansible's `quote`.
pub(crate) fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn quote(value: Value) -> Result<Value, Error> {
    if value.is_none() {
        return Ok(Value::from("''"));
    }
    Ok(shell_quote(&text(&value)?).into())
}

/// Ansible's `comment` filter (decorates text as a comment block).
fn comment(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let style = match args.first() {
        Some(v) => text(v)?,
        None => "plain".into(),
    };
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        other => return Err(invalid(format!("Invalid style '{other}'."))),
    };
    let get = |key: &str, default: String| -> Result<String, Error> {
        match kwargs.get::<Option<Value>>(key)? {
            Some(v) => text(&v),
            None => Ok(default),
        }
    };
    let prepostfix = get("decoration", decoration.to_string())?;
    let newline = get("newline", "\n".into())?;
    let beginning = get("beginning", beginning.into())?;
    let prefix = get("prefix", prepostfix.trim_end().to_string())?;
    let prefix_count = match kwargs.get::<Option<Value>>("prefix_count")? {
        Some(v) => as_int(&v)?.max(0) as usize,
        None => 1,
    };
    let decoration = get("decoration", decoration.to_string())?;
    let postfix = get("postfix", prepostfix.trim_end().to_string())?;
    let postfix_count = match kwargs.get::<Option<Value>>("postfix_count")? {
        Some(v) => as_int(&v)?.max(0) as usize,
        None => 1,
    };
    let end = get("end", end.into())?;
    kwargs.assert_all_used()?;
    let body = text(&value)?;
    let str_beginning = if beginning.is_empty() {
        String::new()
    } else {
        format!("{beginning}{newline}")
    };
    let str_prefix = if prefix.is_empty() {
        String::new()
    } else if prefix != newline {
        format!("{prefix}{newline}").repeat(prefix_count)
    } else {
        newline.repeat(prefix_count)
    };
    let str_text = format!(
        "{decoration}{}",
        body.replace(&newline, &format!("{newline}{decoration}"))
    )
    .replace(
        &format!("{decoration}{newline}"),
        &format!("{}{newline}", decoration.trim_end()),
    );
    let mut post_parts = vec![String::new()];
    post_parts.extend(std::iter::repeat_n(postfix.clone(), postfix_count));
    let str_postfix = post_parts.join(&newline);
    let str_end = if end.is_empty() {
        String::new()
    } else {
        format!("{newline}{end}")
    };
    Ok(format!("{str_beginning}{str_prefix}{str_text}{str_postfix}{str_end}").into())
}

// ---------------------------------------------------------------------------------------------
// Regular expressions

fn regex_flags(p: &Params, ignorecase: usize, multiline: usize) -> Result<Flags, Error> {
    Ok(Flags {
        ignorecase: p.flag(ignorecase, false)?,
        multiline: p.flag(multiline, false)?,
    })
}

fn compile(pattern: &str, flags: Flags) -> Result<PyRegex, Error> {
    PyRegex::new(pattern, flags).map_err(invalid)
}

fn regex_replace(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(
        &args,
        &kwargs,
        &[
            "pattern",
            "replacement",
            "ignorecase",
            "multiline",
            "count",
            "mandatory_count",
        ],
    )?;
    let s = if value.is_none() {
        String::new()
    } else {
        text(&value)?
    };
    let pattern = p.string(0, "")?;
    let replacement = p.string(1, "")?;
    let regex = compile(&pattern, regex_flags(&p, 2, 3)?)?;
    let count = p.int(4)?.unwrap_or(0).max(0) as usize;
    let (out, n) = regex.sub(&s, &replacement, count).map_err(invalid)?;
    if let Some(want) = p.int(5)? {
        if want != 0 && want as usize != n {
            return Err(invalid(format!(
                "'{pattern}' should match {want} times, but matches {n} times in '{s}'"
            )));
        }
    }
    Ok(out.into())
}

fn regex_search(
    value: Value,
    regex: String,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let s = text(&value)?;
    let flags = Flags {
        ignorecase: kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false),
        multiline: kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let compiled = compile(&regex, flags)?;
    let mut groups: Vec<GroupRef> = Vec::new();
    for arg in args.iter() {
        let a = text(arg)?;
        if let Some(name) = a.strip_prefix("\\g<").and_then(|r| r.strip_suffix('>')) {
            groups.push(match name.parse::<usize>() {
                Ok(i) => GroupRef::Index(i),
                Err(_) => GroupRef::Name(name.to_string()),
            });
        } else if let Some(num) = a.strip_prefix('\\') {
            let digits: String = num.chars().take_while(char::is_ascii_digit).collect();
            groups.push(GroupRef::Index(
                digits.parse().map_err(|_| invalid("Unknown argument"))?,
            ));
        } else {
            return Err(invalid("Unknown argument"));
        }
    }
    let Some(caps) = compiled.captures(&s).map_err(invalid)? else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(caps.get(0).map_or("", |m| m.as_str()).into());
    }
    let mut out = Vec::new();
    for g in groups {
        let m = match &g {
            GroupRef::Index(i) => {
                if *i > compiled.group_count() {
                    return Err(invalid("no such group"));
                }
                caps.get(*i)
            }
            GroupRef::Name(n) => caps.name(n),
        };
        out.push(m.map_or(Value::from(()), |m| Value::from(m.as_str())));
    }
    Ok(list_of(out))
}

enum GroupRef {
    Index(usize),
    Name(String),
}

fn regex_findall(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["regex", "multiline", "ignorecase"])?;
    let s = text(&value)?;
    let regex = compile(&p.string(0, "")?, regex_flags(&p, 2, 1)?)?;
    let found = regex.findall(&s).map_err(invalid)?;
    Ok(list_of(
        found
            .into_iter()
            .map(|f| match f {
                pyre::FindAll::One(s) => Value::from(s),
                pyre::FindAll::Groups(g) => Value::from(g),
            })
            .collect::<Vec<_>>(),
    ))
}

fn regex_escape(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["re_type"])?;
    let s = text(&value)?;
    match p.string(0, "python")?.as_str() {
        "python" => Ok(pyre::escape(&s).into()),
        "posix_basic" => {
            let mut out = String::new();
            for c in s.chars() {
                if "].[^$*\\".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out.into())
        }
        "posix_extended" => Err(invalid("Regex type (posix_extended) not yet implemented")),
        other => Err(invalid(format!("Invalid regex type ({other})"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Encodings

fn b64encode(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["encoding", "urlsafe"])?;
    let s = text(&value)?;
    let bytes = encode_text(&s, &p.string(0, "utf-8")?)?;
    let engine = if p.flag(1, false)? {
        &base64::engine::general_purpose::URL_SAFE
    } else {
        &base64::engine::general_purpose::STANDARD
    };
    Ok(engine.encode(bytes).into())
}

fn b64decode(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["encoding", "urlsafe"])?;
    let s = text(&value)?;
    let engine = if p.flag(1, false)? {
        &base64::engine::general_purpose::URL_SAFE
    } else {
        &base64::engine::general_purpose::STANDARD
    };
    let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = engine
        .decode(cleaned.as_bytes())
        .map_err(|e| invalid(format!("b64decode: {e}")))?;
    let encoding = p.string(0, "utf-8")?.to_lowercase().replace('_', "-");
    Ok(match encoding.as_str() {
        "utf-16-le" | "utf-16le" => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        "latin-1" | "latin1" | "iso-8859-1" => bytes.iter().map(|b| char::from(*b)).collect(),
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    }
    .into())
}

fn encode_text(s: &str, encoding: &str) -> Result<Vec<u8>, Error> {
    match encoding.to_lowercase().replace('_', "-").as_str() {
        "utf-8" | "utf8" => Ok(s.as_bytes().to_vec()),
        "utf-16-le" | "utf-16le" => Ok(s.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        "latin-1" | "latin1" | "iso-8859-1" => Ok(s.chars().map(|c| c as u32 as u8).collect()),
        "ascii" => Ok(s.as_bytes().to_vec()),
        other => Err(invalid(format!("unknown encoding: {other}"))),
    }
}

/// Python's `urllib.parse.quote` (`safe` kept, UTF-8 bytes escaped); `+` for spaces in queries.
fn url_quote(s: &str, for_query: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || (!for_query && b == b'/') {
            out.push(char::from(b));
        } else if for_query && b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Jinja2's `urlencode`: a string is quoted keeping `/`; a dict or pairs become a query string.
fn urlencode(value: Value) -> Result<Value, Error> {
    check_defined(&value)?;
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::Map => values_of(&value)?
            .into_iter()
            .map(|k| value.get_item(&k).map(|v| (k, v)))
            .collect::<Result<_, _>>()?,
        ValueKind::Seq | ValueKind::Iterable => values_of(&value)?
            .into_iter()
            .map(|pair| {
                let kv = values_of(&pair)?;
                match kv.as_slice() {
                    [k, v] => Ok((k.clone(), v.clone())),
                    _ => Err(invalid("urlencode expects pairs")),
                }
            })
            .collect::<Result<_, _>>()?,
        _ => return Ok(url_quote(&text(&value)?, false).into()),
    };
    let mut parts = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        parts.push(format!(
            "{}={}",
            url_quote(&text(&k)?, true),
            url_quote(&text(&v)?, true)
        ));
    }
    Ok(parts.join("&").into())
}

fn urldecode(value: Value) -> Result<Value, Error> {
    let s = text(&value)?.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned().into())
}

/// Ansible's `to_uuid`: UUIDv5 in Ansible's namespace.
fn to_uuid(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    use sha1::Digest as _;
    let p = Params::new(&args, &kwargs, &["namespace"])?;
    let namespace = p.string(0, "361E6D51-FAEC-444A-9079-341386DA8E2E")?;
    let hex: String = namespace
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    if hex.len() != 32 {
        return Err(invalid(format!(
            "Invalid value '{namespace}' for 'namespace'"
        )));
    }
    let ns: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0))
        .collect();
    let mut hasher = sha1::Sha1::new();
    hasher.update(&ns);
    hasher.update(text(&value)?.as_bytes());
    let mut b: Vec<u8> = hasher.finalize()[..16].to_vec();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
    .into())
}

// ---------------------------------------------------------------------------------------------
// Paths (Python's os.path)

pub(crate) fn basename(p: &str) -> String {
    p.rsplit('/').next().unwrap_or("").to_string()
}

pub(crate) fn dirname(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => {
            let head = &p[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head.to_string()
            } else {
                trimmed.to_string()
            }
        }
        None => String::new(),
    }
}

pub(crate) fn expanduser(p: &str) -> String {
    if p == "~" || p.starts_with("~/") {
        if let Ok(home) = std::env::var("HOME") {
            let home = if home.len() > 1 {
                home.trim_end_matches('/')
            } else {
                home.as_str()
            };
            return format!("{home}{}", &p[1..]);
        }
    }
    p.to_string()
}

/// Python's `os.path.normpath`.
pub(crate) fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let leading = if p.starts_with("//") && !p.starts_with("///") {
        2
    } else if p.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if leading == 0 {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    let out = format!("{}{body}", "/".repeat(leading));
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

fn realpath(value: Value) -> Result<Value, Error> {
    let p = text(&value)?;
    let abs = if p.starts_with('/') {
        p.clone()
    } else {
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        format!("{cwd}/{p}")
    };
    Ok(match std::fs::canonicalize(&abs) {
        Ok(real) => real.display().to_string(),
        Err(_) => normpath(&abs),
    }
    .into())
}

fn splitext(value: Value) -> Result<Value, Error> {
    let p = text(&value)?;
    let base_start = p.rfind('/').map_or(0, |i| i + 1);
    let base = &p[base_start..];
    let dot = base
        .rfind('.')
        .filter(|&i| base[..i].chars().any(|c| c != '.'));
    Ok(list_of(match dot {
        Some(i) => vec![p[..base_start + i].to_string(), base[i..].to_string()],
        None => vec![p.clone(), String::new()],
    }))
}

fn path_join(value: Value) -> Result<Value, Error> {
    let parts = if value.kind() == ValueKind::String {
        vec![text(&value)?]
    } else {
        values_of(&value)?
            .iter()
            .map(text)
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut out = String::new();
    for part in parts {
        if part.starts_with('/') {
            out = part;
        } else if out.is_empty() || out.ends_with('/') {
            out.push_str(&part);
        } else {
            out.push('/');
            out.push_str(&part);
        }
    }
    Ok(out.into())
}

// ---------------------------------------------------------------------------------------------
// Numbers

fn abs(value: Value) -> Result<Value, Error> {
    check_defined(&value)?;
    if let Some(i) = value.as_i64() {
        return Ok(Value::from(i.abs()));
    }
    match as_f64(&value) {
        Some(f) => Ok(Value::from(f.abs())),
        None => Err(invalid(format!(
            "bad operand type for abs(): '{}'",
            context::type_name(&value)
        ))),
    }
}

/// Jinja2's `round(precision=0, method='common')`: Python's round (half to even on the exact
/// binary value), always a float.
fn round(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["precision", "method"])?;
    check_defined(&value)?;
    let precision = p.int(0)?.unwrap_or(0);
    let method = p.string(1, "common")?;
    let x = as_f64(&value).ok_or_else(|| invalid("round() requires a number"))?;
    let factor = 10f64.powi(precision as i32);
    let r = match method.as_str() {
        "common" => {
            if value.is_integer() && precision >= 0 {
                return Ok(value);
            }
            if precision >= 0 {
                format!("{:.*}", precision as usize, x)
                    .parse::<f64>()
                    .unwrap_or(x)
            } else {
                (x * factor).round_ties_even() / factor
            }
        }
        "ceil" => (x * factor).ceil() / factor,
        "floor" => (x * factor).floor() / factor,
        _ => return Err(invalid("method must be common, ceil or floor")),
    };
    Ok(Value::from(r))
}

fn log(value: Value, args: Rest<Value>) -> Result<Value, Error> {
    let x = as_f64(&value).ok_or_else(|| invalid("log() can only be used on numbers"))?;
    Ok(Value::from(match args.first().and_then(as_f64) {
        Some(10.0) => x.log10(),
        Some(base) => x.ln() / base.ln(),
        None => x.ln(),
    }))
}

fn pow(value: Value, y: Value) -> Result<Value, Error> {
    let (x, y) = (as_f64(&value), as_f64(&y));
    match (x, y) {
        (Some(x), Some(y)) => Ok(Value::from(x.powf(y))),
        _ => Err(invalid("pow() can only be used on numbers")),
    }
}

fn root(value: Value, args: Rest<Value>) -> Result<Value, Error> {
    let x = as_f64(&value).ok_or_else(|| invalid("root() can only be used on numbers"))?;
    Ok(Value::from(match args.first().and_then(as_f64) {
        None | Some(2.0) => x.sqrt(),
        Some(base) => x.powf(1.0 / base),
    }))
}

// ---------------------------------------------------------------------------------------------
// Hashing

fn digest(kind: &str, data: &str) -> Result<Value, Error> {
    use sha2::Digest as _;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let bytes = data.as_bytes();
    let out = match kind {
        "sha1" => hex(&sha1::Sha1::digest(bytes)),
        "md5" => hex(&md5::Md5::digest(bytes)),
        "sha224" => hex(&sha2::Sha224::digest(bytes)),
        "sha256" => hex(&sha2::Sha256::digest(bytes)),
        "sha384" => hex(&sha2::Sha384::digest(bytes)),
        "sha512" => hex(&sha2::Sha512::digest(bytes)),
        other => return Err(invalid(format!("unsupported hash type {other}"))),
    };
    Ok(out.into())
}

fn hash(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["hashtype"])?;
    digest(&p.string(0, "sha1")?, &text(&value)?)
}

const CRYPT_ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `password_hash('sha512'|'sha256', salt, rounds)`: the `$6$`/`$5$` crypt format. Rounds default
/// to passlib's (656000 / 535000), which is what Ansible uses, so output matches it byte for byte.
fn password_hash(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    use rand::Rng as _;
    let p = Params::new(
        &args,
        &kwargs,
        &["hashtype", "salt", "salt_size", "rounds", "ident"],
    )?;
    let password = text(&value)?;
    let hashtype = p.string(0, "sha512")?;
    let salt = match p.get(1) {
        Some(s) if !s.is_none() => text(s)?,
        _ => {
            let size = p.int(2)?.unwrap_or(16).clamp(1, 16) as usize;
            let mut rng = rand::rng();
            (0..size)
                .map(|_| char::from(CRYPT_ALPHABET[rng.random_range(0..CRYPT_ALPHABET.len())]))
                .collect()
        }
    };
    if !salt.bytes().all(|b| CRYPT_ALPHABET.contains(&b)) {
        return Err(invalid("invalid characters in salt"));
    }
    let salt: String = salt.chars().take(16).collect();
    let rounds = p.int(3)?;
    let (prefix, hashed) = match hashtype.as_str() {
        "sha512" | "sha512_crypt" => {
            let r = rounds.unwrap_or(656_000).clamp(1000, 999_999_999) as u32;
            let params = sha_crypt::Sha512Params::new(r as usize).map_err(|e| invalid(format!("password_hash: {e:?}")))?;
            let h = sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
                .map_err(|e| invalid(format!("password_hash: {e:?}")))?;
            ("6", (r, h))
        }
        "sha256" | "sha256_crypt" => {
            let r = rounds.unwrap_or(535_000).clamp(1000, 999_999_999) as u32;
            let params = sha_crypt::Sha256Params::new(r as usize).map_err(|e| invalid(format!("password_hash: {e:?}")))?;
            let h = sha_crypt::sha256_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
                .map_err(|e| invalid(format!("password_hash: {e:?}")))?;
            ("5", (r, h))
        }
        other => return Err(invalid(format!("{other} is not in the list of supported passlib algorithms: md5, blowfish, sha256, sha512"))),
    };
    let (r, h) = hashed;
    // crypt (and passlib) omit the rounds field at crypt's own default of 5000.
    Ok(if r == 5000 {
        format!("${prefix}${salt}${h}")
    } else {
        format!("${prefix}$rounds={r}${salt}${h}")
    }
    .into())
}

// ---------------------------------------------------------------------------------------------
// Conditionals

fn ternary(
    value: Value,
    true_val: Value,
    false_val: Value,
    args: Rest<Value>,
) -> Result<Value, Error> {
    check_defined(&value)?;
    if value.is_none() {
        if let Some(none_val) = args.first() {
            if !none_val.is_none() {
                return Ok(none_val.clone());
            }
        }
    }
    Ok(if value.is_true() { true_val } else { false_val })
}

// ---------------------------------------------------------------------------------------------
// Python ordering and equality on plain data

fn json_num(j: &Json) -> Option<f64> {
    match j {
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Json::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Python `==` on plain data (`1 == 1.0 == True`).
pub(crate) fn py_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Json::Bool(_) | Json::Number(_), Json::Bool(_) | Json::Number(_)) => {
            json_num(a) == json_num(b)
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => a == b,
    }
}

fn py_type(j: &Json) -> &'static str {
    match j {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// Python `<` ordering; mixed types fail like Python 3.
pub(crate) fn py_cmp(a: &Json, b: &Json, case_sensitive: bool) -> Result<Ordering, Error> {
    match (a, b) {
        (Json::Bool(_) | Json::Number(_), Json::Bool(_) | Json::Number(_)) => {
            if let (Json::Number(x), Json::Number(y)) = (a, b) {
                if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                    return Ok(i.cmp(&j));
                }
            }
            Ok(json_num(a)
                .partial_cmp(&json_num(b))
                .unwrap_or(Ordering::Equal))
        }
        (Json::String(x), Json::String(y)) => Ok(if case_sensitive {
            x.cmp(y)
        } else {
            x.to_lowercase().cmp(&y.to_lowercase())
        }),
        (Json::Array(x), Json::Array(y)) => {
            for (a, b) in x.iter().zip(y) {
                if !py_eq(a, b) {
                    return py_cmp(a, b, case_sensitive);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => Err(invalid(format!(
            "'<' not supported between instances of '{}' and '{}'",
            py_type(a),
            py_type(b)
        ))),
    }
}

fn lower_if(j: Json, case_sensitive: bool) -> Json {
    match j {
        Json::String(s) if !case_sensitive => Json::String(s.to_lowercase()),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Attributes

/// Jinja's attribute path (`a.b.0`): dots for nesting, integer parts as indexes.
pub(crate) fn attr_path(_state: &State, item: &Value, attr: &Value) -> Result<Value, Error> {
    if attr.is_number() {
        return Ok(item.get_item(attr).unwrap_or(Value::UNDEFINED));
    }
    let path = text(attr)?;
    let mut current = item.clone();
    for part in path.split('.') {
        let key = match part.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => Value::from(part),
        };
        current = if let Some(m) = as_missing(&current) {
            let _ = m;
            current.clone()
        } else if current.is_undefined() {
            return Ok(Value::UNDEFINED);
        } else {
            match context::item_opt(&current, &key) {
                Some(v) => v,
                None => context::Missing::attribute(context::type_name(&current), &key),
            }
        };
    }
    Ok(current)
}

fn attr_getter(
    state: &State,
    attribute: Option<&Value>,
    item: &Value,
) -> Result<Vec<Value>, Error> {
    match attribute {
        None => Ok(vec![item.clone()]),
        Some(attr) if attr.kind() == ValueKind::String => text(attr)?
            .split(',')
            .map(|a| attr_path(state, item, &Value::from(a)))
            .collect(),
        Some(attr) => Ok(vec![attr_path(state, item, attr)?]),
    }
}

// ---------------------------------------------------------------------------------------------
// Lists

fn min_max(
    state: &State,
    value: Value,
    args: Rest<Value>,
    kwargs: Kwargs,
    want: Ordering,
) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["case_sensitive", "attribute"])?;
    let case_sensitive = p.flag(0, false)?;
    let items = values_of(&value)?;
    let mut best: Option<(Value, Json)> = None;
    for item in items {
        let key = attr_getter(state, p.get(1), &item)?;
        let key = to_json(&key[0])?;
        let key = lower_if(key, case_sensitive);
        match &best {
            Some((_, bk)) if py_cmp(&key, bk, true)? != want => {}
            _ => best = Some((item, key)),
        }
    }
    Ok(best.map_or(Value::UNDEFINED, |(v, _)| v))
}

fn sum(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["attribute", "start"])?;
    let mut total = p.get(1).cloned().unwrap_or_else(|| Value::from(0));
    for item in values_of(&value)? {
        let item = match p.get(0) {
            Some(attr) => attr_path(state, &item, attr)?,
            None => item,
        };
        check_defined(&item)?;
        total = add_values(&total, &item)?;
    }
    Ok(total)
}

fn add_values(a: &Value, b: &Value) -> Result<Value, Error> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        if let Some(s) = x.checked_add(y) {
            return Ok(Value::from(s));
        }
    }
    if let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) {
        return Ok(Value::from(x + y));
    }
    if a.kind() == ValueKind::Seq && b.kind() == ValueKind::Seq {
        let mut items = values_of(a)?;
        items.extend(values_of(b)?);
        return Ok(list_of(items));
    }
    Err(invalid(format!(
        "unsupported operand type(s) for +: '{}' and '{}'",
        context::type_name(a),
        context::type_name(b)
    )))
}

/// Jinja2's `unique` as Ansible calls it: case-insensitive unless asked, first occurrence kept.
fn unique(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["case_sensitive", "attribute"])?;
    let case_sensitive = p.flag(0, false)?;
    let mut seen: Vec<Json> = Vec::new();
    let mut out = Vec::new();
    for item in values_of(&value)? {
        let key = attr_getter(state, p.get(1), &item)?;
        let key = lower_if(to_json(&key[0])?, case_sensitive);
        if !seen.iter().any(|s| py_eq(s, &key)) {
            seen.push(key);
            out.push(item);
        }
    }
    Ok(list_of(out))
}

enum SetOp {
    Union,
    Intersect,
    Difference,
    Symmetric,
}

/// Set operations keep first-seen order (Python's set order is hash-dependent; see the report).
fn set_op(a: Value, b: Value, op: SetOp) -> Result<Value, Error> {
    let a: Vec<Json> = values_of(&a)?
        .iter()
        .map(to_json)
        .collect::<Result<_, _>>()?;
    let b: Vec<Json> = values_of(&b)?
        .iter()
        .map(to_json)
        .collect::<Result<_, _>>()?;
    let contains = |list: &[Json], x: &Json| list.iter().any(|y| py_eq(x, y));
    let mut out: Vec<Json> = Vec::new();
    let push = |x: &Json, out: &mut Vec<Json>| {
        if !contains(out, x) {
            out.push(x.clone());
        }
    };
    match op {
        SetOp::Union => {
            for x in a.iter().chain(b.iter()) {
                push(x, &mut out);
            }
        }
        SetOp::Intersect => {
            for x in a.iter().filter(|x| contains(&b, x)) {
                push(x, &mut out);
            }
        }
        SetOp::Difference => {
            for x in a.iter().filter(|x| !contains(&b, x)) {
                push(x, &mut out);
            }
        }
        SetOp::Symmetric => {
            for x in a
                .iter()
                .filter(|x| !contains(&b, x))
                .chain(b.iter().filter(|x| !contains(&a, x)))
            {
                push(x, &mut out);
            }
        }
    }
    Ok(data_value(Json::Array(out)))
}

fn sort(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["reverse", "case_sensitive", "attribute"])?;
    let reverse = p.flag(0, false)?;
    let case_sensitive = p.flag(1, false)?;
    let mut keyed = Vec::new();
    for item in values_of(&value)? {
        let keys = attr_getter(state, p.get(2), &item)?;
        let keys: Vec<Json> = keys
            .iter()
            .map(|k| to_json(k).map(|j| lower_if(j, case_sensitive)))
            .collect::<Result<_, _>>()?;
        keyed.push((keys, item));
    }
    let mut failure = None;
    keyed.sort_by(|a, b| {
        for (x, y) in a.0.iter().zip(&b.0) {
            match py_cmp(x, y, true) {
                Ok(Ordering::Equal) => {}
                Ok(o) => return if reverse { o.reverse() } else { o },
                Err(e) => {
                    failure.get_or_insert(e);
                    return Ordering::Equal;
                }
            }
        }
        Ordering::Equal
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(list_of(
        keyed.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    ))
}

fn flatten_into(items: &[Json], levels: Option<i64>, skip_nulls: bool, out: &mut Vec<Json>) {
    for item in items {
        if skip_nulls && (item.is_null() || matches!(item.as_str(), Some("None" | "null"))) {
            continue;
        }
        match (item, levels) {
            (Json::Array(inner), None) => flatten_into(inner, None, skip_nulls, out),
            (Json::Array(inner), Some(l)) if l >= 1 => {
                flatten_into(inner, Some(l - 1), skip_nulls, out)
            }
            _ => out.push(item.clone()),
        }
    }
}

fn flatten(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["levels", "skip_nulls"])?;
    let Json::Array(items) = to_json(&value)? else {
        return Err(invalid("flatten expects a list"));
    };
    let mut out = Vec::new();
    flatten_into(&items, p.int(0)?, p.flag(1, true)?, &mut out);
    Ok(data_value(Json::Array(out)))
}

fn zip(value: Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut lists = vec![values_of(&value)?];
    for o in others.iter() {
        lists.push(values_of(o)?);
    }
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(list_of(
        (0..n)
            .map(|i| list_of(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
    ))
}

fn zip_longest(value: Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let fill: Value = kwargs
        .get::<Option<Value>>("fillvalue")?
        .unwrap_or(Value::from(()));
    kwargs.assert_all_used()?;
    let mut lists = vec![values_of(&value)?];
    for o in others.iter() {
        lists.push(values_of(o)?);
    }
    let n = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok(list_of(
        (0..n)
            .map(|i| {
                list_of(
                    lists
                        .iter()
                        .map(|l| l.get(i).cloned().unwrap_or_else(|| fill.clone()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>(),
    ))
}

fn product(value: Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut acc: Vec<Vec<Value>> = values_of(&value)?.into_iter().map(|v| vec![v]).collect();
    for o in others.iter() {
        let items = values_of(o)?;
        let mut next = Vec::with_capacity(acc.len() * items.len());
        for prefix in &acc {
            for item in &items {
                let mut row = prefix.clone();
                row.push(item.clone());
                next.push(row);
            }
        }
        acc = next;
    }
    Ok(list_of(
        acc.into_iter().map(Value::from).collect::<Vec<_>>(),
    ))
}

/// `map(attribute=..., default=...)` or `map('filter', args...)`.
fn map(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let items = values_of(&value)?;
    if let Some(attr) = kwargs.get::<Option<Value>>("attribute")? {
        let default: Option<Value> = kwargs.get("default")?;
        kwargs.assert_all_used()?;
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let v = attr_path(state, item, &attr)?;
            out.push(match (&default, as_missing(&v)) {
                (Some(d), Some(m)) => {
                    m.consume();
                    d.clone()
                }
                (Some(d), None) if v.is_undefined() => d.clone(),
                _ => v,
            });
        }
        return Ok(list_of(out));
    }
    let Some((name, rest)) = args.split_first() else {
        return Ok(list_of(items));
    };
    let filter = text(name)?;
    let mut extra: Vec<Value> = rest.to_vec();
    if kwargs.args().next().is_some() {
        let mut kw = Vec::new();
        for k in kwargs.args().map(str::to_string).collect::<Vec<_>>() {
            let v: Value = kwargs.get(&k)?;
            kw.push((k, v));
        }
        extra.push(Kwargs::from_iter(kw).into());
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut call = vec![item];
        call.extend(extra.iter().cloned());
        out.push(state.apply_filter(&filter, &call)?);
    }
    Ok(list_of(out))
}

/// select/reject/selectattr/rejectattr: the test by name, or truthiness.
fn select(
    state: &State,
    value: Value,
    args: Rest<Value>,
    attr: Option<String>,
    keep: bool,
) -> Result<Value, Error> {
    let items = values_of(&value)?;
    let (test, test_args) = match args.split_first() {
        Some((name, rest)) => (Some(text(name)?), rest.to_vec()),
        None => (None, Vec::new()),
    };
    let mut out = Vec::new();
    for item in items {
        let subject = match &attr {
            Some(a) => attr_path(state, &item, &Value::from(a.as_str()))?,
            None => item.clone(),
        };
        let passed = match &test {
            Some(name) => {
                let mut call = vec![subject];
                call.extend(test_args.iter().cloned());
                state.perform_test(name, &call)?
            }
            None => {
                check_defined(&subject)?;
                subject.is_true()
            }
        };
        if passed == keep {
            out.push(item);
        }
    }
    Ok(list_of(out))
}

fn subelements(
    state: &State,
    value: Value,
    key: Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["skip_missing"])?;
    let skip_missing = p.flag(0, false)?;
    let elements = if value.kind() == ValueKind::Map {
        values_of(&value)?
            .iter()
            .map(|k| value.get_item(k))
            .collect::<Result<Vec<_>, _>>()?
    } else if value.kind() == ValueKind::Seq {
        values_of(&value)?
    } else {
        return Err(invalid("obj must be a list of dicts or a nested dict"));
    };
    let path: Vec<Value> = if key.kind() == ValueKind::Seq {
        values_of(&key)?
    } else {
        text(&key)?.split('.').map(Value::from).collect()
    };
    let _ = state;
    let mut out = Vec::new();
    for element in elements {
        let mut values = element.clone();
        let mut skipped = false;
        for part in &path {
            match context::item_opt(&values, part) {
                Some(v) if !is_undefined(&v) => values = v,
                _ if skip_missing => {
                    skipped = true;
                    break;
                }
                _ => {
                    return Err(invalid(format!(
                        "could not find {} key in iterated item {}",
                        py_repr(part)?,
                        py_repr(&values)?
                    )))
                }
            }
        }
        if skipped {
            continue;
        }
        if values.kind() != ValueKind::Seq {
            return Err(invalid(format!(
                "the key {} should point to a list, got {}",
                py_repr(path.last().unwrap_or(&Value::from("")))?,
                py_repr(&values)?
            )));
        }
        for v in values_of(&values)? {
            out.push(list_of(vec![element.clone(), v]));
        }
    }
    Ok(list_of(out))
}

fn extract(item: Value, container: Value, args: Rest<Value>) -> Result<Value, Error> {
    let mut keys = vec![item];
    if let Some(more) = args.first() {
        if more.kind() == ValueKind::Seq {
            keys.extend(values_of(more)?);
        } else {
            keys.push(more.clone());
        }
    }
    let mut value = container;
    for key in keys {
        value = match context::item_opt(&value, &key) {
            Some(v) => v,
            None => context::Missing::attribute(context::type_name(&value), &key),
        };
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Dicts

/// Ansible's `merge_hash` with `list_merge`.
fn merge_hash(low: &Map, high: &Map, recursive: bool, list_merge: &str) -> Map {
    let mut out = low.clone();
    for (k, hv) in high {
        let merged = match (out.get(k), hv) {
            (Some(Json::Object(lo)), Json::Object(hi)) if recursive => {
                Json::Object(merge_hash(lo, hi, recursive, list_merge))
            }
            (Some(Json::Array(lo)), Json::Array(hi)) if list_merge != "replace" => {
                let mut list = match list_merge {
                    "keep" => lo.clone(),
                    "append" => lo.iter().chain(hi.iter()).cloned().collect(),
                    "prepend" => hi.iter().chain(lo.iter()).cloned().collect(),
                    "append_rp" => {
                        let mut l: Vec<Json> = lo
                            .iter()
                            .filter(|x| !hi.iter().any(|y| py_eq(x, y)))
                            .cloned()
                            .collect();
                        l.extend(hi.iter().cloned());
                        l
                    }
                    "prepend_rp" => {
                        let mut l = hi.clone();
                        l.extend(
                            lo.iter()
                                .filter(|x| !hi.iter().any(|y| py_eq(x, y)))
                                .cloned(),
                        );
                        l
                    }
                    _ => hi.clone(),
                };
                Json::Array(std::mem::take(&mut list))
            }
            _ => hv.clone(),
        };
        out.insert(k.clone(), merged);
    }
    out
}

fn combine(value: Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge = kwargs
        .get::<Option<String>>("list_merge")?
        .unwrap_or_else(|| "replace".into());
    kwargs.assert_all_used()?;
    if ![
        "replace",
        "keep",
        "append",
        "prepend",
        "append_rp",
        "prepend_rp",
    ]
    .contains(&list_merge.as_str())
    {
        return Err(invalid(format!(
            "'{list_merge}' is not a valid list_merge value"
        )));
    }
    let mut dicts: Vec<Json> = Vec::new();
    for v in std::iter::once(&value).chain(others.iter()) {
        match to_json(v)? {
            Json::Array(items) => dicts.extend(items),
            other => dicts.push(other),
        }
    }
    let mut result = Map::new();
    for d in dicts {
        let Json::Object(m) = d else {
            return Err(invalid(format!(
                "failed to combine variables, expected dicts but got a '{}'",
                py_type(&d)
            )));
        };
        result = merge_hash(&result, &m, recursive, &list_merge);
    }
    Ok(data_value(Json::Object(result)))
}

fn dict2items(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["key_name", "value_name"])?;
    check_defined(&value)?;
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "dict2items requires a dictionary, got {} instead.",
            context::type_name(&value)
        )));
    }
    let (kn, vn) = (p.string(0, "key")?, p.string(1, "value")?);
    let mut out = Vec::new();
    for key in values_of(&value)? {
        let v = value.get_item(&key)?;
        out.push(dict_value(vec![(kn.clone(), key), (vn.clone(), v)]));
    }
    Ok(list_of(out))
}

fn items2dict(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new(&args, &kwargs, &["key_name", "value_name"])?;
    let (kn, vn) = (p.string(0, "key")?, p.string(1, "value")?);
    let Json::Array(items) = to_json(&value)? else {
        return Err(invalid("items2dict requires a list"));
    };
    let mut out = Map::new();
    for item in items {
        let (Some(k), Some(v)) = (item.get(&kn), item.get(&vn)) else {
            return Err(invalid(format!(
                "items2dict requires each dictionary in the list to contain the keys '{kn}' and '{vn}'"
            )));
        };
        let key = match k {
            Json::String(s) => s.clone(),
            other => py_str(&data_value(other.clone()))?,
        };
        out.insert(key, v.clone());
    }
    Ok(data_value(Json::Object(out)))
}

// ---------------------------------------------------------------------------------------------
// Serialization

fn json_options(kwargs: &Kwargs, mut opts: pyjson::Options) -> Result<pyjson::Options, Error> {
    if let Some(indent) = kwargs.get::<Option<Value>>("indent")? {
        opts.indent = if indent.is_none() {
            None
        } else if let Some(s) = indent.as_str() {
            Some(s.to_string())
        } else {
            Some(" ".repeat(as_int(&indent)?.max(0) as usize))
        };
        if opts.indent.is_some() && opts.item_separator == ", " {
            opts.item_separator = ",".into();
        }
    }
    if let Some(v) = kwargs.get::<Option<bool>>("sort_keys")? {
        opts.sort_keys = v;
    }
    if let Some(v) = kwargs.get::<Option<bool>>("ensure_ascii")? {
        opts.ensure_ascii = v;
    }
    if let Some(seps) = kwargs.get::<Option<Value>>("separators")? {
        let parts = values_of(&seps)?;
        if let [item, key] = parts.as_slice() {
            opts.item_separator = text(item)?;
            opts.key_separator = text(key)?;
        }
    }
    // Accepted for compatibility; they change nothing for plain data.
    for ignored in [
        "vault_to_text",
        "preprocess_unsafe",
        "profile",
        "allow_nan",
        "skipkeys",
        "check_circular",
    ] {
        let _ = kwargs.get::<Option<Value>>(ignored)?;
    }
    kwargs.assert_all_used()?;
    Ok(opts)
}

fn to_json_filter(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let opts = json_options(&kwargs, pyjson::Options::default())?;
    Ok(pyjson::dumps(&to_json(&value)?, &opts).into())
}

fn to_nice_json(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let mut base = pyjson::Options {
        indent: Some("    ".into()),
        sort_keys: true,
        item_separator: ",".into(),
        ..pyjson::Options::default()
    };
    if let Some(indent) = args.first() {
        base.indent = Some(" ".repeat(as_int(indent)?.max(0) as usize));
    }
    let _ = kwargs.get::<Option<Value>>("separators")?;
    let mut opts = json_options(&kwargs, base)?;
    opts.item_separator = ",".into();
    opts.key_separator = ": ".into();
    Ok(pyjson::dumps(&to_json(&value)?, &opts).into())
}

fn from_json(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let _ = kwargs.get::<Option<Value>>("profile")?;
    kwargs.assert_all_used()?;
    let s = text(&value)?;
    let parsed: Json = serde_json::from_str(&s).map_err(|e| invalid(format!("from_json: {e}")))?;
    Ok(data_value(parsed))
}

fn to_yaml(value: Value, args: Rest<Value>, kwargs: Kwargs, nice: bool) -> Result<Value, Error> {
    let mut style = if nice {
        yaml_dump::Style {
            indent: 4,
            flow: Some(false),
            ..yaml_dump::Style::default()
        }
    } else {
        yaml_dump::Style::default()
    };
    if let Some(i) = args.first() {
        style.indent = as_int(i)?.max(0) as usize;
    }
    if let Some(i) = kwargs.get::<Option<i64>>("indent")? {
        style.indent = i.max(0) as usize;
    }
    if let Some(f) = kwargs.get::<Option<Value>>("default_flow_style")? {
        style.flow = if f.is_none() { None } else { Some(f.is_true()) };
    }
    if let Some(s) = kwargs.get::<Option<bool>>("sort_keys")? {
        style.sort_keys = s;
    }
    if let Some(w) = kwargs.get::<Option<i64>>("width")? {
        style.width = w.max(1) as usize;
    }
    let _ = kwargs.get::<Option<Value>>("allow_unicode")?;
    let _ = kwargs.get::<Option<Value>>("explicit_start")?;
    kwargs.assert_all_used()?;
    Ok(yaml_dump::dump(&to_json(&value)?, style).into())
}

fn from_yaml(value: Value) -> Result<Value, Error> {
    if value.is_none() {
        return Ok(value);
    }
    if value.kind() != ValueKind::String {
        return Ok(value);
    }
    let s = text(&value)?;
    let docs =
        crate::yaml::load_str(&s, Path::new("<from_yaml>")).map_err(|d| invalid(d.message))?;
    Ok(docs
        .first()
        .map_or(Value::from(()), |n| data_value(n.to_value())))
}

fn from_yaml_all(value: Value) -> Result<Value, Error> {
    if value.is_none() {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    let s = text(&value)?;
    let docs =
        crate::yaml::load_str(&s, Path::new("<from_yaml_all>")).map_err(|d| invalid(d.message))?;
    Ok(data_value(Json::Array(
        docs.iter().map(|n| n.to_value()).collect(),
    )))
}
