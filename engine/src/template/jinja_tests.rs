//! Jinja2's and Ansible's tests (`x is defined`, `r is failed`, `v is version('2.0', '>=')`).

use std::cmp::Ordering;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use super::context::{as_missing, is_undefined, to_json};
use super::filters::{check_defined, py_eq, text, to_bool};
use super::pyre::{Flags, PyRegex};

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_test("defined", |v: &Value| !consume(v));
    env.add_test("undefined", |v: &Value| consume(v));
    env.add_test("none", |v: &Value| -> Result<bool, Error> {
        check_defined(v)?;
        Ok(v.is_none())
    });
    env.add_test(
        "match",
        |v: &Value, p: String, a: Rest<Value>, k: Kwargs| regex_test(v, &p, a, k, "match"),
    );
    env.add_test(
        "search",
        |v: &Value, p: String, a: Rest<Value>, k: Kwargs| regex_test(v, &p, a, k, "search"),
    );
    env.add_test(
        "regex",
        |v: &Value, p: String, a: Rest<Value>, k: Kwargs| regex_test(v, &p, a, k, "regex"),
    );
    // Registered task results.
    for (names, key) in [
        (&["succeeded", "success", "successful"][..], "succeeded"),
        (&["failed", "failure"][..], "failed"),
        (&["changed", "change"][..], "changed"),
        (&["skipped", "skip"][..], "skipped"),
        (&["finished", "finish"][..], "finished"),
        (&["started", "start"][..], "started"),
        (&["unreachable"][..], "unreachable"),
    ] {
        for name in names {
            env.add_test(*name, move |v: &Value| result_test(v, key));
        }
    }
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("string", |v: &Value| {
        typed(v, |v| v.kind() == ValueKind::String)
    });
    env.add_test("number", |v: &Value| {
        typed(v, |v| v.kind() == ValueKind::Number)
    });
    env.add_test("integer", |v: &Value| {
        typed(v, |v| v.kind() == ValueKind::Number && v.is_integer())
    });
    env.add_test("float", |v: &Value| {
        typed(v, |v| v.kind() == ValueKind::Number && !v.is_integer())
    });
    env.add_test("boolean", |v: &Value| {
        typed(v, |v| v.kind() == ValueKind::Bool)
    });
    env.add_test("mapping", |v: &Value| {
        typed(v, |v| v.kind() == ValueKind::Map)
    });
    env.add_test("iterable", |v: &Value| {
        typed(v, |v| {
            matches!(
                v.kind(),
                ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::String
            )
        })
    });
    env.add_test("sequence", |v: &Value| {
        typed(v, |v| {
            matches!(
                v.kind(),
                ValueKind::Seq | ValueKind::Map | ValueKind::String
            )
        })
    });
    env.add_test("callable", |v: &Value| {
        typed(v, |v| v.kind() == ValueKind::Plain)
    });
    env.add_test("truthy", |v: &Value, k: Kwargs| truthiness(v, k, true));
    env.add_test("falsy", |v: &Value, k: Kwargs| truthiness(v, k, false));
    env.add_test("in", |v: &Value, c: &Value| contains(c, v));
    env.add_test("contains", |c: &Value, v: &Value| contains(c, v));
    env.add_test("subset", |a: &Value, b: &Value| subset(a, b));
    env.add_test("issubset", |a: &Value, b: &Value| subset(a, b));
    env.add_test("superset", |a: &Value, b: &Value| subset(b, a));
    env.add_test("issuperset", |a: &Value, b: &Value| subset(b, a));
    env.add_test("equalto", |a: &Value, b: &Value| eq(a, b));
    env.add_test("eq", |a: &Value, b: &Value| eq(a, b));
    env.add_test("==", |a: &Value, b: &Value| eq(a, b));
    env.add_test("ne", |a: &Value, b: &Value| eq(a, b).map(|r| !r));
    env.add_test("!=", |a: &Value, b: &Value| eq(a, b).map(|r| !r));
    env.add_test("abs", |v: &Value| -> Result<bool, Error> {
        Ok(text(v)?.starts_with('/'))
    });
    env.add_test("exists", |v: &Value| -> Result<bool, Error> {
        Ok(std::path::Path::new(&super::filters::expanduser(&text(v)?)).exists())
    });
    env.add_test("file", |v: &Value| -> Result<bool, Error> {
        Ok(std::path::Path::new(&text(v)?).is_file())
    });
    env.add_test("directory", |v: &Value| -> Result<bool, Error> {
        Ok(std::path::Path::new(&text(v)?).is_dir())
    });
    env.add_test("link", |v: &Value| -> Result<bool, Error> {
        Ok(std::path::Path::new(&text(v)?).is_symlink())
    });
    env.add_test("same_file", |a: &Value, b: &Value| -> Result<bool, Error> {
        let (a, b) = (
            std::fs::canonicalize(text(a)?),
            std::fs::canonicalize(text(b)?),
        );
        Ok(matches!((a, b), (Ok(x), Ok(y)) if x == y))
    });
}

