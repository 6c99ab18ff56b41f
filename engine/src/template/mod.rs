//! Jinja2 templating with Ansible 2.19's semantics, on minijinja.
//!
//! Entry point is [`Templar`]: one per run, shared by every host and task. Variables are given
//! raw in a [`Scope`] and resolved lazily (see `context`), values render to text the way
//! Python's `str()` would (see `pyfmt`), and Ansible's filters, tests, lookups and the
//! Python string/dict methods playbooks call live in their own files.

mod context;
mod datetime;
mod filters;
mod jinja_tests;
mod lookups;
mod methods;
mod pyfmt;
pub mod pyjson;
mod pyrandom;
mod pyre;
mod yaml_dump;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod unit_tests;

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

use context::{EvalState, RootContext, Shared};

pub use context::OMIT_TOKEN;

pub type Map = serde_json::Map<String, serde_json::Value>;

/// Another host's variables, given lazily (hostvars[h] for 50 hosts must not be copied per task).
pub trait HostVars: Send + Sync {
    fn host_names(&self) -> Vec<String>;
    /// That host's raw vars.
    fn vars_of(&self, host: &str) -> Option<Vars>;
}

/// Raw variables in layers, lowest precedence first: a name is found in the highest layer
/// that has it. Layers are shared (`Arc`), so a host's variables for a task cost a list of
/// pointers rather than a copy of every value, and a loop item or a registered result is a
/// small layer on top. Cloning is one reference count.
#[derive(Clone, Default)]
pub struct Vars(Arc<Layered>);

/// Where a layer's values came from, which decides whether their strings are templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Written by the user (playbooks, inventory, vars files, extra vars): a string with
    /// `{{ }}` is a template, rendered when used.
    Written,
    /// Made by the run (module results, facts, `set_fact` values, loop items): already
    /// rendered, so text, never templated again. A target's output holding `{{ ... }}` must
    /// never run on the controller, as in Ansible.
    Data,
}

#[derive(Default)]
struct Layered {
    layers: Vec<(Arc<Map>, Source)>,
    /// The layer of gathered facts, if any: besides its own names it answers `ansible_<x>`
    /// for each fact `x` in its `ansible_facts`, the way Ansible injects facts as variables,
    /// without holding each fact twice (facts are most of a host's variables).
    facts_at: Option<usize>,
    /// Every variable in one map, made the first time something needs them all (`vars`,
    /// `hostvars[h]` as a whole).
    flat: OnceLock<Arc<Map>>,
}

/// Where a variable was found: the layer and its source, the fact's name when the variable
/// is a gathered fact's `ansible_<x>` (the value then lives at `ansible_facts.<x>` of that
/// layer), and its raw value.
pub(crate) struct Found<'a, 'n> {
    pub layer: &'a Arc<Map>,
    pub source: Source,
    pub fact: Option<&'n str>,
    pub raw: &'a Json,
}

impl Vars {
    /// `layers` written by the user, lowest precedence first (empty ones are left out).
    pub fn new(layers: Vec<Arc<Map>>) -> Self {
        Self::layered(
            layers.into_iter().map(|l| (l, Source::Written)).collect(),
            None,
        )
    }

    /// `layers` with their sources, lowest precedence first, where `layers[facts_at]` (if
    /// given) is the gathered facts (see `Layered::facts_at`). Empty layers are left out.
    pub fn layered(layers: Vec<(Arc<Map>, Source)>, facts_at: Option<usize>) -> Self {
        let mut kept = Vec::with_capacity(layers.len());
        let mut facts_index = None;
        for (i, layer) in layers.into_iter().enumerate() {
            if layer.0.is_empty() {
                continue;
            }
            if facts_at == Some(i) {
                facts_index = Some(kept.len());
            }
            kept.push(layer);
        }
        Vars(Arc::new(Layered {
            layers: kept,
            facts_at: facts_index,
            flat: OnceLock::new(),
        }))
    }

