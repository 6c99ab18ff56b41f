//! Role argument specs (`meta/argument_specs.yml`): the validation task Ansible puts first in a
//! role that has one, and `validate_argument_spec`, which checks the role's arguments with
//! Ansible's rules and words (required, types, elements, choices, unsupported parameters).

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::Diagnostic;
use crate::yaml;

/// The spec of one entry point (`main`, or the `tasks_from` name), if the role has one:
/// `meta/argument_specs.{yml,yaml,json}` when present, else `argument_specs` in meta/main.yml.
pub fn entry_point_spec(
    role_dir: &Path,
    entry_point: &str,
) -> Result<Option<Map<String, Value>>, Diagnostic> {
    let meta = role_dir.join("meta");
    let dedicated = ["yml", "yaml", "json"]
        .iter()
        .map(|ext| meta.join(format!("argument_specs.{ext}")))
        .find(|p| p.is_file());
    let specs = match dedicated {
        Some(file) => yaml::load_one(&file)?
            .to_value()
            .get("argument_specs")
            .cloned(),
        None => match super::role_files(role_dir, "meta", None, false)?.first() {
            Some(main) => yaml::load_one(main)?
                .to_value()
                .get("argument_specs")
                .cloned(),
            None => None,
        },
    };
    Ok(match specs.and_then(|s| s.get(entry_point).cloned()) {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    })
}

/// The name Ansible gives the validation task.
pub fn task_name(entry_point: &str, spec: &Map<String, Value>) -> String {
    let mut name = format!("Validating arguments against arg spec '{entry_point}'");
    if let Some(d) = spec.get("short_description") {
        name.push_str(" - ");
        name.push_str(&text(d));
    }
    name
}

/// `validate_argument_spec`: check `provided_arguments` (and the variables named like the
/// spec's options, which `var` templates) against `argument_spec`; the result as Ansible's.
pub fn validate(
    args: &Map<String, Value>,
    var: impl Fn(&str) -> Option<Result<Value, String>>,
) -> Map<String, Value> {
    let mut result = Map::new();
    let context = args
        .get("validate_args_context")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    result.insert("validate_args_context".into(), context);
    let spec = match args.get("argument_spec") {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return failed(result, "Incorrect type for argument_spec, expected dict"),
        None => return failed(result, "\"argument_spec\" arg is required in args"),
    };
    let provided = match args.get("provided_arguments") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return failed(
                result,
                "Incorrect type for provided_arguments, expected dict",
            )
        }
    };
    let mut params = Map::new();
    for name in spec.keys() {
        match var(name) {
            Some(Ok(v)) => {
                params.insert(name.clone(), v);
            }
            Some(Err(msg)) => return failed(result, &msg),
            None => {}
        }
    }
    params.extend(provided);
    let errors = check(&spec, &params);
    if errors.is_empty() {
        result.insert("changed".into(), Value::Bool(false));
        result.insert(
            "msg".into(),
            Value::String("The arg spec validation passed".into()),
        );
    } else {
        result.insert("failed".into(), Value::Bool(true));
        result.insert(
            "msg".into(),
            Value::String(format!(
                "Validation of arguments failed:\n{}",
                errors.join("\n")
            )),
        );
        result.insert("argument_spec_data".into(), Value::Object(spec));
        result.insert(
            "argument_errors".into(),
            errors.into_iter().map(Value::String).collect(),
        );
        result.insert("changed".into(), Value::Bool(false));
    }
    result
}

fn failed(mut result: Map<String, Value>, msg: &str) -> Map<String, Value> {
    result.insert("failed".into(), Value::Bool(true));
    result.insert("msg".into(), Value::String(msg.to_string()));
    result
}