/// `defined`/`undefined` handle an undefined value, so it no longer fails the render.
fn consume(v: &Value) -> bool {
    if let Some(m) = as_missing(v) {
        m.consume();
        return true;
    }
    is_undefined(v)
}

fn typed(v: &Value, pred: impl Fn(&Value) -> bool) -> Result<bool, Error> {
    check_defined(v)?;
    Ok(pred(v))
}

fn eq(a: &Value, b: &Value) -> Result<bool, Error> {
    check_defined(a)?;
    check_defined(b)?;
    Ok(py_eq(&to_json(a)?, &to_json(b)?))
}

fn contains(container: &Value, item: &Value) -> Result<bool, Error> {
    check_defined(container)?;
    check_defined(item)?;
    if let (Some(hay), Some(needle)) = (container.as_str(), item.as_str()) {
        return Ok(hay.contains(needle));
    }
    let needle = to_json(item)?;
    if container.kind() == ValueKind::Map {
        return Ok(super::context::item_opt(container, item).is_some_and(|v| !is_undefined(&v)));
    }
    for x in container
        .try_iter()
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "argument is not iterable"))?
    {
        if py_eq(&to_json(&x)?, &needle) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn subset(a: &Value, b: &Value) -> Result<bool, Error> {
    check_defined(b)?;
    for x in a
        .try_iter()
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "argument is not iterable"))?
    {
        if !contains(b, &x)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn truthiness(v: &Value, kwargs: Kwargs, want: bool) -> Result<bool, Error> {
    let convert = kwargs.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    check_defined(v)?;
    let truth = if convert
        && matches!(
            v.kind(),
            ValueKind::String | ValueKind::Number | ValueKind::Bool
        ) {
        to_bool(v)?
    } else {
        v.is_true()
    };
    Ok(truth == want)
}

fn regex_test(
    v: &Value,
    pattern: &str,
    args: Rest<Value>,
    kwargs: Kwargs,
    kind: &str,
) -> Result<bool, Error> {
    check_defined(v)?;
    let flags = Flags {
        ignorecase: kwargs
            .get::<Option<bool>>("ignorecase")?
            .or_else(|| args.first().map(Value::is_true))
            .unwrap_or(false),
        multiline: kwargs
            .get::<Option<bool>>("multiline")?
            .or_else(|| args.get(1).map(Value::is_true))
            .unwrap_or(false),
    };
    let match_type = match kind {
        "regex" => kwargs
            .get::<Option<String>>("match_type")?
            .or_else(|| args.get(2).and_then(|v| v.as_str().map(str::to_string)))
            .unwrap_or_else(|| "search".into()),
        other => other.to_string(),
    };
    kwargs.assert_all_used()?;
    let subject = text(v)?;
    let invalid = |e: String| Error::new(ErrorKind::InvalidOperation, e);
    let regex = match match_type.as_str() {
        "match" => PyRegex::new_anchored(pattern, flags, false),
        "fullmatch" => PyRegex::new_anchored(pattern, flags, true),
        "search" => PyRegex::new(pattern, flags),
        other => return Err(invalid(format!("Invalid match type '{other}'"))),
    }
    .map_err(invalid)?;
    regex.is_match(&subject).map_err(invalid)
}

/// Tests on a registered result: `failed` is the `failed` key (or rc != 0), and so on.
fn result_test(v: &Value, key: &str) -> Result<bool, Error> {
    check_defined(v)?;
    if v.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("The '{key}' test expects a dictionary"),
        ));
    }
    let get = |k: &str| -> Result<Option<bool>, Error> {
        match super::context::item_opt(v, &Value::from(k)) {
            Some(x) if !is_undefined(&x) => Ok(Some(to_bool(&x)?)),
            _ => Ok(None),
        }
    };
    Ok(match key {
        "failed" => get("failed")?.unwrap_or(false),
        "succeeded" => !get("failed")?.unwrap_or(false),
        "changed" => get("changed")?.unwrap_or(false),
        "skipped" => get("skipped")?.unwrap_or(false),
        "unreachable" => get("unreachable")?.unwrap_or(false),
        "finished" => get("finished")?.unwrap_or(true),
        "started" => get("started")?.unwrap_or(false),
        _ => false,
    })
}

