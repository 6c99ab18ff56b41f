//! Roles: reading a role's folders, resolving its dependencies (a DAG, cycles refused), and
//! compiling each call of a role into the tasks and handlers the executor runs.
//!
//! A role is compiled the way Ansible compiles it: its dependencies' tasks first (each
//! dependency compiled the same way, recursively), then its own, then an implicit
//! `role_complete` marker. Every task carries a `RoleCall`: the role's name and path, the
//! variables it sees along the chain of roles that led to it, and the identity Ansible uses to
//! run a role once per host and play (same role, same parameters: once; other parameters: again).
//! That de-duplication happens when the play runs, as in Ansible: a role whose tasks were all
//! skipped on a host has not "run" there, and runs again when it comes up next.

pub mod argspec;
pub mod graph;
pub mod search;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value};

use crate::error::{exit, Diagnostic, Span};
use crate::playbook::{Inherited, Loader, Task, OVERRIDE_KEYWORDS};
use crate::vars::RoleVars;
use crate::yaml::{self, Node, NodeKind};
pub use graph::RoleGraph;
pub use search::RoleSearch;

/// Keys of a role entry that are keywords (Ansible's Role attributes); every other key is a
/// role parameter.
const ROLE_ENTRY_KEYWORDS: &[&str] = &[
    "role",
    "name",
    "when",
    "tags",
    "vars",
    "environment",
    "collections",
    "debugger",
];

/// Keys `meta/main.yml` may hold.
const META_KEYS: &[&str] = &[
    "dependencies",
    "allow_duplicates",
    "galaxy_info",
    "argument_specs",
    "collections",
];

/// The arguments `include_role` and `import_role` take.
pub const ROLE_TASK_ARGS: &[&str] = &[
    "name",
    "role",
    "tasks_from",
    "vars_from",
    "defaults_from",
    "handlers_from",
    "apply",
    "public",
    "allow_duplicates",
    "rolespec_validate",
];

/// A role as a play's `roles:`, a `meta/main.yml` dependency, or an import/include names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    /// The name as written (a name, `namespace.name`, or a path; may hold a template).
    pub name: String,
    /// Where it was written: errors point here, and it is the dependency edge's place.
    pub span: Span,
    /// Role parameters (`- {role: x, port: 80}`).
    pub params: Map<String, Value>,
    /// The entry's `vars:` (role-vars level, for this role and its dependencies).
    pub vars: Map<String, Value>,
    /// Keywords the role's tasks inherit (`when`, `tags`, `become`, `environment`, ...).
    pub keywords: Map<String, Value>,
}

impl RoleSpec {
    /// A role named by `import_role` or `include_role` (their options are not role params).
    pub fn named(name: impl Into<String>, span: Span) -> Self {
        RoleSpec {
            name: name.into(),
            span,
            params: Map::new(),
            vars: Map::new(),
            keywords: Map::new(),
        }
    }

    /// One entry of `roles:` or of `dependencies:`: a name, or a mapping with `role` (or
    /// `name`), keywords, and parameters.
    pub fn from_node(node: &Node) -> Result<Self, Diagnostic> {
        let bad = |msg: String| Diagnostic::new(msg).at(node.span.clone());
        match &node.kind {
            NodeKind::Str(s) if s.contains(',') => {
                Err(bad(format!("Invalid old style role requirement: {s}")))
            }
            NodeKind::Str(s) => Ok(RoleSpec::named(s.clone(), node.span.clone())),
            NodeKind::Int(n) => Ok(RoleSpec::named(n.to_string(), node.span.clone())),
            NodeKind::Map(_) => {
                let mut spec = RoleSpec::named(String::new(), node.span.clone());
                let mut role = None;
                let mut name = None;
                for (key, value) in node.entries().unwrap_or_default() {
                    match key.as_str() {
                        "role" => role = Some(value),
                        "name" => name = Some(value),
                        "vars" => match value.to_value() {
                            Value::Object(m) => spec.vars = m,
                            Value::Null => {}
                            _ => {
                                return Err(Diagnostic::new(format!(
                                    "vars must be a mapping, found {}",
                                    value.type_name()
                                ))
                                .at(value.span.clone()))
                            }
                        },
                        k if ROLE_ENTRY_KEYWORDS.contains(&k) || OVERRIDE_KEYWORDS.contains(&k) => {
                            spec.keywords.insert(key.clone(), value.to_value());
                        }
                        _ => {
                            spec.params.insert(key.clone(), value.to_value());
                        }
                    }
                }
                let name_node = role.or(name);
                spec.name = match name_node.map(|n| &n.kind) {
                    Some(NodeKind::Str(s)) if !s.is_empty() => s.clone(),
                    Some(NodeKind::Int(n)) => n.to_string(),
                    // A Galaxy requirement (`src: ...`) names the role after its source.
                    None if spec.params.contains_key("src") => {
                        let src = spec.params.get("src").and_then(Value::as_str).unwrap_or("");
                        name_from_src(src)
                    }
                    _ => return Err(bad("role definitions must contain a role name".into())),
                };
                if let Some(n) = name_node {
                    spec.span = n.span.clone();
                }
                Ok(spec)
            }
            _ => Err(bad(format!(
                "Invalid role definition: expected a name or a mapping, found {}",
                node.type_name()
            ))),
        }
    }
}