/// Ansible's checks, in its order: required, types (and list elements), choices, then
/// parameters the spec does not know.
fn check(spec: &Map<String, Value>, params: &Map<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut missing: Vec<&str> = spec
        .iter()
        .filter(|(name, opt)| {
            opt.get("required").and_then(modules::args::ansible_bool) == Some(true)
                && !params.contains_key(name.as_str())
        })
        .map(|(name, _)| name.as_str())
        .collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        errors.push(format!(
            "missing required arguments: {}",
            missing.join(", ")
        ));
    }
    let mut coerced = params.clone();
    for (name, opt) in spec {
        let Some(value) = params.get(name) else {
            continue;
        };
        let required = opt.get("required").and_then(modules::args::ansible_bool) == Some(true);
        if value.is_null() && !required && opt.get("default").is_none_or(Value::is_null) {
            continue;
        }
        let wanted = opt.get("type").and_then(Value::as_str).unwrap_or("str");
        match convert(wanted, value) {
            Ok(v) => {
                if let Some(element_type) = opt.get("elements").and_then(Value::as_str) {
                    if let Value::Array(items) = &v {
                        for item in items {
                            if let Err(e) = convert(element_type, item) {
                                errors.push(format!(
                                    "Elements value for option '{name}' is of type {} and we were unable to convert to {element_type}: {e}",
                                    type_name(item)
                                ));
                            }
                        }
                    } else {
                        errors.push(format!(
                            "Invalid type {wanted} for option '{}', elements value check is supported only with 'list' type",
                            modules::pyfmt::json_repr(&v)
                        ));
                    }
                }
                coerced.insert(name.clone(), v);
            }
            Err(e) => errors.push(format!(
                "argument '{name}' is of type {} and we were unable to convert to {wanted}: {e}",
                type_name(value)
            )),
        }
    }
    for (name, opt) in spec {
        let (Some(Value::Array(choices)), Some(value)) = (opt.get("choices"), coerced.get(name))
        else {
            continue;
        };
        let choices_text = choices.iter().map(text).collect::<Vec<_>>().join(", ");
        match value {
            Value::Array(items) => {
                let off: Vec<String> = items
                    .iter()
                    .filter(|i| !choices.contains(i))
                    .map(text)
                    .collect();
                if !off.is_empty() {
                    errors.push(format!(
                        "value of {name} must be one or more of: {choices_text}. Got no match for: {}",
                        off.join(", ")
                    ));
                }
            }
            v if !choices.contains(v) => errors.push(format!(
                "value of {name} must be one of: {choices_text}, got: {}",
                text(v)
            )),
            _ => {}
        }
    }
    let mut unsupported: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !spec.contains_key(*k))
        .collect();
    unsupported.sort_unstable();
    if !unsupported.is_empty() {
        let mut supported: Vec<&str> = spec.keys().map(String::as_str).collect();
        supported.sort_unstable();
        errors.push(format!(
            "{}. Supported parameters include: {}.",
            unsupported.join(", "),
            supported.join(", ")
        ));
    }
    errors
}

/// A value as Ansible's messages print it (strings bare, the rest as Python shows them).
fn text(v: &Value) -> String {
    modules::args::ansible_str(v).unwrap_or_else(|| v.to_string())
}

/// Python's name for a value's type, as Ansible's messages show it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `<class 'x'>` for a value.
fn class_of(v: &Value) -> String {
    format!("<class '{}'>", type_name(v))
}