    /// These variables with `extra` (written by the user, or made by the run) over them.
    pub fn with(&self, extra: Map, source: Source) -> Vars {
        if extra.is_empty() {
            return self.clone();
        }
        let mut layers = self.0.layers.clone();
        layers.push((Arc::new(extra), source));
        Vars(Arc::new(Layered {
            layers,
            facts_at: self.0.facts_at,
            flat: OnceLock::new(),
        }))
    }

    /// A variable's raw value.
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.find(name).map(|found| found.raw)
    }

    /// A variable's raw value and where it is.
    pub(crate) fn find<'a, 'n>(&'a self, name: &'n str) -> Option<Found<'a, 'n>> {
        self.0
            .layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, (layer, source))| {
                let found = |fact, raw| Found {
                    layer,
                    source: *source,
                    fact,
                    raw,
                };
                match layer.get(name) {
                    Some(v) => Some(found(None, v)),
                    None if self.0.facts_at == Some(i) => {
                        let fact = name.strip_prefix("ansible_")?;
                        let v = layer.get("ansible_facts")?.get(fact)?;
                        Some(found(Some(fact), v))
                    }
                    None => None,
                }
            })
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Every variable in one map (higher layers winning, each name where it first appeared),
    /// made once per `Vars`.
    pub fn flat(&self) -> Arc<Map> {
        self.0
            .flat
            .get_or_init(|| match self.0.layers.as_slice() {
                [(one, _)] if self.0.facts_at.is_none() => one.clone(),
                layers => {
                    let mut out = Map::with_capacity(layers.iter().map(|l| l.0.len()).sum());
                    for (i, (layer, _)) in layers.iter().enumerate() {
                        if self.0.facts_at == Some(i) {
                            if let Some(Json::Object(facts)) = layer.get("ansible_facts") {
                                for (k, v) in facts {
                                    out.insert(format!("ansible_{k}"), v.clone());
                                }
                            }
                        }
                        for (k, v) in layer.iter() {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    Arc::new(out)
                }
            })
            .clone()
    }
}

impl From<Map> for Vars {
    fn from(map: Map) -> Self {
        Vars::new(vec![Arc::new(map)])
    }
}

impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vars({} layers)", self.0.layers.len())
    }
}

/// The variables one template evaluation sees.
#[derive(Clone)]
pub struct Scope {
    pub vars: Vars,
    pub hostvars: Option<Arc<dyn HostVars>>,
}

impl Scope {
    pub fn new(vars: impl Into<Vars>) -> Self {
        Scope {
            vars: vars.into(),
            hostvars: None,
        }
    }

    /// A variable's raw value.
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.vars.get(name)
    }

    /// This scope with variables the user wrote over its own (a template's own variables).
    pub fn with(&self, extra: Map) -> Scope {
        Scope {
            vars: self.vars.with(extra, Source::Written),
            hostvars: self.hostvars.clone(),
        }
    }

    /// This scope with values the run made over its variables (a loop item, a registered
    /// result): text, never templated.
    pub fn with_data(&self, extra: Map) -> Scope {
        Scope {
            vars: self.vars.with(extra, Source::Data),
            hostvars: self.hostvars.clone(),
        }
    }
}

/// A templating failure, worded like Ansible's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// The undefined variable (or attribute) the template used, when that is the failure.
    pub undefined: Option<String>,
}

impl TemplateError {
    pub fn new(message: impl Into<String>) -> Self {
        TemplateError {
            message: message.into(),
            undefined: None,
        }
    }
}

/// The templating engine: built once per run, shared across threads.
pub struct Templar {
    inner: Arc<Inner>,
}

/// What the lazy variables need to render their own templates.
pub(crate) struct Inner {
    env: Environment<'static>,
    /// Names the environment provides (functions): the context must not shadow them with "undefined".
    globals: HashSet<String>,
}

impl Default for Templar {
    fn default() -> Self {
        Self::new()
    }
}

