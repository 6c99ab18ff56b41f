//! What a template sees: raw variables resolved lazily, `hostvars`, and undefined values that keep their name.
//!
//! Variables arrive raw (`app_root: "{{ base }}/srv"`). Copying or pre-templating them per task
//! would be wasteful and wrong (Ansible resolves on access), so the render context is an
//! `Object` that templates a value only when the template touches it, caching the result for
//! the rest of the top-level call and detecting cycles by the address of the raw string.
//!
//! Undefined values: minijinja's strict mode errors on `foo.bar` when `foo` is undefined,
//! while Ansible allows the chain and only fails on use (`foo.bar | default(1)` is fine).
//! So a miss yields a [`Missing`] object that chains, remembers the first miss's message, and
//! is "consumed" by `default`/`defined`/`undefined`/`mandatory`. Any Missing left unconsumed
//! when a render ends means the template used an undefined value, which is then the error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, ErrorKind};
use serde_json::Value as Json;

use super::{HostVars, Inner, Map, Source, TemplateError, Vars};

/// Deeper lazy resolution than this is certainly a runaway chain.
const MAX_RESOLVE_DEPTH: usize = 64;

/// The placeholder `omit` evaluates to; task-argument handling drops arguments equal to it.
pub const OMIT_TOKEN: &str = "__omit_place_holder__play__";

// ---------------------------------------------------------------------------------------------
// Per-render bookkeeping of undefined values (a thread-local stack: renders nest, one per thread)

#[derive(Default)]
pub(crate) struct Frame {
    missing: Vec<Arc<Missing>>,
    /// The precise error to report, set by code that knows better than minijinja's error.
    reported: Option<TemplateError>,
}

impl Frame {
    /// The undefined value the render used without a guard, if any.
    pub(crate) fn unconsumed(&self) -> Option<TemplateError> {
        self.missing
            .iter()
            .find(|m| !m.consumed.load(Ordering::Relaxed))
            .map(|m| m.to_error())
    }
    pub(crate) fn take_reported(&mut self) -> Option<TemplateError> {
        self.reported.take()
    }
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// Runs one render with its own frame and hands the frame back for the final checks.
pub(crate) fn with_frame<R>(f: impl FnOnce() -> R) -> (R, Frame) {
    /// Pops the frame if `f` unwinds, so later renders on this thread stay consistent.
    struct PopOnUnwind {
        armed: bool,
    }
    impl Drop for PopOnUnwind {
        fn drop(&mut self) {
            if self.armed {
                FRAMES.with(|frames| {
                    frames.borrow_mut().pop();
                });
            }
        }
    }
    FRAMES.with(|frames| {
        let mut frames = frames.borrow_mut();
        if frames.is_empty() {
            // A new top-level render: an earlier render's miss says nothing about this one.
            LAST_MISS.with(|last| last.borrow_mut().take());
        }
        frames.push(Frame::default());
    });
    let mut guard = PopOnUnwind { armed: true };
    let result = f();
    guard.armed = false;
    let frame = FRAMES
        .with(|frames| frames.borrow_mut().pop())
        .unwrap_or_default();
    (result, frame)
}

/// Records the precise error for the current render (first one wins: it is the cause).
pub(crate) fn report(err: TemplateError) {
    FRAMES.with(|frames| {
        if let Some(top) = frames.borrow_mut().last_mut() {
            if top.reported.is_none() {
                top.reported = Some(err);
            }
        }
    });
}

/// An invalid value carrying `err`: minijinja raises it as soon as the template touches it.
pub(crate) fn failed_value(err: TemplateError) -> Value {
    let mj = Error::new(ErrorKind::InvalidOperation, err.message.clone());
    report(err);
    Value::from(mj)
}

/// Turns an invalid value into its error (the precise one was reported when it was made).
pub(crate) fn check_valid(value: &Value) -> Result<(), Error> {
    if value.kind() == ValueKind::Invalid {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "a value failed to template",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Undefined values

/// An undefined variable or attribute; see the module docs.
pub struct Missing {
    message: String,
    name: String,
    consumed: AtomicBool,
}

impl fmt::Debug for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Missing({})", self.message)
    }
}

impl Missing {
    /// A new undefined value, registered with the current render.
    pub(crate) fn value(message: impl Into<String>, name: impl Into<String>) -> Value {
        let missing = Arc::new(Missing {
            message: message.into(),
            name: name.into(),
            consumed: AtomicBool::new(false),
        });
        FRAMES.with(|frames| {
            if let Some(top) = frames.borrow_mut().last_mut() {
                top.missing.push(missing.clone());
            }
        });
        Value::from_dyn_object(missing)
    }