/// `git+https://host/x/ansible-role-web.git,v1` -> `ansible-role-web` (Ansible's
/// `RoleRequirement.repo_url_to_role_name`).
fn name_from_src(src: &str) -> String {
    let src = src.split(',').next().unwrap_or(src);
    let last = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
    let last = last.split(':').next_back().unwrap_or(last);
    last.trim_end_matches(".tar.gz")
        .trim_end_matches(".tgz")
        .trim_end_matches(".git")
        .to_string()
}

/// Which files of the role a call reads instead of `main` (`tasks_from: install`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FromFiles {
    pub tasks: Option<String>,
    pub vars: Option<String>,
    pub defaults: Option<String>,
    pub handlers: Option<String>,
}

impl FromFiles {
    fn as_value(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in [
            ("tasks", &self.tasks),
            ("vars", &self.vars),
            ("defaults", &self.defaults),
            ("handlers", &self.handlers),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        Value::Object(m)
    }
}

/// How a role is called: from `roles:`/`dependencies:` (the defaults), or by a task.
#[derive(Debug, Clone, Default)]
pub struct CallHow {
    pub from: FromFiles,
    /// Called by `import_role`/`include_role` (part of the role's identity in Ansible).
    pub from_include: bool,
    /// `include_role`/`import_role` say `allow_duplicates` (default yes) instead of `meta/`.
    pub allow_duplicates: Option<bool>,
    /// `rolespec_validate: false`: no argument-spec validation task.
    pub skip_validation: bool,
}

/// What one role brings to a call of it: its own defaults and vars, and how it was called.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleOwn {
    pub name: String,
    pub path: PathBuf,
    pub defaults: Map<String, Value>,
    pub vars: Map<String, Value>,
    /// The `vars:` of the entry that called it.
    pub entry_vars: Map<String, Value>,
    pub params: Map<String, Value>,
}

/// A called role with its (called) dependencies, for the variables Ansible derives from them.
#[derive(Debug)]
pub struct RoleInstance {
    pub own: Arc<RoleOwn>,
    pub key: String,
    pub deps: Vec<Arc<RoleInstance>>,
}

impl RoleInstance {
    /// Every dependency, depth first, each after its own dependencies (Ansible's
    /// `get_all_dependencies`).
    fn all_deps(&self) -> Vec<&RoleInstance> {
        let mut out = Vec::new();
        for d in &self.deps {
            out.extend(d.all_deps());
            out.push(d.as_ref());
        }
        out
    }

    /// The defaults its tasks see: its dependencies', then those of the roles on the chain,
    /// then its own (`get_default_vars`).
    pub fn defaults_along(&self, chain: &[Arc<RoleOwn>]) -> Map<String, Value> {
        let mut out = Map::new();
        for dep in self.all_deps() {
            out.extend(dep.defaults_along(&[]));
        }
        for link in chain {
            out.extend(link.defaults.clone());
        }
        out.extend(self.own.defaults.clone());
        out
    }

    /// What a public role shows the whole play: its dependencies' `vars/`, then its own.
    pub fn exports(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for dep in self.all_deps() {
            if seen.insert(dep.key.as_str()) {
                out.extend(dep.exports());
            }
        }
        out.extend(self.own.vars.clone());
        out
    }