impl Templar {
    pub fn new() -> Self {
        let mut env = Environment::new();
        // Chainable: minijinja's own undefined (a key a mapping lacks, `d['x']`) chains like
        // Ansible's (`d['x']['y'] | default(1)`); it is an error when it is printed or is
        // the result (`format_output`, `eval`). Undefined variables and attributes are our
        // `Missing`, which is strict by itself.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // Ansible's environment: trim_blocks on; trailing newlines are restored afterwards.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(false);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_debug(false);
        env.set_formatter(format_output);
        env.set_unknown_method_callback(methods::call_method);
        filters::register(&mut env);
        jinja_tests::register(&mut env);
        lookups::register(&mut env);
        datetime::register(&mut env);
        let globals = env.globals().map(|(name, _)| name.to_string()).collect();
        Templar {
            inner: Arc::new(Inner { env, globals }),
        }
    }

    /// Template every string inside `value` recursively (task args, vars). A string that is
    /// exactly one `{{ expr }}` (one trailing newline allowed, as Jinja drops it) keeps the
    /// native type of the result; other strings render to strings.
    pub fn template_value(&self, value: &Json, scope: &Scope) -> Result<Json, TemplateError> {
        if !json_has_markers(value) {
            return Ok(value.clone());
        }
        let state = self.state_for(scope, None);
        let result = self.template_json(value, &state);
        state.shared.clear();
        result
    }

    fn template_json(&self, value: &Json, state: &Arc<EvalState>) -> Result<Json, TemplateError> {
        match value {
            Json::String(s) if has_markers(s) => {
                let v = self.inner.render_to_value(s, state)?;
                materialize(&v)
            }
            Json::Array(items) => items
                .iter()
                .map(|item| self.template_json(item, state))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            Json::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.template_json(v, state)?);
                }
                Ok(Json::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// One string: native result for a lone `{{ expr }}`, text otherwise.
    pub fn template_str(&self, s: &str, scope: &Scope) -> Result<Json, TemplateError> {
        if !has_markers(s) {
            return Ok(Json::String(s.to_string()));
        }
        let state = self.state_for(scope, None);
        let result = self
            .inner
            .render_to_value(s, &state)
            .and_then(|v| materialize(&v));
        state.shared.clear();
        result
    }

    /// A bare Jinja2 expression (`when:`, `changed_when`, `failed_when`, `until`, `assert: that`),
    /// with Python truthiness. A string holding `{{ }}` is templated first, as Ansible does.
    pub fn eval_bool(&self, expr: &str, scope: &Scope) -> Result<bool, TemplateError> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Err(TemplateError::new(
                "Empty conditional expressions are not allowed.",
            ));
        }
        let state = self.state_for(scope, None);
        let result = self.eval_bool_in(expr, &state);
        state.shared.clear();
        result
    }

    fn eval_bool_in(&self, expr: &str, state: &Arc<EvalState>) -> Result<bool, TemplateError> {
        let value = if has_markers(expr) {
            let v = self.inner.render_to_value(expr, state)?;
            // A template that produced an expression's text ("x == 1") is evaluated again,
            // as Ansible did for conditionals written as `"{{ ... }}"`.
            match v.as_str() {
                Some(text) if !text.trim().is_empty() && !matches!(text, "True" | "False") => {
                    match self
                        .inner
                        .eval_expression(text.trim(), state, Backslashes::Jinja)
                    {
                        Ok(inner) => inner,
                        Err(_) => v,
                    }
                }
                Some("False") => Value::from(false),
                _ => v,
            }
        } else {
            self.inner
                .eval_expression(expr, state, Backslashes::Jinja)?
        };
        truthy(&value)
    }

    /// A bare expression's value (`with_items: x` legacy bare vars, `var:` of debug).
    pub fn eval_expr(&self, expr: &str, scope: &Scope) -> Result<Json, TemplateError> {
        let state = self.state_for(scope, None);
        let result = if has_markers(expr) {
            self.inner.render_to_value(expr, &state)
        } else {
            self.inner
                .eval_expression(expr.trim(), &state, Backslashes::Jinja)
        }
        .and_then(|v| materialize(&v));
        state.shared.clear();
        result
    }

    /// A template file for the `template` module / `template` lookup, with Ansible's settings
    /// (trim_blocks, no lstrip_blocks, trailing newlines kept, `#jinja2:` overrides) and
    /// `{% include %}`/`{% import %}`/`{% extends %}` resolved along Ansible's search path.
    pub fn render_file(
        &self,
        source: &str,
        path: &Path,
        scope: &Scope,
    ) -> Result<String, TemplateError> {
        let extra = template_vars(path, |k| scope.get(k));
        let state = self.state_for(scope, Some(extra));
        let result = self.inner.render_file_in(source, path, &state);
        state.shared.clear();
        result
    }

    /// `extra`: variables over the scope's own (the template module's).
    fn state_for(&self, scope: &Scope, extra: Option<Map>) -> Arc<EvalState> {
        Arc::new(EvalState {
            templar: self.inner.clone(),
            vars: match extra {
                Some(extra) => scope.vars.with(extra, Source::Written),
                None => scope.vars.clone(),
            },
            hostvars: scope.hostvars.clone(),
            shared: Arc::new(Shared::default()),
        })
    }
}