    /// `'name' is undefined`.
    pub(crate) fn variable(name: &str) -> Value {
        Self::value(format!("'{name}' is undefined"), name)
    }

    /// `object of type 'dict' has no attribute 'x'`, Ansible 2.19's wording.
    pub(crate) fn attribute(type_name: &str, key: &Value) -> Value {
        let shown = match key.as_str() {
            Some(s) => format!("'{s}'"),
            None => key.to_string(),
        };
        let name = key.as_str().map_or_else(|| key.to_string(), str::to_string);
        Self::value(
            format!("object of type '{type_name}' has no attribute {shown}"),
            name,
        )
    }

    /// Marks this undefined value as handled (by `default`, `is defined`, ...).
    pub fn consume(&self) {
        self.consumed.store(true, Ordering::Relaxed);
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn to_error(&self) -> TemplateError {
        TemplateError {
            message: self.message.clone(),
            undefined: Some(self.name.clone()),
        }
    }

    /// The error for using this value; recorded so the caller sees the variable's name.
    pub fn raise(&self) -> Error {
        report(self.to_error());
        Error::new(ErrorKind::UndefinedError, self.message.clone())
    }
}

impl Object for Missing {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
    /// Chaining: `foo.bar.baz` of an undefined `foo` is still "'foo' is undefined".
    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_dyn_object(self.clone()))
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        report(self.to_error());
        Enumerator::NonEnumerable
    }
    fn is_true(self: &Arc<Self>) -> bool {
        // Cannot fail here; staying unconsumed makes the render fail when it ends.
        false
    }
    fn call(
        self: &Arc<Self>,
        _state: &minijinja::State<'_, '_>,
        _args: &[Value],
    ) -> Result<Value, Error> {
        Err(self.raise())
    }
    fn call_method(
        self: &Arc<Self>,
        _state: &minijinja::State<'_, '_>,
        _method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        Err(self.raise())
    }
    fn render(self: &Arc<Self>, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        report(self.to_error());
        Ok(())
    }
}

/// A key a mapping does not have, looked up by `d[key]` or by `key in d`: minijinja asks
/// `get_value` for both, and `in` counts any `Some` as found, so the answer must be `None`
/// (`d.name` goes through `get_value_by_str`, which gives the chaining [`Missing`]). The
/// miss is remembered so that an error it causes says what Ansible says.
fn missing_key(type_name: &str, key: &Value) -> Option<Value> {
    let shown = match key.as_str() {
        Some(s) => format!("'{s}'"),
        None => key.to_string(),
    };
    LAST_MISS.with(|last| {
        *last.borrow_mut() = Some(format!(
            "object of type '{type_name}' has no attribute {shown}"
        ))
    });
    None
}

thread_local! {
    /// The last key a mapping lacked (see [`missing_key`]).
    static LAST_MISS: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Takes the message of the last missing key looked up on this thread.
pub(crate) fn take_last_miss() -> Option<String> {
    LAST_MISS.with(|last| last.borrow_mut().take())
}

/// The `Missing` behind a value, if it is one.
pub(crate) fn as_missing(value: &Value) -> Option<&Missing> {
    value.downcast_object_ref::<Missing>()
}

/// Undefined in either form (minijinja's own or ours).
pub(crate) fn is_undefined(value: &Value) -> bool {
    value.is_undefined() || as_missing(value).is_some()
}

// ---------------------------------------------------------------------------------------------
// Evaluation state

/// Shared by every scope of one top-level call (hostvars scopes included).
#[derive(Default)]
pub(crate) struct Shared {
    /// Resolved template leaves, by the address of their raw string.
    cache: Mutex<HashMap<usize, Value>>,
    /// Leaves being resolved right now, innermost last: (address, variable path).
    resolving: Mutex<Vec<(usize, String)>>,
}

impl Shared {
    /// Cached values can point back at the state holding the cache; clearing breaks that cycle.
    pub(crate) fn clear(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }
}

/// Everything needed to resolve variables for one host during one top-level call.
pub(crate) struct EvalState {
    pub templar: Arc<Inner>,
    pub vars: Vars,
    pub hostvars: Option<Arc<dyn HostVars>>,
    pub shared: Arc<Shared>,
}

impl fmt::Debug for EvalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvalState({:?})", self.vars)
    }
}