/// Ansible's type checkers (`check_type_*`): the value converted, or the reason it cannot be.
fn convert(wanted: &str, v: &Value) -> Result<Value, String> {
    match wanted {
        "str" | "path" => Ok(match v {
            Value::String(_) => v.clone(),
            Value::Null => Value::String(String::new()),
            other => Value::String(text(other)),
        }),
        "raw" => Ok(v.clone()),
        "int" => {
            let as_int = match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => Some(v.clone()),
                Value::Number(n) => n
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| Value::from(f as i64)),
                Value::String(s) => s.trim().parse::<i64>().ok().map(Value::from).or_else(|| {
                    s.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0 && f.is_finite())
                        .map(|f| Value::from(f as i64))
                }),
                Value::Bool(b) => Some(Value::from(i64::from(*b))),
                _ => None,
            };
            as_int.ok_or_else(|| {
                format!(
                    "\"{}\" cannot be converted to an int",
                    modules::pyfmt::json_repr(v)
                )
            })
        }
        "float" => match v {
            Value::Number(n) => Ok(n.as_f64().map(Value::from).unwrap_or(Value::Null)),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| format!("{} cannot be converted to a float", class_of(v))),
            Value::Bool(b) => Ok(Value::from(if *b { 1.0 } else { 0.0 })),
            _ => Err(format!("{} cannot be converted to a float", class_of(v))),
        },
        "bool" => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(_) | Value::Number(_) => modules::args::ansible_bool(v)
                .map(Value::Bool)
                .ok_or_else(|| {
                    format!(
                        "The value '{}' is not a valid boolean. Valid booleans include: 'yes', 'on', '1', 'true', 1, 'y', 't', 'no', 'off', '0', 'false', 0, 'n', 'f'",
                        text(v)
                    )
                }),
            _ => Err(format!("{} cannot be converted to a bool", class_of(v))),
        },
        "list" => match v {
            Value::Array(_) => Ok(v.clone()),
            Value::String(s) => Ok(s.split(',').map(|p| Value::String(p.into())).collect()),
            Value::Number(n) => Ok(Value::Array(vec![Value::String(n.to_string())])),
            _ => Err(format!("{} cannot be converted to a list", class_of(v))),
        },
        "dict" => match v {
            Value::Object(_) => Ok(v.clone()),
            Value::String(s) if s.trim_start().starts_with('{') => {
                match serde_json::from_str::<Value>(s) {
                    Ok(Value::Object(m)) => Ok(Value::Object(m)),
                    _ => Err("unable to evaluate string as dictionary".into()),
                }
            }
            Value::String(s) if s.contains('=') => {
                let parsed = crate::playbook::kv::parse_kv(s, false);
                if parsed.contains_key("_raw_params") {
                    Err("unable to evaluate string in the \"key=value\" format as dictionary"
                        .into())
                } else {
                    Ok(Value::Object(parsed))
                }
            }
            Value::String(_) => {
                Err("dictionary requested, could not parse JSON or key=value".into())
            }
            _ => Err(format!("{} cannot be converted to a dict", class_of(v))),
        },
        // jsonarg, bytes, bits and custom types: accepted as given.
        _ => Ok(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(spec: Value, provided: Value, vars: Value) -> Value {
        let mut args = Map::new();
        args.insert("argument_spec".into(), spec);
        args.insert("provided_arguments".into(), provided);
        Value::Object(validate(&args, |name| vars.get(name).cloned().map(Ok)))
    }

    #[test]
    fn passes_and_fails_with_ansibles_words() {
        let spec = json!({
            "app_port": {"type": "int", "required": true},
            "mode": {"type": "str", "choices": ["a", "b"]},
            "items": {"type": "list", "elements": "int"},
            "flag": {"type": "bool"}
        });
        let ok = run(
            spec.clone(),
            json!({"app_port": "80", "flag": "yes", "items": "1,2"}),
            json!({}),
        );
        assert_eq!(ok["msg"], "The arg spec validation passed");
        assert!(ok.get("failed").is_none());

        let bad = run(
            spec.clone(),
            json!({"mode": "c", "items": "1,x", "extra": 1}),
            json!({}),
        );
        assert_eq!(
            bad["argument_errors"],
            json!([
                "missing required arguments: app_port",
                "Elements value for option 'items' is of type str and we were unable to convert to int: \"'x'\" cannot be converted to an int",
                "value of mode must be one of: a, b, got: c",
                "extra. Supported parameters include: app_port, flag, items, mode."
            ])
        );
        assert_eq!(bad["failed"], true);

        // Variables named like the options count, and params win over them.
        let from_vars = run(
            spec,
            json!({"app_port": 1}),
            json!({"app_port": "abc", "mode": "a"}),
        );
        assert_eq!(from_vars["msg"], "The arg spec validation passed");
    }
}