impl Inner {
    /// Render one string in `state`: the native value of a lone `{{ expr }}`, else the text.
    pub(crate) fn render_to_value(
        self: &Arc<Self>,
        text: &str,
        state: &Arc<EvalState>,
    ) -> Result<Value, TemplateError> {
        if !has_markers(text) {
            return Ok(Value::from(text));
        }
        let (body, overrides) = split_overrides(text)?;
        if overrides.is_none() {
            if let Some(expr) = single_expression(body) {
                return self.eval_expression(expr, state, Backslashes::Literal);
            }
        }
        let env = match &overrides {
            Some(o) => Cow::Owned(o.apply(&self.env)?),
            None => Cow::Borrowed(&self.env),
        };
        let source = escape_backslashes(body);
        let ctx = Value::from_object(RootContext {
            state: state.clone(),
        });
        let (result, frame) = context::with_frame(|| env.render_str(&source, ctx));
        let rendered = finish(result, frame, body)?;
        let rendered = overrides
            .as_ref()
            .map_or(Cow::Borrowed(rendered.as_str()), |o| o.newlines(&rendered))
            .into_owned();
        Ok(Value::from(restore_trailing_newlines(text, rendered)))
    }

    /// Evaluate a bare expression in `state`.
    pub(crate) fn eval_expression(
        self: &Arc<Self>,
        expr: &str,
        state: &Arc<EvalState>,
        backslashes: Backslashes,
    ) -> Result<Value, TemplateError> {
        let source = match backslashes {
            Backslashes::Literal => escape_expression_backslashes(expr),
            Backslashes::Jinja => Cow::Borrowed(expr),
        };
        let ctx = Value::from_object(RootContext {
            state: state.clone(),
        });
        let (result, frame) = context::with_frame(|| {
            let compiled = self.env.compile_expression_owned(source.into_owned())?;
            compiled.eval(ctx)
        });
        let value = finish(result, frame, expr)?;
        if value.is_undefined() {
            // A key a mapping lacks, or a miss on a literal: only the source names the latter.
            if let Some(message) = context::take_last_miss() {
                return Err(TemplateError::new(message));
            }
            return Err(match describe_literal_miss(expr) {
                Some(message) => TemplateError::new(message),
                None => TemplateError {
                    message: format!("'{}' is undefined", expr.trim()),
                    undefined: Some(expr.trim().to_string()),
                },
            });
        }
        Ok(value)
    }