    /// The role vars its tasks see (`get_vars(dep_chain, include_params=False)`): the chain's
    /// entry vars and `vars/`, the dependencies' exports, its own `vars/`, its entry's `vars:`.
    pub fn vars_along(&self, chain: &[Arc<RoleOwn>]) -> Map<String, Value> {
        let mut out = Map::new();
        for link in chain {
            out.extend(link.entry_vars.clone());
            out.extend(link.vars.clone());
        }
        let mut seen: HashSet<&str> = HashSet::new();
        for dep in self.all_deps() {
            if seen.insert(dep.key.as_str()) {
                out.extend(dep.exports());
            }
        }
        out.extend(self.own.vars.clone());
        out.extend(self.own.entry_vars.clone());
        out
    }

    /// The names of every dependency, first seen first.
    pub fn dependency_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in self.all_deps() {
            if !out.contains(&d.own.name) {
                out.push(d.own.name.clone());
            }
        }
        out
    }
}

/// The role a task belongs to, as the executor needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleCall {
    /// `role_name`, and the prefix of its tasks' names (`TASK [web : install]`).
    pub name: String,
    /// The role's directory: `role_path`, and where its tasks' files are looked for first.
    pub path: PathBuf,
    /// Ansible's identity of a role in a play (name, path, params, when, tags, `*_from`,
    /// vars, imported or not): a role runs once per host for each identity.
    pub key: String,
    pub allow_duplicates: bool,
    pub vars: RoleVars,
    /// This role and the roles that led to it, outermost first (Ansible's dep chain).
    pub chain: Vec<Arc<RoleOwn>>,
}

impl RoleCall {
    /// What an `include_role`/`import_role` inside this role passes to the role it calls:
    /// the chain (for inherited variables) and the include params Ansible adds.
    pub fn lineage_for_child(&self) -> Lineage {
        let mut params = self.vars.include_params.clone();
        if let Some(own) = self.chain.last() {
            params.extend(own.params.clone());
        }
        let prepend = |params: &mut Map<String, Value>, key: &str, v: String| {
            let mut list = match params.remove(key) {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            list.insert(0, Value::String(v));
            params.insert(key.into(), Value::Array(list));
        };
        prepend(&mut params, "ansible_parent_role_names", self.name.clone());
        prepend(
            &mut params,
            "ansible_parent_role_paths",
            absolute(&self.path).display().to_string(),
        );
        Lineage {
            chain: self.chain.clone(),
            include_params: params,
        }
    }
}

/// What a call inherits from the roles above it.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    pub chain: Vec<Arc<RoleOwn>>,
    pub include_params: Map<String, Value>,
}

/// A compiled call: tasks in execution order (dependencies first, then the role, then its
/// completion marker) and handlers (dependencies' first).
pub struct Expanded {
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub instance: Arc<RoleInstance>,
    pub node: NodeIndex,
}

/// A role's directory as read from disk: its name and its `meta/main.yml`.
#[derive(Debug)]
pub struct RoleDef {
    pub dir: PathBuf,
    pub canonical: PathBuf,
    pub allow_duplicates: bool,
    pub deps: Vec<RoleSpec>,
}

/// The roles one play uses, as the executor and `play graph` need them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayRoles {
    /// Every role of the play and its dependencies, for `play graph`.
    pub graph: RoleGraph,
    /// The defaults of the play's public roles (lowest precedence, seen by every task).
    pub defaults: Map<String, Value>,
    /// The `vars/` of the play's public roles (seen by every task, above play vars).
    pub exports: Map<String, Value>,
    /// `ansible_play_role_names`: the roles the play names (`roles:`, `import_role`).
    pub play_role_names: Vec<String>,
    /// `ansible_dependent_role_names`.
    pub dependent_role_names: Vec<String>,
}

impl PlayRoles {
    /// `ansible_role_names`: every role of the play, named or depended on.
    pub fn all_role_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in self
            .play_role_names
            .iter()
            .chain(&self.dependent_role_names)
        {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }

    /// Add a role that became public (listed, imported, or included with `public: true`).
    pub fn add_public(&mut self, instance: &RoleInstance) {
        self.defaults.extend(instance.defaults_along(&[]));
        self.exports.extend(instance.exports());
        self.play_role_names.push(instance.own.name.clone());
        for n in instance.dependency_names() {
            if !self.dependent_role_names.contains(&n) {
                self.dependent_role_names.push(n);
            }
        }
    }
}