impl EvalState {
    /// The state for another host's variables in the same call.
    fn for_host(self: &Arc<Self>, vars: Vars) -> Arc<EvalState> {
        Arc::new(EvalState {
            templar: self.templar.clone(),
            vars,
            hostvars: self.hostvars.clone(),
            shared: self.shared.clone(),
        })
    }

    /// A variable's value as templates see it (resolved lazily).
    pub(crate) fn raw_var(self: &Arc<Self>, name: &str) -> Option<Value> {
        let found = self.vars.find(name)?;
        let path = match found.fact {
            Some(fact) => vec![Seg::Key("ansible_facts".into()), Seg::Key(fact.into())],
            None => vec![Seg::Key(name.into())],
        };
        let origin = Origin::Vars(found.layer.clone());
        Some(match found.source {
            Source::Written => self.resolve(&origin, path, found.raw),
            Source::Data => untemplated(origin, path, found.raw),
        })
    }

    /// The value a template sees for raw data at `path`: lazily templated strings, containers as `Node`s.
    fn resolve(self: &Arc<Self>, origin: &Origin, path: Vec<Seg>, raw: &Json) -> Value {
        match raw {
            Json::String(s) if super::has_markers(s) => self.resolve_leaf(raw, s, &path),
            Json::Object(_) | Json::Array(_) => Value::from_object(Node {
                origin: origin.clone(),
                path,
                state: Some(self.clone()),
            }),
            other => scalar(other),
        }
    }

    fn resolve_leaf(self: &Arc<Self>, raw: &Json, text: &str, path: &[Seg]) -> Value {
        let key = std::ptr::from_ref(raw) as usize;
        if let Some(hit) = self
            .shared
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return hit;
        }
        let name = path_name(path);
        {
            let Ok(mut resolving) = self.shared.resolving.lock() else {
                return failed_value(TemplateError::new("variable resolution state is poisoned"));
            };
            if let Some(pos) = resolving.iter().position(|(k, _)| *k == key) {
                let mut chain: Vec<String> =
                    resolving[pos..].iter().map(|(_, n)| n.clone()).collect();
                chain.push(name);
                return failed_value(TemplateError::new(format!(
                    "Recursive loop detected in template: {}",
                    chain.join(" -> ")
                )));
            }
            if resolving.len() >= MAX_RESOLVE_DEPTH {
                return failed_value(TemplateError::new(format!(
                    "Recursive loop detected in template: more than {MAX_RESOLVE_DEPTH} nested variables while resolving '{name}'"
                )));
            }
            resolving.push((key, name));
        }
        let result = self.templar.render_to_value(text, self);
        if let Ok(mut resolving) = self.shared.resolving.lock() {
            resolving.pop();
        }
        match result {
            Ok(value) => {
                if let Ok(mut cache) = self.shared.cache.lock() {
                    cache.insert(key, value.clone());
                }
                value
            }
            // Undefined inside a variable's template makes the variable undefined:
            // `x | default(1)` and `x is defined` still work, as in Ansible.
            Err(TemplateError {
                message,
                undefined: Some(name),
            }) => Missing::value(message, name),
            Err(err) => failed_value(err),
        }
    }
}

fn path_name(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push_str(&format!("[{i}]"));
            }
        }
    }
    out
}

/// A JSON scalar as a template value.
/// Raw data at `path` as it is: containers as `Node`s that never template, scalars as values.
fn untemplated(origin: Origin, path: Vec<Seg>, raw: &Json) -> Value {
    match raw {
        Json::Object(_) | Json::Array(_) => Value::from_object(Node {
            origin,
            path,
            state: None,
        }),
        other => scalar(other),
    }
}

pub(crate) fn scalar(raw: &Json) -> Value {
    match raw {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(_) | Json::Object(_) => Value::from_object(Node::data(Arc::new(raw.clone()))),
    }
}

/// Plain data (filter results, lookups) as a template value: no lazy templating inside.
pub(crate) fn data_value(json: Json) -> Value {
    match json {
        Json::Array(_) | Json::Object(_) => Value::from_object(Node::data(Arc::new(json))),
        other => scalar(&other),
    }
}

// ---------------------------------------------------------------------------------------------
// Containers

#[derive(Clone)]
enum Origin {
    Vars(Arc<Map>),
    Data(Arc<Json>),
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

enum Target<'a> {
    Map(&'a Map),
    Seq(&'a Vec<Json>),
    Other,
}

/// A dict or list inside raw variables or plain data, addressed by path so nothing is copied.
pub(crate) struct Node {
    origin: Origin,
    path: Vec<Seg>,
    /// `Some`: strings inside are raw variables, templated on access in this state.
    state: Option<Arc<EvalState>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({})", path_name(&self.path))
    }
}

impl Node {
    fn data(json: Arc<Json>) -> Node {
        Node {
            origin: Origin::Data(json),
            path: Vec::new(),
            state: None,
        }
    }