    fn render_file_in(
        self: &Arc<Self>,
        source: &str,
        path: &Path,
        state: &Arc<EvalState>,
    ) -> Result<String, TemplateError> {
        let (body, overrides) = split_overrides(source)?;
        let mut env = match &overrides {
            Some(o) => o.apply(&self.env)?,
            None => self.env.clone(),
        };
        let search = search_path(path, |k| state.vars.get(k));
        env.set_loader(move |name| {
            for dir in &search {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return std::fs::read_to_string(&candidate).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            ErrorKind::InvalidOperation,
                            format!("could not read {}: {e}", candidate.display()),
                        )
                    });
                }
            }
            Ok(None)
        });
        let name = path.display().to_string();
        let ctx = Value::from_object(RootContext {
            state: state.clone(),
        });
        let (result, frame) = context::with_frame(|| env.render_named_str(&name, body, ctx));
        let rendered = finish(result, frame, body)?;
        let rendered = match &overrides {
            Some(o) => o.newlines(&rendered).into_owned(),
            None => rendered,
        };
        Ok(restore_trailing_newlines(source, rendered))
    }
}

/// Python truthiness; using an undefined value is an error.
fn truthy(value: &Value) -> Result<bool, TemplateError> {
    if let Some(missing) = context::as_missing(value) {
        return Err(TemplateError {
            message: missing.message().to_string(),
            undefined: Some(missing.name().to_string()),
        });
    }
    Ok(value.is_true())
}

/// A template value as plain data; undefined values inside fail with their name.
fn materialize(value: &Value) -> Result<Json, TemplateError> {
    let (result, frame) = context::with_frame(|| context::to_json(value));
    finish(result, frame, "")
}

/// Turns a render's outcome into ours: an unguarded undefined value fails even a render
/// minijinja finished, and errors get Ansible's wording and the variable's name.
fn finish<T>(
    result: Result<T, minijinja::Error>,
    mut frame: context::Frame,
    source: &str,
) -> Result<T, TemplateError> {
    match result {
        Ok(value) => match frame.unconsumed() {
            Some(err) => Err(err),
            None => Ok(value),
        },
        Err(err) => {
            if let Some(reported) = frame.take_reported() {
                return Err(reported);
            }
            if let Some(undefined) = frame.unconsumed() {
                return Err(undefined);
            }
            Err(convert_error(&err, source))
        }
    }
}

fn convert_error(err: &minijinja::Error, source: &str) -> TemplateError {
    let detail = err.detail().map(str::to_string);
    match err.kind() {
        ErrorKind::UndefinedError => {
            if let Some(detail) = detail {
                return TemplateError::new(detail);
            }
            // minijinja's own undefined (a miss on a literal dict, say): name the expression.
            let snippet = err
                .range()
                .and_then(|r| source.get(r))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            if let Some(message) = snippet.as_deref().and_then(describe_literal_miss) {
                return TemplateError::new(message);
            }
            match snippet {
                Some(expr) => TemplateError {
                    message: format!("'{expr}' is undefined"),
                    undefined: Some(expr),
                },
                None => TemplateError::new("undefined value in template"),
            }
        }
        ErrorKind::SyntaxError => TemplateError::new(format!(
            "Syntax error in template: {}{}",
            detail.unwrap_or_else(|| "invalid syntax".into()),
            err.line()
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default()
        )),
        ErrorKind::TemplateNotFound => TemplateError::new(format!(
            "the template file {} could not be found",
            err.name().unwrap_or_default()
        )),
        _ => TemplateError::new(detail.unwrap_or_else(|| err.kind().to_string())),
    }
}

/// Ansible's wording for a miss on a literal (`{'a': 1}.b`, `[1][3]`, `'abc'.x`), whose type
/// shows in the source.
fn describe_literal_miss(snippet: &str) -> Option<String> {
    let snippet = snippet.trim();
    let (base, key) = if let Some(inner) = snippet.strip_suffix(']') {
        let open = inner.rfind('[')?;
        let key = inner[open + 1..].trim();
        let key = if key.parse::<i64>().is_ok() {
            key.to_string()
        } else {
            format!("'{}'", key.trim_matches(['\'', '"']))
        };
        (&inner[..open], key)
    } else {
        let dot = snippet.rfind('.')?;
        let key = &snippet[dot + 1..];
        if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        let key = if key.parse::<i64>().is_ok() {
            key.to_string()
        } else {
            format!("'{key}'")
        };
        (&snippet[..dot], key)
    };
    let type_name = match base.trim_start().chars().next()? {
        '{' => "dict",
        '[' => "list",
        '\'' | '"' => "str",
        _ => return None,
    };
    Some(format!(
        "object of type '{type_name}' has no attribute {key}"
    ))
}