/// The loader's role state: search settings, roles read so far, and the play being loaded.
#[derive(Debug, Default)]
pub struct RoleLoading {
    pub search: RoleSearch,
    /// Extra vars, for role names that hold templates.
    pub extra_vars: Map<String, Value>,
    defs: HashMap<PathBuf, Arc<RoleDef>>,
    /// Roles whose dependency graph is known to have no cycle.
    acyclic: HashSet<PathBuf>,
    /// The roles being compiled right now, outermost first (directory, name).
    compiling: Vec<(PathBuf, String)>,
    pub play: PlayRoleState,
}

/// What the loader collects about roles while it loads one play.
#[derive(Debug, Default)]
pub struct PlayRoleState {
    /// The playbook's directory (roles are looked for in its `roles/`).
    pub dir: PathBuf,
    /// The play's vars, for role names that hold templates.
    pub vars: Map<String, Value>,
    pub roles: PlayRoles,
    /// Handlers of roles imported by tasks (`import_role`), in the order they were imported.
    pub import_handlers: Vec<Task>,
    /// Handler names of roles that `include_role` names literally, so that notifying them
    /// is not refused when the playbook loads.
    pub dynamic_handler_names: Vec<String>,
}

impl PlayRoleState {
    pub fn new(dir: &Path, vars: Map<String, Value>) -> Self {
        PlayRoleState {
            dir: dir.to_path_buf(),
            vars,
            ..PlayRoleState::default()
        }
    }
}

/// Apply a role entry's keywords (or an include's `apply:`) to what its tasks inherit.
pub fn apply_keywords(
    inherited: &mut Inherited,
    keywords: &Map<String, Value>,
) -> Result<(), String> {
    for (k, v) in keywords {
        match k.as_str() {
            "when" => match v {
                Value::Null => {}
                Value::Array(items) => inherited.when.extend(items.iter().cloned()),
                other => inherited.when.push(other.clone()),
            },
            "tags" => inherited.tags.extend(tag_values(v)?),
            "environment" => inherited.environment.push(v.clone()),
            "vars" => match v {
                Value::Object(m) => inherited.vars.extend(m.clone()),
                Value::Null => {}
                _ => return Err("vars must be a mapping".into()),
            },
            k if OVERRIDE_KEYWORDS.contains(&k) => {
                inherited.keywords.insert(k.to_string(), v.clone());
            }
            _ => {}
        }
    }
    Ok(())
}

/// `tags:` as a comma-separated string or a list.
fn tag_values(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()),
        Value::Number(n) => Ok(vec![n.to_string()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("tags must be a list of strings, found {other}")),
            })
            .collect(),
        other => Err(format!(
            "tags must be a string or a list of strings, found {other}"
        )),
    }
}

/// The files of `dir/sub/` a role reads: `main` (or the `*_from` name) with Ansible's
/// extensions; a directory of that name is read whole, sorted, where Ansible allows it (vars
/// and defaults).
pub fn role_files(
    dir: &Path,
    sub: &str,
    from: Option<&str>,
    allow_dir: bool,
) -> Result<Vec<PathBuf>, Diagnostic> {
    let base = dir.join(sub);
    if !base.is_dir() {
        return Ok(Vec::new());
    }
    let name = from.unwrap_or("main");
    let extensions: &[&str] = if from.is_none() {
        &[".yml", ".yaml", ".json", ""]
    } else {
        &["", ".yml", ".yaml", ".json"]
    };
    let mut found = Vec::new();
    for ext in extensions {
        let path = base.join(format!("{name}{ext}"));
        if path.is_dir() {
            if allow_dir {
                dir_files(&path, &mut found);
                break;
            }
            continue;
        }
        if path.is_file() {
            found.push(path);
            break;
        }
    }
    if found.is_empty() && from.is_some() {
        return Err(Diagnostic::new(format!(
            "Could not find specified file in role: {sub}/{name}"
        ))
        .exit_code(exit::ERROR));
    }
    // `tasks_from: ../../elsewhere` must stay inside the role, as Ansible insists.
    let inside = std::fs::canonicalize(&base).unwrap_or(base.clone());
    for f in &found {
        let real = std::fs::canonicalize(f).unwrap_or(f.clone());
        if !real.starts_with(&inside) {
            return Err(Diagnostic::new(format!(
                "Failed loading '{}' for role as it is not inside the expected role path: '{}'",
                f.display(),
                base.display()
            ))
            .exit_code(exit::ERROR));
        }
    }
    Ok(found)
}