    fn target(&self) -> Target<'_> {
        let mut current: &Json = match &self.origin {
            Origin::Vars(map) => {
                let Some((first, rest)) = self.path.split_first() else {
                    return Target::Map(map);
                };
                let Seg::Key(k) = first else {
                    return Target::Other;
                };
                let Some(v) = map.get(k) else {
                    return Target::Other;
                };
                return navigate(v, rest);
            }
            Origin::Data(json) => json,
        };
        for seg in &self.path {
            current = match (seg, current) {
                (Seg::Key(k), Json::Object(m)) => match m.get(k) {
                    Some(v) => v,
                    None => return Target::Other,
                },
                (Seg::Index(i), Json::Array(a)) => match a.get(*i) {
                    Some(v) => v,
                    None => return Target::Other,
                },
                _ => return Target::Other,
            };
        }
        as_target(current)
    }

    fn child(&self, seg: Seg, raw: &Json) -> Value {
        let templated = self.templates(&seg);
        let mut path = self.path.clone();
        path.push(seg);
        match (&self.state, templated) {
            (Some(state), true) => state.resolve(&self.origin, path, raw),
            _ => untemplated(self.origin.clone(), path, raw),
        }
    }

    /// Whether strings below `seg` are templates: not in plain data, nor under a name the
    /// run made (a registered result, a fact) when this node is all of a host's variables
    /// (`vars`, `hostvars[h]`), whose names each come from their own layer.
    fn templates(&self, seg: &Seg) -> bool {
        let Some(state) = &self.state else {
            return false;
        };
        match (self.path.is_empty(), seg) {
            (true, Seg::Key(name)) => state
                .vars
                .find(name)
                .is_none_or(|found| found.source == Source::Written),
            _ => true,
        }
    }

    /// The resolved plain data, walking raw JSON directly and templating only template strings.
    pub(crate) fn to_json(&self) -> Result<Json, Error> {
        match self.target() {
            Target::Map(m) => {
                let mut out = Map::with_capacity(m.len());
                for (k, v) in m {
                    let mut path = self.path.clone();
                    path.push(Seg::Key(k.clone()));
                    out.insert(k.clone(), self.raw_to_json(path, v)?);
                }
                Ok(Json::Object(out))
            }
            Target::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    let mut path = self.path.clone();
                    path.push(Seg::Index(i));
                    out.push(self.raw_to_json(path, v)?);
                }
                Ok(Json::Array(out))
            }
            Target::Other => Ok(Json::Null),
        }
    }

    fn raw_to_json(&self, path: Vec<Seg>, raw: &Json) -> Result<Json, Error> {
        let Some(state) = &self.state else {
            return Ok(raw.clone());
        };
        if self.path.is_empty() && path.len() == 1 && !self.templates(&path[0]) {
            return Ok(raw.clone());
        }
        if !contains_template(raw) {
            return Ok(raw.clone());
        }
        match raw {
            Json::String(s) => to_json(&state.resolve_leaf(raw, s, &path)),
            Json::Object(m) => {
                let mut out = Map::with_capacity(m.len());
                for (k, v) in m {
                    let mut p = path.clone();
                    p.push(Seg::Key(k.clone()));
                    out.insert(k.clone(), self.raw_to_json(p, v)?);
                }
                Ok(Json::Object(out))
            }
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(Seg::Index(i));
                    out.push(self.raw_to_json(p, v)?);
                }
                Ok(Json::Array(out))
            }
            other => Ok(other.clone()),
        }
    }
}

fn contains_template(raw: &Json) -> bool {
    match raw {
        Json::String(s) => super::has_markers(s),
        Json::Array(items) => items.iter().any(contains_template),
        Json::Object(m) => m.values().any(contains_template),
        _ => false,
    }
}

fn navigate<'a>(mut current: &'a Json, path: &[Seg]) -> Target<'a> {
    for seg in path {
        current = match (seg, current) {
            (Seg::Key(k), Json::Object(m)) => match m.get(k) {
                Some(v) => v,
                None => return Target::Other,
            },
            (Seg::Index(i), Json::Array(a)) => match a.get(*i) {
                Some(v) => v,
                None => return Target::Other,
            },
            _ => return Target::Other,
        };
    }
    as_target(current)
}