/// The formatter for `{{ }}` output: Python's `str()`, `None` as nothing (Ansible 2.19).
fn format_output(
    out: &mut minijinja::Output,
    _state: &minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if let Some(missing) = context::as_missing(value) {
        return Err(missing.raise());
    }
    if value.is_undefined() {
        return Err(match context::take_last_miss() {
            Some(message) => minijinja::Error::new(ErrorKind::UndefinedError, message),
            None => minijinja::Error::from(ErrorKind::UndefinedError),
        });
    }
    if value.is_none() {
        return Ok(());
    }
    let text = match value.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(pyfmt::py_str(value)?),
    };
    out.write_str(&text)
        .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "could not write output"))
}

/// Does the text contain Jinja at all? The hot path for untemplated strings.
pub(crate) fn has_markers(s: &str) -> bool {
    let bytes = s.as_bytes();
    if s.starts_with("#jinja2:") {
        return true;
    }
    bytes
        .windows(2)
        .any(|w| w[0] == b'{' && matches!(w[1], b'{' | b'%' | b'#'))
}

fn json_has_markers(value: &Json) -> bool {
    match value {
        Json::String(s) => has_markers(s),
        Json::Array(items) => items.iter().any(json_has_markers),
        Json::Object(map) => map.values().any(json_has_markers),
        _ => false,
    }
}

/// Jinja's default environment drops one trailing newline; Ansible adds back as many as the
/// input had, so `"line {{ x }}\n"` keeps its newline.
fn restore_trailing_newlines(template: &str, mut rendered: String) -> String {
    let want = template.len() - template.trim_end_matches('\n').len();
    let have = rendered.len() - rendered.trim_end_matches('\n').len();
    if want > have {
        rendered.push_str(&"\n".repeat(want - have));
    }
    rendered
}

// ---------------------------------------------------------------------------------------------
// Source scanning: lone expressions and Ansible's backslash escaping

/// Where the `{{ ... }}` block opening at `start` ends (index after `}}`), honouring strings
/// and brackets so `{{ {'a': {'b': 1}} }}` is one block.
fn expression_block_end(src: &str, start: usize) -> Option<(usize, usize, usize)> {
    let bytes = src.as_bytes();
    let mut i = start + 2;
    if matches!(bytes.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let inner_start = i;
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' if depth > 0 => depth -= 1,
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                let inner_end = if i > inner_start && matches!(bytes[i - 1], b'-' | b'+') {
                    i - 1
                } else {
                    i
                };
                return Some((inner_start, inner_end, i + 2));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The expression of a template that is exactly one `{{ expr }}` (plus at most one trailing
/// newline, which Jinja drops): Jinja native rendering keeps that result's type.
fn single_expression(src: &str) -> Option<&str> {
    let body = src.strip_suffix('\n').unwrap_or(src);
    if !body.starts_with("{{") {
        return None;
    }
    let (inner_start, inner_end, end) = expression_block_end(body, 0)?;
    (end == body.len()).then(|| &body[inner_start..inner_end])
}

/// How string literals' backslashes are read. Ansible 2.19 keeps them literal inside `{{ }}`
/// of a templated string (YAML already processed escapes), but a bare conditional
/// (`when: x == 'a\n'`) is plain Jinja, where `\n` is a newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backslashes {
    Literal,
    Jinja,
}

/// Ansible escapes backslashes in string literals inside `{{ }}` so they are processed once
/// (by YAML) rather than twice: `regex_replace('(x)', '\1')` means a backreference.
fn escape_backslashes(src: &str) -> Cow<'_, str> {
    if !src.contains('\\') {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 8);
    let mut pos = 0;
    while let Some(found) = src[pos..].find("{{") {
        let start = pos + found;
        let Some((inner_start, inner_end, end)) = expression_block_end(src, start) else {
            break;
        };
        out.push_str(&src[pos..inner_start]);
        out.push_str(&escape_expression_backslashes(&src[inner_start..inner_end]));
        out.push_str(&src[inner_end..end]);
        pos = end;
    }
    out.push_str(&src[pos..]);
    Cow::Owned(out)
}

/// Rewrites string literals with backslashes so minijinja reads them with each backslash literal.
fn escape_expression_backslashes(expr: &str) -> Cow<'_, str> {
    if !expr.contains('\\') {
        return Cow::Borrowed(expr);
    }
    let mut out = String::with_capacity(expr.len() + 8);
    let mut chars = expr.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '\'' && c != '"' {
            out.push(c);
            continue;
        }
        // The literal's raw text, up to the closing quote (escaped quotes don't close it).
        let mut raw = String::new();
        let mut closed = false;
        while let Some((_, d)) = chars.next() {
            if d == '\\' {
                raw.push(d);
                if let Some((_, e)) = chars.next() {
                    raw.push(e);
                }
                continue;
            }
            if d == c {
                closed = true;
                break;
            }
            raw.push(d);
        }
        if !closed {
            out.push(c);
            out.push_str(&raw);
            continue;
        }
        // Jinja2 (with Ansible's doubling) yields the raw text itself as the string's value.
        out.push('"');
        for d in raw.chars() {
            match d {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                other => out.push(other),
            }
        }
        out.push('"');
    }
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------
// `#jinja2:` overrides

