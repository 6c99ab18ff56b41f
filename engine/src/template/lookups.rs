//! `lookup()`, `query()`/`q()` and the lookup plugins that run on the controller.
//!
//! Relative paths are searched like Ansible's search path: `ansible_search_path` when the
//! caller provides it, else `role_path` then `playbook_dir`, each with the plugin's
//! subdirectory (`files/`, `templates/`) first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use serde_json::Value as Json;

use super::context::{self, current_state, data_value, to_json, EvalState};
use super::filters::text;
use super::Map;

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function(
        "lookup",
        |s: &State, name: String, terms: Rest<Value>, k: Kwargs| lookup(s, &name, terms, k, false),
    );
    env.add_function(
        "query",
        |s: &State, name: String, terms: Rest<Value>, k: Kwargs| lookup(s, &name, terms, k, true),
    );
    env.add_function(
        "q",
        |s: &State, name: String, terms: Rest<Value>, k: Kwargs| lookup(s, &name, terms, k, true),
    );
}

fn fail(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn lookup(
    state: &State,
    name: &str,
    terms: Rest<Value>,
    kwargs: Kwargs,
    query: bool,
) -> Result<Value, Error> {
    let wantlist = query || kwargs.get::<Option<bool>>("wantlist")?.unwrap_or(false);
    let errors = kwargs
        .get::<Option<String>>("errors")?
        .unwrap_or_else(|| "strict".into());
    let mut options = Map::new();
    for key in kwargs.args().map(str::to_string).collect::<Vec<_>>() {
        if key == "wantlist" || key == "errors" {
            continue;
        }
        let v: Value = kwargs.get(&key)?;
        options.insert(key, to_json(&v)?);
    }
    let mut term_values = Vec::with_capacity(terms.len());
    for t in terms.iter() {
        super::filters::check_defined(t)?;
        term_values.push(t.clone());
    }
    let short = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    let result = run_plugin(state, short, &term_values, &options);
    let results = match result {
        Ok(r) => r,
        Err(e) if errors == "ignore" || errors == "warn" => {
            let _ = e;
            return Ok(if wantlist {
                Value::from(Vec::<Value>::new())
            } else {
                Value::from(())
            });
        }
        Err(e) if e.kind() == ErrorKind::UnknownFunction => {
            return Err(fail(format!("The lookup plugin '{short}' was not found.")))
        }
        Err(e) => {
            return Err(fail(format!(
                "The lookup plugin '{short}' failed: {}",
                e.detail().unwrap_or("error")
            )))
        }
    };
    if wantlist {
        return Ok(data_value(Json::Array(results)));
    }
    Ok(match results.len() {
        0 => data_value(Json::Array(results)),
        1 => data_value(results.into_iter().next().unwrap_or(Json::Null)),
        _ if results.iter().all(Json::is_string) => Value::from(
            results
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => data_value(Json::Array(results)),
    })
}

/// Terms as plain data; each list term contributes its items (Ansible's `listify_lookup_plugin_terms`).
fn flat_terms(terms: &[Value]) -> Result<Vec<Json>, Error> {
    let mut out = Vec::new();
    for t in terms {
        match to_json(t)? {
            Json::Array(items) => out.extend(items),
            other => out.push(other),
        }
    }
    Ok(out)
}

fn term_strings(terms: &[Value]) -> Result<Vec<String>, Error> {
    flat_terms(terms)?
        .into_iter()
        .map(|t| match t {
            Json::String(s) => Ok(s),
            other => text(&data_value(other)),
        })
        .collect()
}

fn run_plugin(
    state: &State,
    name: &str,
    terms: &[Value],
    options: &Map,
) -> Result<Vec<Json>, Error> {
    let es = current_state(state).ok_or_else(|| fail("lookups need a template context"))?;
    let opt_bool =
        |key: &str, default: bool| options.get(key).and_then(Json::as_bool).unwrap_or(default);
    match name {
        "file" => term_strings(terms)?
            .into_iter()
            .map(|t| {
                let path = find_file(&es, "files", &t).ok_or_else(|| {
                    fail(format!("Unable to access the file '{t}': File not found."))
                })?;
                let mut content = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("could not read {}: {e}", path.display())))?;
                if opt_bool("rstrip", true) {
                    content.truncate(content.trim_end().len());
                }
                if opt_bool("lstrip", false) {
                    content = content.trim_start().to_string();
                }
                Ok(Json::String(content))
            })
            .collect(),
        "env" => {
            let default = options.get("default").cloned();
            term_strings(terms)?
                .into_iter()
                .map(|t| match std::env::var(&t) {
                    Ok(v) => Ok(Json::String(v)),
                    Err(_) => Ok(default
                        .clone()
                        .unwrap_or_else(|| Json::String(String::new()))),
                })
                .collect()
        }
        "template" => term_strings(terms)?
            .into_iter()
            .map(|t| {
                let path = find_file(&es, "templates", &t).ok_or_else(|| {
                    fail(format!(
                        "the template file {t} could not be found for the lookup"
                    ))
                })?;
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("could not read {}: {e}", path.display())))?;
                let mut overlay = super::template_vars(&path, |k| es.vars.get(k));
                if let Some(Json::Object(extra)) = options.get("template_vars") {
                    for (k, v) in extra {
                        overlay.insert(k.clone(), v.clone());
                    }
                }
                let sub = Arc::new(EvalState {
                    templar: es.templar.clone(),
                    vars: es.vars.with(overlay, super::Source::Written),
                    hostvars: es.hostvars.clone(),
                    shared: es.shared.clone(),
                });
                let rendered = es
                    .templar
                    .render_file_in(&source, &path, &sub)
                    .map_err(|e| {
                        let message = e.message.clone();
                        context::report(e);
                        fail(message)
                    })?;
                Ok(Json::String(rendered))
            })
            .collect(),
        "lines" => {
            let mut out = Vec::new();
            for t in term_strings(terms)? {
                out.extend(
                    run_command(&t)?
                        .lines()
                        .map(|l| Json::String(l.to_string())),
                );
            }
            Ok(out)
        }
        "pipe" => term_strings(terms)?
            .into_iter()
            .map(|t| Ok(Json::String(run_command(&t)?.trim_end().to_string())))
            .collect(),
        "items" => {
            let mut out = Vec::new();
            for t in flat_terms(terms)? {
                match t {
                    Json::Array(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            Ok(out)
        }
        "list" => terms.iter().map(to_json).collect(),
        "indexed_items" => Ok(flat_terms(terms)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| Json::Array(vec![Json::from(i), v]))
            .collect()),
        "dict" => {
            let mut out = Vec::new();
            for t in terms {
                let Json::Object(m) = to_json(t)? else {
                    return Err(fail("with_dict expects a dict"));
                };
                for (k, v) in m {
                    let mut entry = Map::new();
                    entry.insert("key".into(), Json::String(k));
                    entry.insert("value".into(), v);
                    out.push(Json::Object(entry));
                }
            }
            Ok(out)
        }
        "nested" | "cartesian" => {
            let mut acc: Vec<Vec<Json>> = vec![Vec::new()];
            for t in terms {
                let items = match to_json(t)? {
                    Json::Array(items) => items,
                    other => vec![other],
                };
                acc = acc
                    .into_iter()
                    .flat_map(|prefix| {
                        items.iter().map(move |i| {
                            let mut row = prefix.clone();
                            row.push(i.clone());
                            row
                        })
                    })
                    .collect();
            }
            Ok(acc.into_iter().map(Json::Array).collect())
        }
        "together" => {
            let lists: Vec<Vec<Json>> = terms
                .iter()
                .map(|t| match to_json(t) {
                    Ok(Json::Array(items)) => Ok(items),
                    Ok(other) => Ok(vec![other]),
                    Err(e) => Err(e),
                })
                .collect::<Result<_, _>>()?;
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            Ok((0..n)
                .map(|i| {
                    Json::Array(
                        lists
                            .iter()
                            .map(|l| l.get(i).cloned().unwrap_or(Json::Null))
                            .collect(),
                    )
                })
                .collect())
        }
        "vars" => {
            let default = options.get("default").cloned();
            term_strings(terms)?
                .into_iter()
                .map(|name| {
                    let value = es.raw_var(&name);
                    match value {
                        Some(v) if !context::is_undefined(&v) => to_json(&v),
                        _ => default
                            .clone()
                            .ok_or_else(|| fail(format!("No variable named '{name}' was found"))),
                    }
                })
                .collect()
        }
        "first_found" => first_found(&es, terms, options),
        "fileglob" => {
            let mut out = Vec::new();
            for pattern in term_strings(terms)? {
                out.extend(fileglob(&es, &pattern).into_iter().map(Json::String));
            }
            Ok(out)
        }
        "sequence" => {
            let mut out = Vec::new();
            for t in term_strings(terms)? {
                out.extend(sequence(&t, options)?.into_iter().map(Json::String));
            }
            Ok(out)
        }
        other => Err(Error::new(
            ErrorKind::UnknownFunction,
            format!("lookup plugin ({other}) not found"),
        )),
    }
}