fn as_target(v: &Json) -> Target<'_> {
    match v {
        Json::Object(m) => Target::Map(m),
        Json::Array(a) => Target::Seq(a),
        _ => Target::Other,
    }
}

/// Python's name for a value's type, as Ansible's messages use it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

impl Object for Node {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.target() {
            Target::Seq(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.target() {
            Target::Map(m) => {
                let found = match key.as_str() {
                    Some(k) => m.get_key_value(k),
                    // YAML int/bool keys are stored as text; `d[1]` still finds key "1".
                    None if key.is_number() || key.kind() == ValueKind::Bool => {
                        let text = super::pyfmt::py_str(key).ok()?;
                        m.get_key_value(text.as_str())
                    }
                    None => None,
                };
                match found {
                    Some((k, v)) => Some(self.child(Seg::Key(k.clone()), v)),
                    None => missing_key("dict", key),
                }
            }
            Target::Seq(items) => {
                let idx = key.as_i64().and_then(|i| {
                    let len = items.len() as i64;
                    let i = if i < 0 { i + len } else { i };
                    (0..len).contains(&i).then_some(i as usize)
                });
                match idx {
                    Some(i) => Some(self.child(Seg::Index(i), &items[i])),
                    None => Some(Missing::attribute("list", key)),
                }
            }
            Target::Other => None,
        }
    }