/// Settings from a template's `#jinja2: key: value, ...` first line.
#[derive(Debug, Default)]
struct Overrides {
    trim_blocks: Option<bool>,
    lstrip_blocks: Option<bool>,
    keep_trailing_newline: Option<bool>,
    newline_sequence: Option<String>,
    block: Option<(String, String)>,
    variable: Option<(String, String)>,
    comment: Option<(String, String)>,
    block_start: Option<String>,
    block_end: Option<String>,
    variable_start: Option<String>,
    variable_end: Option<String>,
    comment_start: Option<String>,
    comment_end: Option<String>,
}

fn split_overrides(text: &str) -> Result<(&str, Option<Overrides>), TemplateError> {
    let Some(rest) = text.strip_prefix("#jinja2:") else {
        return Ok((text, None));
    };
    let Some((line, body)) = rest.split_once('\n') else {
        return Err(TemplateError::new(
            "Missing newline after '#jinja2:' override.",
        ));
    };
    let mut o = Overrides::default();
    for pair in line.split(',') {
        let Some((key, val)) = pair.split_once(':') else {
            return Err(TemplateError::new(format!(
                "Missing key-value separator `:` in '#jinja2:' override pair {:?}.",
                pair
            )));
        };
        let val = val.trim();
        let as_bool = || match val {
            "True" | "true" => Ok(true),
            "False" | "false" => Ok(false),
            _ => Err(TemplateError::new(format!(
                "Invalid '#jinja2:' override value {val:?}."
            ))),
        };
        let as_str = || -> Result<String, TemplateError> {
            let unquoted = val
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| val.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .ok_or_else(|| {
                    TemplateError::new(format!("Invalid '#jinja2:' override value {val:?}."))
                })?;
            Ok(unquoted
                .replace("\\r", "\r")
                .replace("\\n", "\n")
                .replace("\\\\", "\\"))
        };
        match key.trim() {
            "trim_blocks" => o.trim_blocks = Some(as_bool()?),
            "lstrip_blocks" => o.lstrip_blocks = Some(as_bool()?),
            "keep_trailing_newline" => o.keep_trailing_newline = Some(as_bool()?),
            "newline_sequence" => o.newline_sequence = Some(as_str()?),
            "block_start_string" => o.block_start = Some(as_str()?),
            "block_end_string" => o.block_end = Some(as_str()?),
            "variable_start_string" => o.variable_start = Some(as_str()?),
            "variable_end_string" => o.variable_end = Some(as_str()?),
            "comment_start_string" => o.comment_start = Some(as_str()?),
            "comment_end_string" => o.comment_end = Some(as_str()?),
            other => {
                return Err(TemplateError::new(format!(
                    "Invalid '#jinja2:' override key {other:?}."
                )))
            }
        }
    }
    let pair = |s: &Option<String>, e: &Option<String>, ds: &str, de: &str| {
        (s.is_some() || e.is_some()).then(|| {
            (
                s.clone().unwrap_or_else(|| ds.into()),
                e.clone().unwrap_or_else(|| de.into()),
            )
        })
    };
    o.block = pair(&o.block_start, &o.block_end, "{%", "%}");
    o.variable = pair(&o.variable_start, &o.variable_end, "{{", "}}");
    o.comment = pair(&o.comment_start, &o.comment_end, "{#", "#}");
    Ok((body, Some(o)))
}