/// Directories searched for relative paths, most specific first.
fn search_dirs(es: &EvalState, subdir: &str) -> Vec<PathBuf> {
    let mut bases: Vec<PathBuf> = Vec::new();
    if let Some(Json::Array(items)) = es.vars.get("ansible_search_path") {
        bases.extend(items.iter().filter_map(Json::as_str).map(PathBuf::from));
    }
    for key in ["role_path", "playbook_dir"] {
        if let Some(p) = es.vars.get(key).and_then(Json::as_str) {
            let p = PathBuf::from(p);
            if !bases.contains(&p) {
                bases.push(p);
            }
        }
    }
    let mut out = Vec::with_capacity(bases.len() * 2);
    for base in bases {
        out.push(base.join(subdir));
        out.push(base);
    }
    out
}

fn find_file(es: &EvalState, subdir: &str, term: &str) -> Option<PathBuf> {
    let expanded = super::filters::expanduser(term);
    let path = Path::new(&expanded);
    if path.is_absolute() {
        return path.exists().then(|| path.to_path_buf());
    }
    for dir in search_dirs(es, subdir) {
        let candidate = dir.join(path);
        if candidate.exists() {
            return Some(candidate);
        }
    }
    path.exists().then(|| path.to_path_buf())
}

fn run_command(cmd: &str) -> Result<String, Error> {
    let output = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| fail(format!("could not run {cmd:?}: {e}")))?;
    if !output.status.success() {
        return Err(fail(format!(
            "lookup_plugin.lines({cmd}) returned {}",
            output.status.code().unwrap_or(-1)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn first_found(es: &EvalState, terms: &[Value], options: &Map) -> Result<Vec<Json>, Error> {
    let mut files: Vec<String> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    let mut skip = options.get("skip").and_then(Json::as_bool).unwrap_or(false);
    let split_list = |v: &Json, out: &mut Vec<String>| match v {
        Json::String(s) => out.extend(
            s.split([',', ';'])
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
        ),
        Json::Array(items) => out.extend(items.iter().filter_map(Json::as_str).map(str::to_string)),
        _ => {}
    };
    for t in flat_terms(terms)? {
        match &t {
            Json::Object(m) => {
                if let Some(f) = m.get("files") {
                    split_list(f, &mut files);
                }
                if let Some(p) = m.get("paths") {
                    split_list(p, &mut paths);
                }
                if let Some(s) = m.get("skip").and_then(Json::as_bool) {
                    skip = s;
                }
            }
            Json::String(s) => files.push(s.clone()),
            _ => {}
        }
    }
    if let Some(f) = options.get("files") {
        split_list(f, &mut files);
    }
    if let Some(p) = options.get("paths") {
        split_list(p, &mut paths);
    }
    for file in &files {
        let candidates: Vec<PathBuf> = if paths.is_empty() {
            find_file(es, "files", file).into_iter().collect()
        } else {
            paths.iter().map(|p| Path::new(p).join(file)).collect()
        };
        if let Some(found) = candidates.into_iter().find(|p| p.exists()) {
            return Ok(vec![Json::String(found.display().to_string())]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err(fail("No file was found when using first_found."))
}

fn fileglob(es: &EvalState, pattern: &str) -> Vec<String> {
    let (dir, file_pattern) = match pattern.rsplit_once('/') {
        Some((d, f)) => (d.to_string(), f.to_string()),
        None => (String::new(), pattern.to_string()),
    };
    let Ok(glob) = globset::Glob::new(&file_pattern) else {
        return Vec::new();
    };
    let matcher = glob.compile_matcher();
    let dirs: Vec<PathBuf> = if Path::new(&dir).is_absolute() {
        vec![PathBuf::from(&dir)]
    } else {
        search_dirs(es, "files")
            .into_iter()
            .map(|d| d.join(&dir))
            .collect()
    };
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file() && matcher.is_match(e.file_name()))
            .map(|e| e.path().display().to_string())
            .collect();
        if !found.is_empty() {
            found.sort();
            return found;
        }
    }
    Vec::new()
}

/// `with_sequence`: `start=1 end=10 stride=2 format=host%02d` or `count=5`, or `1-10/2`.
fn sequence(term: &str, options: &Map) -> Result<Vec<String>, Error> {
    let mut start = 1i64;
    let mut end: Option<i64> = None;
    let mut count: Option<i64> = None;
    let mut stride = 1i64;
    let mut format = "%d".to_string();
    let num = |s: &str| -> Result<i64, Error> {
        let s = s.trim();
        let parsed = if let Some(h) = s.strip_prefix("0x") {
            i64::from_str_radix(h, 16)
        } else if let Some(o) = s
            .strip_prefix("0o")
            .or_else(|| s.strip_prefix("0").filter(|r| !r.is_empty()))
        {
            i64::from_str_radix(o, 8)
        } else {
            s.parse()
        };
        parsed.map_err(|_| fail(format!("can't parse {s:?} as an integer in sequence")))
    };
    let mut apply = |k: &str, v: &str| -> Result<(), Error> {
        match k {
            "start" => start = num(v)?,
            "end" => end = Some(num(v)?),
            "count" => count = Some(num(v)?),
            "stride" => stride = num(v)?,
            "format" => format = v.to_string(),
            other => {
                return Err(fail(format!(
                    "unrecognized arguments to with_sequence: {other}"
                )))
            }
        }
        Ok(())
    };
    for (k, v) in options {
        let v = match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        apply(k, &v)?;
    }
    let term = term.trim();
    if !term.is_empty() {
        if term.contains('=') {
            for part in term.split_whitespace() {
                if let Some((k, v)) = part.split_once('=') {
                    apply(k, v)?;
                }
            }
        } else {
            // Shortcut form: [start-]end[/stride][:format]
            let (body, fmt) = match term.split_once(':') {
                Some((b, f)) => (b, Some(f)),
                None => (term, None),
            };
            let (range, st) = match body.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (body, None),
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    start = num(a)?;
                    end = Some(num(b)?);
                }
                None => end = Some(num(range)?),
            }
            if let Some(s) = st {
                stride = num(s)?;
            }
            if let Some(f) = fmt {
                format = f.to_string();
            }
        }
    }
    if let Some(c) = count {
        end = Some(start + c * stride - if c > 0 { stride.signum() } else { 0 });
        if c == 0 {
            return Ok(Vec::new());
        }
    }
    let end = end.ok_or_else(|| fail("must specify count or end in with_sequence"))?;
    if stride == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut i = start;
    while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
        out.push(super::filters::percent_format(
            &format,
            &[Value::from(i)],
            None,
        )?);
        i += stride;
        if out.len() > 1_000_000 {
            return Err(fail("with_sequence produced too many items"));
        }
    }
    let _ = ValueKind::Seq;
    Ok(out)
}