/// The vars files of a `main/` directory: sorted, recursive, hidden and backup files skipped.
fn dir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    names.sort();
    for (name, path) in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = Path::new(&name)
            .extension()
            .map(|e| e.to_string_lossy().into_owned());
        match ext {
            None if path.is_dir() => dir_files(&path, out),
            None => out.push(path),
            Some(e) if path.is_file() && matches!(e.as_str(), "yml" | "yaml" | "json") => {
                out.push(path)
            }
            Some(_) => {}
        }
    }
}

/// A role's `defaults/` or `vars/` (files merged in order, later keys winning).
fn load_role_vars(
    dir: &Path,
    name: &str,
    sub: &str,
    from: Option<&str>,
) -> Result<Map<String, Value>, Diagnostic> {
    let mut out = Map::new();
    for f in role_files(dir, sub, from, true)? {
        let node = yaml::load_one(&f)?;
        match node.to_value() {
            Value::Object(m) => out.extend(m),
            Value::Null => {}
            _ => {
                return Err(Diagnostic::new(format!(
                "The {sub}/main.yml file for role '{name}' must contain a dictionary of variables"
            ))
                .at(node.span))
            }
        }
    }
    Ok(out)
}

/// Read a role's `meta/main.yml`: `dependencies` and `allow_duplicates`.
fn load_def(dir: &Path) -> Result<RoleDef, Diagnostic> {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut def = RoleDef {
        dir: dir.to_path_buf(),
        canonical,
        allow_duplicates: false,
        deps: Vec::new(),
    };
    let Some(meta) = role_files(dir, "meta", None, false)?.into_iter().next() else {
        return Ok(def);
    };
    let root = yaml::load_one(&meta)?;
    let Some(entries) = root.entries() else {
        if root.is_null() {
            return Ok(def);
        }
        return Err(Diagnostic::new(format!(
            "the 'meta/main.yml' for role {} is not a dictionary",
            dir.display()
        ))
        .at(root.span.clone()));
    };
    for (key, value) in entries {
        match key.as_str() {
            "dependencies" => match &value.kind {
                NodeKind::Null => {}
                NodeKind::Seq(items) => {
                    for item in items {
                        def.deps.push(RoleSpec::from_node(item)?);
                    }
                }
                _ => {
                    return Err(Diagnostic::new("Expected role dependencies to be a list.")
                        .at(value.span.clone()))
                }
            },
            "allow_duplicates" => {
                def.allow_duplicates =
                    modules::args::ansible_bool(&value.to_value()).unwrap_or(false)
            }
            k if META_KEYS.contains(&k) || OVERRIDE_KEYWORDS.contains(&k) => {}
            k => {
                let mut d =
                    Diagnostic::new(format!("'{k}' is not a valid attribute for a RoleMetadata"))
                        .at(value.span.clone());
                if let Some(near) = modules::did_you_mean(k, META_KEYS.iter().copied()) {
                    d = d.note(format!("did you mean '{near}'?"));
                }
                return Err(d);
            }
        }
    }
    Ok(def)
}

/// Ansible's identity of a role in a play, as one comparable string.
fn identity_key(name: &str, canonical: &Path, spec: &RoleSpec, how: &CallHow) -> String {
    let id = serde_json::json!({
        "name": name,
        "path": canonical.display().to_string(),
        "params": spec.params,
        "when": spec.keywords.get("when"),
        "tags": spec.keywords.get("tags"),
        "from_files": how.from.as_value(),
        "vars": spec.vars,
        "from_include": how.from_include,
    });
    canonical_json(&id)
}