    /// `d.name`: a missing key is Ansible's undefined attribute (it chains: `d.a.b is defined`).
    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let key = Value::from(key);
        match self.target() {
            Target::Map(_) => self
                .get_value(&key)
                .or_else(|| Some(Missing::attribute("dict", &key))),
            _ => self.get_value(&key),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.target() {
            Target::Map(m) => {
                Enumerator::Values(m.keys().map(|k| Value::from(k.as_str())).collect())
            }
            Target::Seq(items) => Enumerator::Seq(items.len()),
            Target::Other => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.target() {
            Target::Map(m) => Some(m.len()),
            Target::Seq(items) => Some(items.len()),
            Target::Other => Some(0),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display is infallible here; a failing leaf was reported and fails the render anyway.
        let text = super::pyfmt::py_repr(&Value::from_dyn_object(self.clone())).unwrap_or_default();
        f.write_str(&text)
    }
}

// ---------------------------------------------------------------------------------------------
// The render context and hostvars

/// The root of name lookups in a render.
#[derive(Debug)]
pub(crate) struct RootContext {
    pub state: Arc<EvalState>,
}

/// Name under which filters and functions find the current state (not a valid Jinja identifier
/// a playbook would use by accident).
pub(crate) const STATE_KEY: &str = "__play_eval_state__";

/// A handle to the state for lookups and functions that need the variables.
#[derive(Debug)]
pub(crate) struct StateHandle(pub Arc<EvalState>);

impl Object for StateHandle {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

/// The current render's state, from a filter or function.
pub(crate) fn current_state(state: &minijinja::State) -> Option<Arc<EvalState>> {
    state
        .lookup(STATE_KEY)
        .and_then(|v| v.downcast_object::<StateHandle>())
        .map(|h| h.0.clone())
}

impl Object for RootContext {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if let Some(v) = self.state.raw_var(name) {
            return Some(v);
        }
        match name {
            STATE_KEY => return Some(Value::from_object(StateHandle(self.state.clone()))),
            "hostvars" if self.state.hostvars.is_some() => {
                return Some(Value::from_object(HostVarsObject {
                    state: self.state.clone(),
                }))
            }
            "vars" => {
                return Some(Value::from_object(Node {
                    origin: Origin::Vars(self.state.vars.flat()),
                    path: Vec::new(),
                    state: Some(self.state.clone()),
                }))
            }
            "omit" => return Some(Value::from(OMIT_TOKEN)),
            _ => {}
        }
        // Functions (lookup, range, ...) live in the environment, consulted after the context.
        if self.state.templar.globals.contains(name) {
            return None;
        }
        Some(Missing::variable(name))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.state
                .vars
                .flat()
                .keys()
                .map(|k| Value::from(k.as_str()))
                .collect(),
        )
    }
}

/// `hostvars`: each host's variables, resolved in that host's own scope.
#[derive(Debug)]
struct HostVarsObject {
    state: Arc<EvalState>,
}

impl Object for HostVarsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let hostvars = self.state.hostvars.as_ref()?;
        let host = key.as_str()?;
        match hostvars.vars_of(host) {
            Some(vars) => {
                let flat = vars.flat();
                let state = self.state.for_host(vars);
                Some(Value::from_object(Node {
                    origin: Origin::Vars(flat),
                    path: Vec::new(),
                    state: Some(state),
                }))
            }
            None => missing_key("HostVars", key),
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let key = Value::from(key);
        self.get_value(&key)
            .or_else(|| Some(Missing::attribute("HostVars", &key)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match &self.state.hostvars {
            Some(h) => Enumerator::Values(h.host_names().into_iter().map(Value::from).collect()),
            None => Enumerator::Empty,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Back to plain data

/// The plain data of a template value; an undefined value anywhere inside is an error.
pub(crate) fn to_json(value: &Value) -> Result<Json, Error> {
    if let Some(node) = value.downcast_object_ref::<Node>() {
        return node.to_json();
    }
    Ok(match value.kind() {
        ValueKind::Undefined => {
            return Err(Error::new(ErrorKind::UndefinedError, "undefined value"));
        }
        ValueKind::None => Json::Null,
        ValueKind::Bool => Json::Bool(value.is_true()),
        ValueKind::Number => {
            if value.is_integer() {
                if let Some(i) = value.as_i64() {
                    Json::from(i)
                } else if let Ok(u) = u64::try_from(value.clone()) {
                    Json::from(u)
                } else {
                    float_json(f64::try_from(value.clone()).unwrap_or(f64::NAN))
                }
            } else {
                float_json(f64::try_from(value.clone()).unwrap_or(f64::NAN))
            }
        }
        ValueKind::String => Json::String(value.as_str().unwrap_or_default().to_string()),
        ValueKind::Bytes => {
            Json::String(String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned())
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let mut out = Vec::new();
            for item in value.try_iter()? {
                check_valid(&item)?;
                out.push(to_json(&item)?);
            }
            Json::Array(out)
        }
        ValueKind::Map => {
            let mut out = Map::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                check_valid(&item)?;
                let k = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => super::pyfmt::py_str(&key)?,
                };
                out.insert(k, to_json(&item)?);
            }
            Json::Object(out)
        }
        ValueKind::Plain => {
            if let Some(missing) = as_missing(value) {
                return Err(missing.raise());
            }
            Json::String(value.to_string())
        }
        _ => {
            check_valid(value)?;
            Json::String(value.to_string())
        }
    })
}

fn float_json(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// `value[key]` if present (minijinja's own misses are `None`; ours come back as `Missing`).
pub(crate) fn item_opt(value: &Value, key: &Value) -> Option<Value> {
    match value.get_item(key) {
        Ok(v) if !v.is_undefined() => Some(v),
        _ => None,
    }
}

/// A list built by a filter or method: like minijinja's, but a miss is a named `Missing`.
#[derive(Debug)]
pub(crate) struct List(pub Vec<Value>);

impl Object for List {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let len = self.0.len() as i64;
        let idx = key.as_i64().map(|i| if i < 0 { i + len } else { i });
        match idx {
            Some(i) if (0..len).contains(&i) => Some(self.0[i as usize].clone()),
            _ if key.is_number() => Some(Missing::attribute("list", key)),
            _ => None,
        }
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = super::pyfmt::py_repr(&Value::from_dyn_object(self.clone())).unwrap_or_default();
        f.write_str(&text)
    }
}

/// A filter's list result.
pub(crate) fn list_value(items: Vec<Value>) -> Value {
    Value::from_object(List(items))
}

/// A dict built by a filter or method, keeping insertion order; a miss is a named `Missing`.
#[derive(Debug)]
pub(crate) struct Dict(pub indexmap::IndexMap<String, Value>);

impl Object for Dict {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str().and_then(|k| self.0.get(k)) {
            Some(v) => Some(v.clone()),
            None => missing_key("dict", key),
        }
    }
    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let key = Value::from(key);
        self.get_value(&key)
            .or_else(|| Some(Missing::attribute("dict", &key)))
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = super::pyfmt::py_repr(&Value::from_dyn_object(self.clone())).unwrap_or_default();
        f.write_str(&text)
    }
}

/// A filter's dict result.
pub(crate) fn dict_value(entries: Vec<(String, Value)>) -> Value {
    Value::from_object(Dict(entries.into_iter().collect()))
}

/// A filter's list result from anything convertible to values.
pub(crate) fn list_of<T: Into<Value>>(items: Vec<T>) -> Value {
    list_value(items.into_iter().map(Into::into).collect())
}
