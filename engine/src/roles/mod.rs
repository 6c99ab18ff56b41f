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
mod compile;
mod files;
pub mod graph;
pub mod search;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use serde_json::{Map, Value};

use crate::error::{Diagnostic, Span};
use crate::playbook::{Inherited, Task, OVERRIDE_KEYWORDS};
use crate::vars::RoleVars;
use crate::yaml::{Node, NodeKind};
pub use files::role_files;
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

/// A role's directory as read from disk, with what its `meta/main.yml` says.
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

/// A path made absolute, symlinks resolved when it exists (Ansible's role paths are).
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests;