/// JSON with every mapping's keys sorted: Ansible compares params as dicts, in any order.
fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The task Ansible puts first in a role with an argument spec:
/// `validate_argument_spec` on the role's params (and the variables named like its options).
fn validation_task(
    call: &Arc<RoleCall>,
    inherited: &Inherited,
    entry_point: &str,
    arg_spec: &Map<String, Value>,
    params: &Map<String, Value>,
    span: &Span,
) -> Task {
    let mut args = Map::new();
    args.insert(
        "argument_spec".into(),
        arg_spec
            .get("options")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    args.insert("provided_arguments".into(), Value::Object(params.clone()));
    args.insert(
        "validate_args_context".into(),
        serde_json::json!({
            "type": "role",
            "name": call.name,
            "argument_spec_name": entry_point,
            "path": absolute(&call.path).display().to_string(),
        }),
    );
    let mut tags = inherited.tags.clone();
    tags.push("always".into());
    Task {
        name: Some(argspec::task_name(entry_point, arg_spec)),
        span: span.clone(),
        action: "validate_argument_spec".into(),
        action_written: "ansible.builtin.validate_argument_spec".into(),
        args,
        when: inherited.when.clone(),
        tags,
        vars: inherited.vars.clone(),
        environment: inherited.environment.clone(),
        keywords: inherited.keywords.clone(),
        block: None,
        listen: Vec::new(),
        notify: Vec::new(),
        role: Some(call.clone()),
        inherited: None,
    }
}

/// The implicit task at the end of a role's tasks: hosts that ran any of its tasks have now
/// "run" the role (Ansible's `role_complete`).
fn completion_marker(call: &Arc<RoleCall>, span: &Span) -> Task {
    Task {
        name: None,
        span: span.clone(),
        action: "role_complete".into(),
        action_written: "role_complete".into(),
        args: Map::new(),
        when: Vec::new(),
        tags: vec!["always".into()],
        vars: Map::new(),
        environment: Vec::new(),
        keywords: Map::new(),
        block: None,
        listen: Vec::new(),
        notify: Vec::new(),
        role: Some(call.clone()),
        inherited: None,
    }
}

impl Loader {
    /// Start loading the roles of a play: where it lives, and its vars (for templated names).
    pub fn begin_play_roles(&mut self, dir: &Path, vars: Map<String, Value>) {
        self.roles.play = PlayRoleState::new(dir, vars);
    }

    /// Finish a play: what its roles contribute to it.
    pub fn finish_play_roles(&mut self) -> (PlayRoles, Vec<Task>) {
        let state = std::mem::take(&mut self.roles.play);
        (state.roles, state.import_handlers)
    }

    /// Handlers of roles imported (`import_role`) by what was loaded since the last call.
    pub fn take_import_handlers(&mut self) -> Vec<Task> {
        std::mem::take(&mut self.roles.play.import_handlers)
    }

    /// A role name with its templates rendered (play vars and extra vars, as Ansible has
    /// nothing else when it loads roles).
    fn role_name(&self, name: &str, span: &Span) -> Result<String, Diagnostic> {
        if !name.contains("{{") && !name.contains("{%") {
            return Ok(name.to_string());
        }
        let mut vars = self.roles.play.vars.clone();
        vars.extend(self.roles.extra_vars.clone());
        let templar = crate::template::Templar::new();
        match templar.template_str(name, &crate::template::Scope::new(vars)) {
            Ok(Value::String(s)) => Ok(s),
            Ok(other) => Ok(other.to_string()),
            Err(e) => Err(Diagnostic::new(format!(
                "cannot template the role name '{name}': {}",
                e.message
            ))
            .at(span.clone())),
        }
    }

    /// Find and read a role directory (each directory is read once per run).
    fn role_def(&mut self, dir: &Path) -> Result<Arc<RoleDef>, Diagnostic> {
        let canonical = absolute(dir);
        if let Some(d) = self.roles.defs.get(&canonical) {
            return Ok(d.clone());
        }
        let def = Arc::new(load_def(dir)?);
        self.roles.defs.insert(canonical, def.clone());
        Ok(def)
    }

    /// Load every role reachable from `root` into a graph of role directories and refuse a
    /// cycle, naming each edge of it (`roles/a/meta/main.yml:3 -> roles/b/meta/main.yml:5 -> a`).
    fn check_role_cycles(
        &mut self,
        root: &Arc<RoleDef>,
        root_name: &str,
    ) -> Result<(), Diagnostic> {
        if self.roles.acyclic.contains(&root.canonical) {
            return Ok(());
        }
        let mut defs: DiGraph<(String, Arc<RoleDef>), Span> = DiGraph::new();
        let mut index: HashMap<PathBuf, NodeIndex> = HashMap::new();
        let first = defs.add_node((root_name.to_string(), root.clone()));
        index.insert(root.canonical.clone(), first);
        let mut queue = VecDeque::from([first]);
        let play_dir = self.roles.play.dir.clone();
        while let Some(n) = queue.pop_front() {
            let def = defs[n].1.clone();
            let base = def.dir.parent().map(Path::to_path_buf);
            for dep in &def.deps {
                let name = self.role_name(&dep.name, &dep.span)?;
                let (dep_name, dep_dir) =
                    self.roles
                        .search
                        .resolve(&name, &play_dir, base.as_deref(), &dep.span)?;
                let dep_def = self.role_def(&dep_dir)?;
                let m = match index.get(&dep_def.canonical) {
                    Some(m) => *m,
                    None => {
                        let m = defs.add_node((dep_name, dep_def.clone()));
                        index.insert(dep_def.canonical.clone(), m);
                        queue.push_back(m);
                        m
                    }
                };
                defs.add_edge(n, m, dep.span.clone());
            }
        }
        if let Some(edges) = graph::find_cycle(&defs) {
            let mut steps: Vec<String> = Vec::new();
            let mut names: Vec<String> = Vec::new();
            for e in &edges {
                let span = &defs[*e];
                steps.push(format!("{}:{}", span.file.display(), span.line));
                if let Some((from, _)) = defs.edge_endpoints(*e) {
                    names.push(defs[from].0.clone());
                }
            }
            let start = names.first().cloned().unwrap_or_default();
            names.push(start.clone());
            let first_span = edges.first().map(|e| defs[*e].clone());
            return Err(Diagnostic::new(format!(
                "role dependency cycle: {} -> {start}",
                steps.join(" -> ")
            ))
            .at_opt(first_span)
            .note(format!("the cycle: {}", names.join(" -> ")))
            .exit_code(exit::ERROR));
        }
        for (_, def) in defs.node_weights() {
            self.roles.acyclic.insert(def.canonical.clone());
        }
        Ok(())
    }

    /// Compile one call of a role: find it, read it, compile its dependencies, then its own
    /// tasks and handlers, each task carrying the call's `RoleCall`.
    pub fn expand_role(
        &mut self,
        spec: &RoleSpec,
        how: &CallHow,
        lineage: &Lineage,
        inherited: &Inherited,
    ) -> Result<Expanded, Diagnostic> {
        let written = self.role_name(&spec.name, &spec.span)?;
        let caller_base = lineage
            .chain
            .last()
            .and_then(|o| o.path.parent())
            .map(Path::to_path_buf);
        let play_dir = self.roles.play.dir.clone();
        let (name, dir) =
            self.roles
                .search
                .resolve(&written, &play_dir, caller_base.as_deref(), &spec.span)?;
        let def = self.role_def(&dir)?;
        self.check_role_cycles(&def, &name)?;
        // A role that imports (import_role) a role that is being compiled around it would
        // never finish compiling.
        let compiling = &self.roles.compiling;
        if let Some(at) = compiling.iter().position(|(p, _)| p == &def.canonical) {
            let mut names: Vec<String> = compiling[at..].iter().map(|(_, n)| n.clone()).collect();
            names.push(name.clone());
            return Err(Diagnostic::new(format!(
                "role cycle through import_role: {}",
                names.join(" -> ")
            ))
            .at(spec.span.clone())
            .exit_code(exit::ERROR));
        }
        self.roles
            .compiling
            .push((def.canonical.clone(), name.clone()));
        let compiled = self.compile_role(spec, how, lineage, inherited, name, dir, &def);
        self.roles.compiling.pop();
        compiled
    }

    /// `expand_role`, once the role is found and known not to be in a cycle.
    #[allow(clippy::too_many_arguments)]
    fn compile_role(
        &mut self,
        spec: &RoleSpec,
        how: &CallHow,
        lineage: &Lineage,
        inherited: &Inherited,
        name: String,
        dir: PathBuf,
        def: &RoleDef,
    ) -> Result<Expanded, Diagnostic> {
        let own = Arc::new(RoleOwn {
            name: name.clone(),
            path: dir.clone(),
            defaults: load_role_vars(&dir, &name, "defaults", how.from.defaults.as_deref())
                .map_err(|d| d.at_opt(Some(spec.span.clone())))?,
            vars: load_role_vars(&dir, &name, "vars", how.from.vars.as_deref())
                .map_err(|d| d.at_opt(Some(spec.span.clone())))?,
            entry_vars: spec.vars.clone(),
            params: spec.params.clone(),
        });
        let key = identity_key(&name, &def.canonical, spec, how);
        let allow_duplicates = how.allow_duplicates.unwrap_or(def.allow_duplicates);
        let node = self.roles.play.roles.graph.add_role(
            &key,
            graph::RoleNode {
                name: name.clone(),
                path: dir.clone(),
                params: spec.params.clone(),
                vars: spec.vars.clone(),
                allow_duplicates,
                from_include: how.from_include,
                includes: Vec::new(),
            },
        );
        let mut chain = lineage.chain.clone();
        chain.push(own.clone());
        let dep_lineage = Lineage {
            chain: chain.clone(),
            include_params: lineage.include_params.clone(),
        };

        let mut tasks = Vec::new();
        let mut handlers = Vec::new();
        let mut deps = Vec::new();
        for dep in &def.deps {
            let mut dep_inherited = inherited.clone();
            apply_keywords(&mut dep_inherited, &dep.keywords)
                .map_err(|m| Diagnostic::new(m).at(dep.span.clone()))?;
            let sub = self.expand_role(dep, &CallHow::default(), &dep_lineage, &dep_inherited)?;
            self.roles
                .play
                .roles
                .graph
                .add_edge(node, sub.node, &dep.span, graph::Via::Dependency);
            tasks.extend(sub.tasks);
            handlers.extend(sub.handlers);
            deps.push(sub.instance);
        }
        let instance = Arc::new(RoleInstance {
            own,
            key: key.clone(),
            deps,
        });
        let call = Arc::new(RoleCall {
            name: name.clone(),
            path: dir.clone(),
            key,
            allow_duplicates,
            vars: RoleVars {
                defaults: instance.defaults_along(&chain),
                vars: instance.vars_along(&chain),
                params: chain.iter().fold(Map::new(), |mut m, link| {
                    m.extend(link.params.clone());
                    m
                }),
                include_params: lineage.include_params.clone(),
            },
            chain,
        });
        let mut own_inherited = inherited.clone();
        own_inherited.role = Some(call.clone());
        // A role with an argument spec for this entry point checks its arguments first.
        let entry_point = how.from.tasks.as_deref().unwrap_or("main");
        if !how.skip_validation {
            if let Some(arg_spec) = argspec::entry_point_spec(&dir, entry_point)? {
                tasks.push(validation_task(
                    &call,
                    &own_inherited,
                    entry_point,
                    &arg_spec,
                    &spec.params,
                    &spec.span,
                ));
            }
        }
        for f in role_files(&dir, "tasks", how.from.tasks.as_deref(), false)
            .map_err(|d| d.at_opt(Some(spec.span.clone())))?
        {
            tasks.extend(self.load_task_file(&f, &own_inherited, false)?);
        }
        tasks.push(completion_marker(&call, &spec.span));
        for f in role_files(&dir, "handlers", how.from.handlers.as_deref(), false)
            .map_err(|d| d.at_opt(Some(spec.span.clone())))?
        {
            handlers.extend(self.load_task_file(&f, &own_inherited, true)?);
        }
        Ok(Expanded {
            tasks,
            handlers,
            instance,
            node,
        })
    }

    /// The handler names (plain and `role : name`) of a role an `include_role` names
    /// literally, read without compiling it; nothing when it cannot be read now.
    pub fn peek_role_handler_names(
        &mut self,
        name: &str,
        handlers_from: Option<&str>,
        caller_base: Option<&Path>,
        seen: &mut HashSet<PathBuf>,
    ) -> Vec<String> {
        let span = Span::new(Path::new(""), 0, 0);
        let play_dir = self.roles.play.dir.clone();
        let Ok((role_name, dir)) = self
            .roles
            .search
            .resolve(name, &play_dir, caller_base, &span)
        else {
            return Vec::new();
        };
        if !seen.insert(absolute(&dir)) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let files = role_files(&dir, "handlers", handlers_from, false).unwrap_or_default();
        for f in files {
            let Ok(root) = yaml::load_one(&f) else {
                continue;
            };
            for item in root.as_seq().unwrap_or_default() {
                if let Some(n) = item.get("name").and_then(Node::as_str) {
                    out.push(n.to_string());
                    out.push(format!("{role_name} : {n}"));
                }
                if let Some(l) = item.get("listen") {
                    match l.to_value() {
                        Value::String(s) => out.push(s),
                        Value::Array(a) => {
                            out.extend(a.iter().filter_map(Value::as_str).map(str::to_string))
                        }
                        _ => {}
                    }
                }
            }
        }
        // Its dependencies' handlers come with it.
        if let Ok(def) = self.role_def(&dir) {
            let base = dir.parent().map(Path::to_path_buf);
            for dep in def.deps.clone() {
                out.extend(self.peek_role_handler_names(&dep.name, None, base.as_deref(), seen));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