impl Overrides {
    fn apply(&self, base: &Environment<'static>) -> Result<Environment<'static>, TemplateError> {
        let mut env = base.clone();
        if let Some(v) = self.trim_blocks {
            env.set_trim_blocks(v);
        }
        if let Some(v) = self.lstrip_blocks {
            env.set_lstrip_blocks(v);
        }
        if let Some(v) = self.keep_trailing_newline {
            env.set_keep_trailing_newline(v);
        }
        if self.block.is_some() || self.variable.is_some() || self.comment.is_some() {
            let mut builder = SyntaxConfig::builder();
            if let Some((s, e)) = &self.block {
                builder.block_delimiters(s.clone(), e.clone());
            }
            if let Some((s, e)) = &self.variable {
                builder.variable_delimiters(s.clone(), e.clone());
            }
            if let Some((s, e)) = &self.comment {
                builder.comment_delimiters(s.clone(), e.clone());
            }
            let syntax = builder
                .build()
                .map_err(|e| TemplateError::new(format!("invalid template delimiters: {e}")))?;
            env.set_syntax(syntax);
        }
        Ok(env)
    }

    /// The output with `newline_sequence` applied.
    fn newlines<'a>(&self, rendered: &'a str) -> Cow<'a, str> {
        match self.newline_sequence.as_deref() {
            Some(seq) if seq != "\n" => Cow::Owned(rendered.replace('\n', seq)),
            _ => Cow::Borrowed(rendered),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Template files

/// Where `{% include %}` & co look, as Ansible's template action builds it: the role and
/// play search path, then the template's own directory, each with `templates/` first.
fn search_path<'a>(template: &Path, var: impl Fn(&str) -> Option<&'a Json>) -> Vec<PathBuf> {
    let mut bases: Vec<PathBuf> = Vec::new();
    match var("ansible_search_path") {
        Some(Json::Array(items)) => {
            bases.extend(items.iter().filter_map(Json::as_str).map(PathBuf::from));
        }
        _ => {
            for key in ["role_path", "playbook_dir"] {
                if let Some(p) = var(key).and_then(Json::as_str) {
                    bases.push(PathBuf::from(p));
                }
            }
        }
    }
    if let Some(dir) = template.parent() {
        bases.push(dir.to_path_buf());
    }
    let mut out = Vec::with_capacity(bases.len() * 2);
    for base in bases {
        out.push(base.join("templates"));
        out.push(base);
    }
    out
}

/// The variables the template module adds (`template_path`, `ansible_managed`, ...).
fn template_vars<'a>(path: &Path, var: impl Fn(&str) -> Option<&'a Json>) -> Map {
    let mut out = Map::new();
    let full = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    out.insert(
        "template_path".into(),
        Json::from(path.display().to_string()),
    );
    out.insert(
        "template_fullpath".into(),
        Json::from(full.display().to_string()),
    );
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        out.insert("template_host".into(), Json::from(host.trim()));
    }
    if let Some(owner) = file_owner(path) {
        out.insert("template_uid".into(), Json::from(owner));
    }
    if var("ansible_managed").is_none() {
        out.insert("ansible_managed".into(), Json::from("Ansible managed"));
    }
    out
}

/// The owner's user name (or uid), as Ansible's `template_uid`.
fn file_owner(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(path).ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| uid.to_string()))
}