/// `version(other, operator='eq', strict=False, version_type=None)`.
fn version_test(
    v: &Value,
    other: &Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    let op = kwargs
        .get::<Option<String>>("operator")?
        .or_else(|| args.first().and_then(|v| v.as_str().map(str::to_string)))
        .unwrap_or_else(|| "eq".into());
    let strict = kwargs.get::<Option<bool>>("strict")?.unwrap_or(false);
    let version_type = kwargs.get::<Option<String>>("version_type")?;
    kwargs.assert_all_used()?;
    let (a, b) = (text(v)?, text(other)?);
    if a.is_empty() || b.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "Version comparison failed: empty version",
        ));
    }
    if strict || version_type.as_deref() == Some("strict") {
        let ok = |s: &str| {
            let re = regex::Regex::new(r"^\d+\.\d+(\.\d+)?([ab](\d+))?$").ok();
            re.is_some_and(|r| r.is_match(s))
        };
        if !ok(&a) || !ok(&b) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "Version comparison failed: invalid version number '{}'",
                    if ok(&a) { &b } else { &a }
                ),
            ));
        }
    }
    let ord = if version_type.as_deref() == Some("semver")
        || version_type.as_deref() == Some("semantic")
    {
        semver_cmp(&a, &b)
    } else {
        loose_cmp(&a, &b)
    };
    Ok(match op.as_str() {
        "<" | "lt" => ord == Ordering::Less,
        "<=" | "le" => ord != Ordering::Greater,
        ">" | "gt" => ord == Ordering::Greater,
        ">=" | "ge" => ord != Ordering::Less,
        "==" | "=" | "eq" => ord == Ordering::Equal,
        "!=" | "<>" | "ne" => ord != Ordering::Equal,
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("Invalid operator type ({other})"),
            ))
        }
    })
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Component {
    // Python's LooseVersion compares int < str would raise; ints sort first here.
    Num(u64),
    Text(String),
}

/// distutils' LooseVersion: runs of digits are numbers, other runs (minus dots) are text.
fn loose_components(s: &str) -> Vec<Component> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(d);
                chars.next();
            }
            out.push(Component::Num(n.parse().unwrap_or(u64::MAX)));
        } else if c == '.' {
            chars.next();
        } else {
            let mut t = String::new();
            while let Some(&d) = chars.peek().filter(|d| !d.is_ascii_digit() && **d != '.') {
                t.push(d);
                chars.next();
            }
            out.push(Component::Text(t));
        }
    }
    out
}

fn loose_cmp(a: &str, b: &str) -> Ordering {
    loose_components(a).cmp(&loose_components(b))
}

fn semver_cmp(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> (Vec<u64>, Option<String>) {
        let s = s.trim_start_matches('v');
        let s = s.split('+').next().unwrap_or(s);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (s, None),
        };
        (
            core.split('.').map(|p| p.parse().unwrap_or(0)).collect(),
            pre,
        )
    };
    let (ca, pa) = split(a);
    let (cb, pb) = split(b);
    ca.cmp(&cb).then_with(|| match (pa, pb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => loose_cmp(&x, &y),
    })
}
