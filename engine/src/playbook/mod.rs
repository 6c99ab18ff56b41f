//! The playbook model (plays, tasks, blocks, handlers) and its loading from Ansible YAML, with positions.
//!
//! Everything Ansible loads statically is loaded here before anything runs: `import_playbook`,
//! `import_tasks`, the play's `roles:` and `import_role` (compiled by `crate::roles`), vars on
//! every level, handler names. `include_tasks` files and `include_role` roles are loaded when
//! reached (their names may be templated) through `load_task_file` and `Loader::expand_role`.

pub mod kv;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{Diagnostic, Span};
use crate::roles::{self, CallHow, FromFiles, Lineage, PlayRoles, RoleCall, RoleSearch, RoleSpec};
use crate::yaml::{self, Node, NodeKind};

/// Play keywords Ansible knows; anything else at play level is an error.
const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "vars_prompt",
    "gather_facts",
    "gather_subset",
    "gather_timeout",
    "fact_path",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "roles",
    "connection",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "serial",
    "strategy",
    "any_errors_fatal",
    "max_fail_percentage",
    "tags",
    "environment",
    "module_defaults",
    "remote_user",
    "port",
    "check_mode",
    "diff",
    "ignore_errors",
    "ignore_unreachable",
    "no_log",
    "order",
    "run_once",
    "throttle",
    "timeout",
    "force_handlers",
    "collections",
    "debugger",
    "import_playbook",
];

/// Task keywords; the one remaining key of a task is its action.
const TASK_KEYS: &[&str] = &[
    "name",
    "action",
    "local_action",
    "args",
    "when",
    "loop",
    "loop_control",
    "register",
    "notify",
    "listen",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "until",
    "retries",
    "delay",
    "tags",
    "vars",
    "environment",
    "no_log",
    "check_mode",
    "diff",
    "delegate_to",
    "delegate_facts",
    "run_once",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "connection",
    "remote_user",
    "port",
    "any_errors_fatal",
    "throttle",
    "timeout",
    "collections",
    "module_defaults",
    "debugger",
    "block",
    "rescue",
    "always",
    "async",
    "poll",
];

/// Actions the engine carries out itself (on the controller, or around a module).
pub const ENGINE_ACTIONS: &[&str] = &[
    "debug",
    "set_fact",
    "assert",
    "fail",
    "pause",
    "meta",
    "include_vars",
    "template",
    "copy",
    "fetch",
    "script",
    "include_tasks",
    "import_tasks",
    "include",
    "include_role",
    "import_role",
    "validate_argument_spec",
    "gather_facts",
    "setup",
    "add_host",
    "group_by",
    "wait_for_connection",
    "import_playbook",
];

/// Keywords a block (or a play, a role entry, an import) passes down to every task inside it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inherited {
    pub when: Vec<Value>,
    pub tags: Vec<String>,
    pub vars: Map<String, Value>,
    pub environment: Vec<Value>,
    /// Keywords where the innermost setting wins (become, ignore_errors, check_mode, ...).
    pub keywords: Map<String, Value>,
    /// The role the tasks belong to.
    pub role: Option<Arc<RoleCall>>,
}

/// Keywords inherited as "innermost wins".
pub(crate) const OVERRIDE_KEYWORDS: &[&str] = &[
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "ignore_errors",
    "ignore_unreachable",
    "check_mode",
    "diff",
    "no_log",
    "delegate_to",
    "run_once",
    "any_errors_fatal",
    "connection",
    "remote_user",
    "port",
    "module_defaults",
    "throttle",
    "timeout",
    "delegate_facts",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    pub name: String,
    pub hosts: String,
    pub span: Span,
    /// The directory of the playbook file this play came from (`playbook_dir`).
    pub dir: PathBuf,
    pub vars: Map<String, Value>,
    pub vars_files: Vec<Value>,
    pub gather_facts: Option<Value>,
    pub gather_subset: Option<Value>,
    pub pre_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub serial: Option<Value>,
    pub strategy: Option<String>,
    pub max_fail_percentage: Option<Value>,
    /// Every other play keyword (become, connection, environment, tags, ...), as written.
    pub keywords: Map<String, Value>,
    /// Its roles: the graph, and the defaults and vars its public roles show every task.
    pub roles: PlayRoles,
}

/// One entry of a task list: a task, or a block of tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The name as written (may hold templates); `None` prints as the action name.
    pub name: Option<String>,
    pub span: Span,
    /// The resolved short action name (`copy`, `debug`, `include_tasks`, `block`).
    pub action: String,
    /// The action as written (`ansible.builtin.copy`), for messages.
    pub action_written: String,
    /// Module arguments (mapping, after `k=v` and `args:` merging), untemplated.
    pub args: Map<String, Value>,
    /// Everything else from the task, untemplated, including inherited block keywords.
    pub when: Vec<Value>,
    pub tags: Vec<String>,
    pub vars: Map<String, Value>,
    pub environment: Vec<Value>,
    pub keywords: Map<String, Value>,
    pub block: Option<Block>,
    /// For handlers: the topics it listens to, besides its name.
    pub listen: Vec<String>,
    pub notify: Vec<String>,
    /// The role the task belongs to (its `TASK [role : name]` prefix, its variables).
    pub role: Option<Arc<RoleCall>>,
    /// For `include_tasks`/`include_role`: what the enclosing blocks, play and role pass to
    /// the tasks it includes (not the include's own keywords, as in Ansible).
    pub inherited: Option<Box<Inherited>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub block: Vec<Task>,
    pub rescue: Vec<Task>,
    pub always: Vec<Task>,
}

impl Task {
    pub fn keyword(&self, key: &str) -> Option<&Value> {
        self.keywords.get(key)
    }
    /// The name shown in `TASK [..]`: the name, or the action as written, after the role's
    /// name for a role's task (`web : install`); `include_role : web` for an unnamed include.
    pub fn display_name(&self) -> String {
        // An include_role is named by its own name alone, even inside a role (Ansible's
        // `IncludeRole.get_name`).
        if self.action == "include_role" || self.action == "import_role" {
            if let Some(n) = &self.name {
                return n.clone();
            }
        }
        let own = match &self.name {
            Some(n) => n.clone(),
            None if self.action == "include_role" || self.action == "import_role" => {
                let role = self
                    .args
                    .get("name")
                    .or_else(|| self.args.get("role"))
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                return format!("{} : {role}", self.action_written);
            }
            None => self.action_written.clone(),
        };
        match &self.role {
            Some(r) => format!("{} : {own}", r.name),
            None => own,
        }
    }

    /// The name `--list-tasks` shows: the display name of a named task, the bare action of
    /// an unnamed one (as ansible-playbook lists them).
    pub fn list_name(&self) -> String {
        match &self.name {
            Some(_) => self.display_name(),
            None => self.action_written.clone(),
        }
    }

    /// Whether this is a task the engine adds itself (a role's completion marker).
    pub fn is_implicit(&self) -> bool {
        self.action == "role_complete"
    }
}

/// What a loader needs to know to resolve actions and roles.
pub struct Loader {
    /// Every action name the engine can run (modules + engine actions), for errors and "did you mean".
    known_action: fn(&str) -> Option<String>,
    seen_files: Vec<PathBuf>,
    /// Where roles are found, the roles read so far, and the roles of the play being loaded.
    pub(crate) roles: roles::RoleLoading,
}

/// Resolve an action name (with or without collection prefix) to its short name.
pub fn resolve_action(name: &str) -> Option<String> {
    let short = name.rsplit('.').next().unwrap_or(name);
    let prefix_ok = |p: &str| matches!(p, "ansible.builtin" | "ansible.legacy");
    if let Some(m) = modules::lookup(name) {
        return Some(m.name().to_string());
    }
    let has_prefix = name.contains('.');
    if ENGINE_ACTIONS.contains(&short)
        && (!has_prefix || prefix_ok(&name[..name.len() - short.len() - 1]))
    {
        return Some(short.to_string());
    }
    None
}

impl Default for Loader {
    fn default() -> Self {
        Self {
            known_action: resolve_action,
            seen_files: Vec::new(),
            roles: roles::RoleLoading::default(),
        }
    }
}

impl Loader {
    /// A loader that finds roles with these settings (extra vars render templated role names).
    pub fn new(search: RoleSearch, extra_vars: Map<String, Value>) -> Self {
        let mut loader = Loader::default();
        loader.roles.search = search;
        loader.roles.extra_vars = extra_vars;
        loader
    }
}

fn err(span: &Span, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new(msg).at(span.clone())
}

fn str_list(node: &Node, what: &str) -> Result<Vec<String>, Diagnostic> {
    match &node.kind {
        NodeKind::Null => Ok(Vec::new()),
        NodeKind::Str(s) => Ok(s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()),
        NodeKind::Seq(items) => items
            .iter()
            .map(|i| match &i.kind {
                NodeKind::Str(s) => Ok(s.clone()),
                NodeKind::Int(n) => Ok(n.to_string()),
                _ => Err(err(
                    &i.span,
                    format!("{what} must be a list of strings, found {}", i.type_name()),
                )),
            })
            .collect(),
        NodeKind::Int(n) => Ok(vec![n.to_string()]),
        _ => Err(err(
            &node.span,
            format!(
                "{what} must be a string or a list of strings, found {}",
                node.type_name()
            ),
        )),
    }
}

fn value_list(node: &Node) -> Vec<Value> {
    match &node.kind {
        NodeKind::Null => Vec::new(),
        NodeKind::Seq(items) => items.iter().map(Node::to_value).collect(),
        _ => vec![node.to_value()],
    }
}

fn mapping_value(node: &Node, what: &str) -> Result<Map<String, Value>, Diagnostic> {
    match node.to_value() {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        // `vars:` as a list of single-key mappings is accepted by Ansible.
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let mut m = Map::new();
            for item in items {
                if let Value::Object(o) = item {
                    m.extend(o);
                }
            }
            Ok(m)
        }
        _ => Err(err(
            &node.span,
            format!("{what} must be a mapping, found {}", node.type_name()),
        )),
    }
}

impl Loader {
    /// Load a playbook file with all its `import_playbook`s.
    pub fn load_playbook(&mut self, path: &Path) -> Result<Playbook, Diagnostic> {
        let path = path.to_path_buf();
        let mut plays = Vec::new();
        self.load_plays_into(&path, &mut plays, &Map::new())?;
        Ok(Playbook { path, plays })
    }

    fn load_plays_into(
        &mut self,
        path: &Path,
        plays: &mut Vec<Play>,
        import_vars: &Map<String, Value>,
    ) -> Result<(), Diagnostic> {
        if self
            .seen_files
            .iter()
            .filter(|p| p.as_path() == path)
            .count()
            > 8
        {
            return Err(Diagnostic::new(format!(
                "{} imports itself in a loop",
                path.display()
            )));
        }
        self.seen_files.push(path.to_path_buf());
        if !path.is_file() {
            return Err(Diagnostic::new(format!(
                "the playbook: {} could not be found",
                path.display()
            ))
            .exit_code(1));
        }
        let root = yaml::load_one(path)?;
        let dir = parent_dir(path);
        let items = match &root.kind {
            NodeKind::Seq(items) => items.clone(),
            NodeKind::Null => Vec::new(),
            _ => {
                return Err(err(
                    &root.span,
                    format!(
                        "A playbook must be a list of plays, got {} instead",
                        root.type_name()
                    ),
                ))
            }
        };
        for item in &items {
            if item.entries().is_none() {
                return Err(err(
                    &item.span,
                    format!("A play must be a mapping, got {} instead", item.type_name()),
                ));
            }
            if let Some(import) = item
                .get("import_playbook")
                .or_else(|| item.get("ansible.builtin.import_playbook"))
            {
                let Some(rel) = import.as_str() else {
                    return Err(err(&import.span, "import_playbook takes a file name"));
                };
                let mut vars = import_vars.clone();
                if let Some(v) = item.get("vars") {
                    vars.extend(mapping_value(v, "vars")?);
                }
                let target = dir.join(rel);
                self.load_plays_into(&target, plays, &vars)
                    .map_err(|d| d.at_opt(Some(import.span.clone())))?;
                continue;
            }
            let mut play = self.load_play(item, &dir)?;
            for (k, v) in import_vars {
                play.vars.entry(k.clone()).or_insert_with(|| v.clone());
            }
            plays.push(play);
        }
        Ok(())
    }

    fn load_play(&mut self, node: &Node, dir: &Path) -> Result<Play, Diagnostic> {
        let entries = node.entries().unwrap_or_default();
        for (key, value) in &entries {
            if !PLAY_KEYS.contains(&key.as_str()) {
                let near = modules::did_you_mean(key, PLAY_KEYS.iter().copied());
                let mut d = err(
                    &value.span,
                    format!("'{key}' is not a valid attribute for a Play"),
                );
                if let Some(n) = near {
                    d = d.note(format!("did you mean '{n}'?"));
                }
                return Err(d);
            }
        }
        let hosts = match node.get("hosts") {
            Some(h) => match &h.kind {
                NodeKind::Str(s) => s.clone(),
                NodeKind::Seq(_) => str_list(h, "hosts")?.join(","),
                _ => {
                    return Err(err(
                        &h.span,
                        "hosts must be a pattern string or a list of patterns",
                    ))
                }
            },
            None => {
                return Err(err(
                    &node.span,
                    "the field 'hosts' is required but was not set",
                ))
            }
        };
        let name = match node.get("name") {
            Some(n) => n
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| n.to_value().to_string()),
            None => hosts.clone(),
        };
        let mut play = Play {
            name,
            hosts,
            span: node.span.clone(),
            dir: dir.to_path_buf(),
            vars: Map::new(),
            vars_files: Vec::new(),
            gather_facts: None,
            gather_subset: None,
            pre_tasks: Vec::new(),
            tasks: Vec::new(),
            post_tasks: Vec::new(),
            handlers: Vec::new(),
            serial: None,
            strategy: None,
            max_fail_percentage: None,
            keywords: Map::new(),
            roles: PlayRoles::default(),
        };
        // Play keywords every task inherits (tags, environment, become, ignore_errors, ...).
        let mut inherited = Inherited::default();
        for (key, value) in &entries {
            match key.as_str() {
                "tags" => inherited.tags = str_list(value, "tags")?,
                "environment" => inherited.environment.push(value.to_value()),
                k if OVERRIDE_KEYWORDS.contains(&k) => {
                    inherited.keywords.insert(k.to_string(), value.to_value());
                }
                _ => {}
            }
        }
        if let Some(v) = node.get("vars") {
            play.vars = mapping_value(v, "vars")?;
        }
        self.begin_play_roles(dir, play.vars.clone());
        // The play's roles run before its tasks, wherever `roles:` is written.
        let (role_tasks, role_handlers) = match node.get("roles") {
            Some(value) => self.load_play_roles(value, &inherited)?,
            None => (Vec::new(), Vec::new()),
        };
        for (key, value) in &entries {
            match key.as_str() {
                "name" | "hosts" | "vars" | "roles" => {}
                "vars_files" => play.vars_files = value_list(value),
                "gather_facts" => play.gather_facts = Some(value.to_value()),
                "gather_subset" => play.gather_subset = Some(value.to_value()),
                "pre_tasks" => play.pre_tasks = self.load_tasks(value, dir, &inherited, false)?,
                "tasks" => play.tasks = self.load_tasks(value, dir, &inherited, false)?,
                "post_tasks" => play.post_tasks = self.load_tasks(value, dir, &inherited, false)?,
                "handlers" => play.handlers = self.load_tasks(value, dir, &inherited, true)?,
                "serial" => play.serial = Some(value.to_value()),
                "strategy" => play.strategy = value.as_str().map(str::to_string),
                "max_fail_percentage" => play.max_fail_percentage = Some(value.to_value()),
                _ => {
                    play.keywords.insert(key.clone(), value.to_value());
                }
            }
        }
        let dynamic_handlers = std::mem::take(&mut self.roles.play.dynamic_handler_names);
        let (roles, import_handlers) = self.finish_play_roles();
        play.roles = roles;
        let mut tasks = role_tasks;
        tasks.append(&mut play.tasks);
        play.tasks = tasks;
        // Ansible's handler order: the play's roles' handlers, then imported roles', then the play's.
        let mut handlers = role_handlers;
        handlers.extend(import_handlers);
        handlers.append(&mut play.handlers);
        play.handlers = handlers;
        check_notify(&play, &dynamic_handlers)?;
        Ok(play)
    }

    /// A play's `roles:`: each entry compiled with its dependencies, in order.
    fn load_play_roles(
        &mut self,
        node: &Node,
        play_inherited: &Inherited,
    ) -> Result<(Vec<Task>, Vec<Task>), Diagnostic> {
        let items = match &node.kind {
            NodeKind::Null => return Ok((Vec::new(), Vec::new())),
            NodeKind::Seq(items) => items,
            _ => {
                return Err(err(
                    &node.span,
                    format!("roles must be a list, found {}", node.type_name()),
                ))
            }
        };
        let mut tasks = Vec::new();
        let mut handlers = Vec::new();
        for item in items {
            let spec = RoleSpec::from_node(item)?;
            let mut inherited = play_inherited.clone();
            roles::apply_keywords(&mut inherited, &spec.keywords)
                .map_err(|m| err(&item.span, m))?;
            let root = self.roles.play.roles.graph.add_root(
                roles::graph::Via::Roles,
                &spec.name,
                &spec.span,
            );
            let expanded =
                self.expand_role(&spec, &CallHow::default(), &Lineage::default(), &inherited)?;
            self.roles.play.roles.graph.roots[root].node = Some(expanded.node);
            self.roles.play.roles.add_public(&expanded.instance);
            tasks.extend(expanded.tasks);
            handlers.extend(expanded.handlers);
        }
        Ok((tasks, handlers))
    }

    /// Load a task list node (`tasks:`, a block, or a task file's root).
    pub fn load_tasks(
        &mut self,
        node: &Node,
        dir: &Path,
        inherited: &Inherited,
        handlers: bool,
    ) -> Result<Vec<Task>, Diagnostic> {
        let items = match &node.kind {
            NodeKind::Null => return Ok(Vec::new()),
            NodeKind::Seq(items) => items,
            _ => {
                return Err(err(
                    &node.span,
                    format!(
                        "A list of tasks is expected here, got {} instead",
                        node.type_name()
                    ),
                ))
            }
        };
        let mut tasks = Vec::new();
        for item in items {
            self.load_task_into(item, dir, inherited, handlers, &mut tasks)?;
        }
        Ok(tasks)
    }

    /// Load a task file (include_tasks / import_tasks target).
    pub fn load_task_file(
        &mut self,
        path: &Path,
        inherited: &Inherited,
        handlers: bool,
    ) -> Result<Vec<Task>, Diagnostic> {
        if !path.is_file() {
            return Err(
                Diagnostic::new(format!("Could not find or access '{}'", path.display()))
                    .exit_code(1),
            );
        }
        let root = yaml::load_one(path)?;
        let dir = parent_dir(path);
        // Nested relative includes resolve against the including playbook's dir first in Ansible;
        // we resolve against the task file's own dir, then the playbook dir (see executor).
        self.load_tasks(&root, &dir, inherited, handlers)
    }

    fn load_task_into(
        &mut self,
        node: &Node,
        dir: &Path,
        inherited: &Inherited,
        handlers: bool,
        out: &mut Vec<Task>,
    ) -> Result<(), Diagnostic> {
        let Some(entries) = node.entries() else {
            return Err(err(
                &node.span,
                format!("A task must be a mapping, got {} instead", node.type_name()),
            ));
        };
        let name = node.get("name").map(|n| {
            n.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| n.to_value().to_string())
        });
        let task_label = name.clone();
        let with_task = |d: Diagnostic| match &task_label {
            Some(n) => d.in_task(n.clone()),
            None => d,
        };

        // Keywords of this task merged onto what the enclosing blocks pass down.
        let mut own = inherited.clone();
        // (action as written, its value node, its span, whether it came from `action:`)
        let mut action: Option<(String, &Node, Span, bool)> = None;
        let mut args = Map::new();
        let mut listen = Vec::new();
        let mut notify = Vec::new();
        let mut loop_keys = Vec::new();
        let mut keywords = Map::new();
        for (key, value) in &entries {
            let k = key.as_str();
            if k.starts_with("with_") {
                loop_keys.push(k.to_string());
                keywords.insert(k.to_string(), value.to_value());
                continue;
            }
            match k {
                "name" | "block" | "rescue" | "always" => {}
                "when" => own.when.extend(value_list(value)),
                "tags" => own.tags.extend(str_list(value, "tags").map_err(with_task)?),
                "vars" => own
                    .vars
                    .extend(mapping_value(value, "vars").map_err(with_task)?),
                "environment" => own.environment.push(value.to_value()),
                "args" => match value.to_value() {
                    Value::Object(m) => args.extend(m),
                    Value::Null => {}
                    _ => return Err(with_task(err(&value.span, "args must be a mapping"))),
                },
                "listen" => listen = str_list(value, "listen").map_err(with_task)?,
                "notify" => notify = str_list(value, "notify").map_err(with_task)?,
                "action" | "local_action" => {
                    let (act, mut a) = split_action_string(value).map_err(with_task)?;
                    a.extend(args.clone());
                    args = a;
                    if k == "local_action" {
                        keywords.insert("delegate_to".into(), Value::String("localhost".into()));
                    }
                    if action.is_some() {
                        return Err(with_task(err(&value.span, "conflicting action statements")));
                    }
                    action = Some((act, value, value.span.clone(), true));
                }
                "loop" => {
                    loop_keys.push("loop".into());
                    keywords.insert(k.to_string(), value.to_value());
                }
                _ if OVERRIDE_KEYWORDS.contains(&k) => {
                    own.keywords.insert(k.to_string(), value.to_value());
                }
                _ if TASK_KEYS.contains(&k) => {
                    keywords.insert(k.to_string(), value.to_value());
                }
                _ => {
                    if let Some((prev, _, _, _)) = &action {
                        return Err(with_task(err(
                            &value.span,
                            format!("conflicting action statements: {prev}, {k}"),
                        )));
                    }
                    action = Some((
                        k.to_string(),
                        value,
                        node_key_span(node, k).unwrap_or_else(|| value.span.clone()),
                        false,
                    ));
                }
            }
        }
        if loop_keys.len() > 1 {
            return Err(with_task(err(
                &node.span,
                format!(
                    "only one loop is allowed per task, found: {}",
                    loop_keys.join(", ")
                ),
            )));
        }

        if node.get("block").is_some() {
            let block_node = node.get("block");
            let load = |me: &mut Self, key: &str| -> Result<Vec<Task>, Diagnostic> {
                match node.get(key) {
                    Some(n) => me.load_tasks(n, dir, &own, handlers),
                    None => Ok(Vec::new()),
                }
            };
            if let Some((a, _, span, _)) = &action {
                return Err(with_task(err(
                    span,
                    format!("a block cannot also have an action ('{a}')"),
                )));
            }
            let block = Block {
                block: load(self, "block")?,
                rescue: load(self, "rescue")?,
                always: load(self, "always")?,
            };
            out.push(Task {
                name,
                span: block_node
                    .map(|b| b.span.clone())
                    .unwrap_or_else(|| node.span.clone()),
                action: "block".into(),
                action_written: "block".into(),
                args: Map::new(),
                when: Vec::new(),
                tags: own.tags.clone(),
                vars: Map::new(),
                environment: Vec::new(),
                keywords,
                block: Some(block),
                listen,
                notify,
                role: own.role.clone(),
                inherited: None,
            });
            return Ok(());
        }

        let Some((written, value, span, via_action)) = action else {
            return Err(with_task(err(
                &node.span,
                "no module/action detected in task",
            )));
        };
        let Some(short) = (self.known_action)(&written) else {
            let mut names = modules::all_names();
            names.extend(ENGINE_ACTIONS.iter().map(|s| s.to_string()));
            let short = written.rsplit('.').next().unwrap_or(&written);
            let mut d = err(&span, format!("couldn't resolve module/action '{written}'"));
            if let Some(near) = modules::did_you_mean(short, names.iter().map(String::as_str)) {
                d = d.note(format!("did you mean '{near}'?"));
            }
            return Err(with_task(d));
        };

        // Module arguments: a mapping, a k=v string, or free-form text.
        let free_form = matches!(
            short.as_str(),
            "command"
                | "shell"
                | "raw"
                | "script"
                | "include_tasks"
                | "import_tasks"
                | "include_vars"
                | "include"
        ) || modules::lookup(&short).is_some_and(|m| m.free_form());
        if !via_action {
            match &value.kind {
                NodeKind::Map(_) => {
                    if let Value::Object(m) = value.to_value() {
                        let mut merged = m;
                        for (k, v) in args {
                            merged.entry(k).or_insert(v);
                        }
                        args = merged;
                    }
                }
                NodeKind::Str(s) => {
                    let mut parsed = if short == "meta" {
                        let mut m = Map::new();
                        m.insert("_raw_params".into(), Value::String(s.trim().to_string()));
                        m
                    } else {
                        kv::parse_kv(s, free_form)
                    };
                    parsed.extend(args);
                    args = parsed;
                }
                NodeKind::Null => {}
                _ => {
                    // Other scalars (numbers, bools) are free-form text.
                    let mut m = Map::new();
                    m.insert(
                        "_raw_params".into(),
                        Value::String(value.to_value().to_string()),
                    );
                    m.extend(args);
                    args = m;
                }
            }
        }

        // Misspelt arguments are refused now, before anything runs (keys are never templated).
        if let Some(module) = modules::lookup(&short)
            .filter(|_| !ENGINE_ACTIONS.contains(&short.as_str()) || short == "copy")
        {
            let names = module.arg_names();
            if !names.is_empty() {
                let unknown: Vec<&str> = args
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !k.starts_with('_') && !names.contains(k))
                    .collect();
                if let Some(first) = unknown.first() {
                    let mut supported: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| !n.starts_with('_'))
                        .collect();
                    supported.sort_unstable();
                    let mut d = err(&span, format!(
                        "Unsupported parameters for ({}) module: {}. Supported parameters include: {}.",
                        short,
                        unknown.join(", "),
                        supported.join(", ")
                    ));
                    if let Some(near) = modules::did_you_mean(first, supported.iter().copied()) {
                        d = d.note(format!("did you mean '{near}'?"));
                    }
                    return Err(with_task(d));
                }
            }
        }

        // Static imports are expanded here, with this task's keywords applied to each task.
        if short == "import_tasks" {
            let Some(file) = args
                .get("_raw_params")
                .or_else(|| args.get("file"))
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return Err(with_task(err(&span, "import_tasks needs a file name")));
            };
            if file.contains("{{") {
                return Err(with_task(err(
                    &span,
                    "import_tasks cannot use a templated file name (use include_tasks)",
                )));
            }
            let mut path = dir.join(&file);
            // In a role, a relative import is also found in the role's tasks/ (or handlers/).
            if let Some(role) = own.role.as_ref().filter(|_| !path.is_file()) {
                let sub = if handlers { "handlers" } else { "tasks" };
                let in_role = role.path.join(sub).join(&file);
                if in_role.is_file() {
                    path = in_role;
                }
            }
            let mut imported_inherited = own.clone();
            imported_inherited.keywords.extend(keywords);
            let tasks = self
                .load_task_file(&path, &imported_inherited, handlers)
                .map_err(|d| with_task(d.at_opt(Some(span.clone()))))?;
            out.extend(tasks);
            return Ok(());
        }

        if short == "meta" && args.get("_raw_params").and_then(Value::as_str) == Some("end_role") {
            if handlers {
                return Err(with_task(err(
                    &span,
                    "Cannot execute 'end_role' from a handler",
                )));
            }
            if own.role.is_none() {
                return Err(with_task(err(
                    &span,
                    "Cannot execute 'end_role' from outside of a role",
                )));
            }
        }
        if short == "import_role" || short == "include_role" {
            check_role_task_args(&short, &args, &keywords, handlers, &span).map_err(with_task)?;
        }
        if short == "import_role" {
            let mut imported_inherited = own.clone();
            imported_inherited.keywords.extend(keywords);
            let tasks = self.import_role(&args, &own, imported_inherited, &span)?;
            out.extend(tasks);
            return Ok(());
        }
        if short == "include_role" {
            self.note_include_role(&args, own.role.as_deref(), &span);
        }

        let includes = matches!(short.as_str(), "include_tasks" | "include" | "include_role");
        for (k, v) in &own.keywords {
            keywords.entry(k.clone()).or_insert_with(|| v.clone());
        }
        out.push(Task {
            name,
            span,
            action: short,
            action_written: written,
            args,
            when: own.when,
            tags: own.tags,
            vars: own.vars,
            environment: own.environment,
            keywords,
            block: None,
            listen,
            notify,
            role: own.role,
            inherited: includes.then(|| Box::new(inherited.clone())),
        });
        Ok(())
    }

    /// `import_role`: the role compiled now, its tasks in place of the import (with the
    /// import's keywords), its handlers added to the play's.
    fn import_role(
        &mut self,
        args: &Map<String, Value>,
        own: &Inherited,
        inherited: Inherited,
        span: &Span,
    ) -> Result<Vec<Task>, Diagnostic> {
        let name = role_task_name(args).unwrap_or_default();
        let mut spec = RoleSpec::named(name.clone(), span.clone());
        // The import's vars are the role's vars too (Ansible: `ri.vars |= self.vars`).
        spec.vars = own.vars.clone();
        let how = CallHow {
            from: from_files(args),
            from_include: true,
            allow_duplicates: Some(
                args.get("allow_duplicates")
                    .and_then(modules::args::ansible_bool)
                    .unwrap_or(true),
            ),
            skip_validation: args
                .get("rolespec_validate")
                .and_then(modules::args::ansible_bool)
                == Some(false),
        };
        let lineage = own
            .role
            .as_ref()
            .map(|r| r.lineage_for_child())
            .unwrap_or_default();
        // Imported by the play, it is one of the play's roots; by a role, an edge from it.
        let caller = own
            .role
            .as_ref()
            .and_then(|r| self.roles.play.roles.graph.node_of(&r.key));
        let root = match caller {
            Some(_) => None,
            None => Some(self.roles.play.roles.graph.add_root(
                roles::graph::Via::ImportRole,
                &name,
                span,
            )),
        };
        let expanded = self.expand_role(&spec, &how, &lineage, &inherited)?;
        let public = args
            .get("public")
            .map(|v| modules::args::ansible_bool(v).unwrap_or(true))
            .unwrap_or(true);
        let state = &mut self.roles.play;
        match (root, caller) {
            (Some(root), _) => state.roles.graph.roots[root].node = Some(expanded.node),
            (None, Some(from)) => {
                state
                    .roles
                    .graph
                    .add_edge(from, expanded.node, span, roles::graph::Via::ImportRole)
            }
            (None, None) => {}
        }
        if public {
            state.roles.add_public(&expanded.instance);
        }
        state.import_handlers.extend(expanded.handlers);
        Ok(expanded.tasks)
    }

    /// An `include_role` seen at load time: shown in the role graph, and its handlers' names
    /// (when the role is named literally) may be notified by the play's tasks.
    fn note_include_role(
        &mut self,
        args: &Map<String, Value>,
        caller: Option<&RoleCall>,
        span: &Span,
    ) {
        let Some(name) = role_task_name(args) else {
            return;
        };
        let graph = &mut self.roles.play.roles.graph;
        match caller.and_then(|c| graph.node_of(&c.key)) {
            Some(node) => graph.graph[node]
                .includes
                .push((name.clone(), span.clone())),
            None => {
                graph.add_root(roles::graph::Via::IncludeRole, &name, span);
            }
        }
        if !name.contains("{{") {
            let from = from_files(args);
            let base = caller.and_then(|c| c.path.parent()).map(Path::to_path_buf);
            let names = self.peek_role_handler_names(
                &name,
                from.handlers.as_deref(),
                base.as_deref(),
                &mut HashSet::new(),
            );
            self.roles.play.dynamic_handler_names.extend(names);
        }
    }
}

/// The role an `include_role`/`import_role` names (`name:`, or its alias `role:`).
pub fn role_task_name(args: &Map<String, Value>) -> Option<String> {
    match args.get("name").or_else(|| args.get("role"))? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// `tasks_from`, `vars_from`, `defaults_from`, `handlers_from` of an include/import_role.
pub fn from_files(args: &Map<String, Value>) -> FromFiles {
    let get = |k: &str| match args.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    FromFiles {
        tasks: get("tasks_from"),
        vars: get("vars_from"),
        defaults: get("defaults_from"),
        handlers: get("handlers_from"),
    }
}

/// The checks Ansible makes when it loads an `include_role`/`import_role`.
fn check_role_task_args(
    action: &str,
    args: &Map<String, Value>,
    keywords: &Map<String, Value>,
    handlers: bool,
    span: &Span,
) -> Result<(), Diagnostic> {
    if handlers {
        return Err(err(
            span,
            format!("Using '{action}' as a handler is not supported."),
        ));
    }
    if role_task_name(args).is_none() {
        return Err(err(
            span,
            format!("'name' is a required field for {action}."),
        ));
    }
    let mut bad: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|k| !roles::ROLE_TASK_ARGS.contains(k))
        .collect();
    if action == "import_role" && args.contains_key("apply") {
        bad.push("apply");
    }
    if !bad.is_empty() {
        return Err(err(
            span,
            format!("Invalid options for {action}: {}", bad.join(",")),
        ));
    }
    for k in ["tasks_from", "vars_from", "defaults_from", "handlers_from"] {
        if let Some(v) = args.get(k).filter(|v| !v.is_string()) {
            return Err(err(
                span,
                format!("Expected a string for {k} but got {v} instead"),
            ));
        }
    }
    if args.get("apply").is_some_and(|a| !a.is_object()) {
        return Err(err(
            span,
            "Expected a dict for apply but got something else instead",
        ));
    }
    if action == "import_role"
        && keywords
            .keys()
            .any(|k| k == "loop" || k.starts_with("with_"))
    {
        return Err(err(
            span,
            "You cannot use loops on 'import_role' statements. You should use 'include_role' instead.",
        ));
    }
    Ok(())
}

/// The directory a file is in; `.` for a bare file name.
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `action: copy src=a dest=b` / `action: {module: copy, src: a}` split into name and args.
fn split_action_string(value: &Node) -> Result<(String, Map<String, Value>), Diagnostic> {
    match value.to_value() {
        Value::String(s) => {
            let s = s.trim();
            let (name, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
            let free = matches!(
                name.rsplit('.').next(),
                Some("command" | "shell" | "raw" | "script")
            );
            Ok((name.to_string(), kv::parse_kv(rest, free)))
        }
        Value::Object(mut m) => match m.remove("module") {
            Some(Value::String(name)) => Ok((name, m)),
            _ => Err(err(&value.span, "action: needs a 'module' key")),
        },
        _ => Err(err(&value.span, "action: must be a string or a mapping")),
    }
}

fn node_key_span(node: &Node, key: &str) -> Option<Span> {
    match &node.kind {
        NodeKind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k.span.clone()),
        _ => None,
    }
}

/// The names a handler answers to: its name, `role : name` for a role's handler, and its
/// `listen` topics.
pub fn handler_names(h: &Task) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = &h.name {
        out.push(n.clone());
        if let Some(r) = &h.role {
            out.push(format!("{} : {n}", r.name));
        }
    }
    out.extend(h.listen.iter().cloned());
    out
}

/// Every `notify` must name a handler or a `listen` topic of the play (checked at load time).
/// `dynamic` holds the handler names of roles that `include_role` will bring.
fn check_notify(play: &Play, dynamic: &[String]) -> Result<(), Diagnostic> {
    let mut known: HashSet<String> = dynamic.iter().cloned().collect();
    fn collect_handlers(tasks: &[Task], known: &mut HashSet<String>) {
        for t in tasks {
            if let Some(b) = &t.block {
                collect_handlers(&b.block, known);
                collect_handlers(&b.rescue, known);
                collect_handlers(&b.always, known);
            }
            known.extend(handler_names(t));
        }
    }
    collect_handlers(&play.handlers, &mut known);
    fn check(tasks: &[Task], known: &HashSet<String>) -> Result<(), Diagnostic> {
        for t in tasks {
            if let Some(b) = &t.block {
                check(&b.block, known)?;
                check(&b.rescue, known)?;
                check(&b.always, known)?;
            }
            for n in &t.notify {
                if !known.contains(n) && !n.contains("{{") {
                    let mut d = Diagnostic::new(format!(
                        "The requested handler '{n}' was not found in either the main handlers list nor in the listening handlers list"
                    ))
                    .at(t.span.clone())
                    .in_task(t.display_name());
                    if let Some(near) = modules::did_you_mean(n, known.iter().map(String::as_str)) {
                        d = d.note(format!("did you mean '{near}'?"));
                    }
                    return Err(d);
                }
            }
        }
        Ok(())
    }
    check(&play.pre_tasks, &known)?;
    check(&play.tasks, &known)?;
    check(&play.post_tasks, &known)?;
    check(&play.handlers, &known)
}

/// Every task of a list, depth first, into blocks (for `--list-tasks`, `--list-tags`). As
/// ansible-playbook lists them: a block's own tasks, not its `rescue`/`always`, and not the
/// tasks the engine adds itself.
pub fn walk<'a>(tasks: &'a [Task], out: &mut Vec<&'a Task>) {
    for t in tasks {
        match &t.block {
            Some(b) => walk(&b.block, out),
            None if t.is_implicit() => {}
            None => out.push(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Playbook, Diagnostic> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.yml");
        std::fs::write(&path, text).expect("write");
        let r = Loader::default().load_playbook(&path);
        drop(dir);
        r
    }

    #[test]
    fn tasks_args_blocks_and_inheritance() {
        let pb = load(
            "- hosts: all\n  tasks:\n    - name: a\n      copy: src=x dest=/y mode=0644\n    - block:\n        - command: ls -l chdir=/tmp\n          when: y\n      when: x\n      become: true\n      tags: [t]\n",
        )
        .expect("loads");
        let play = &pb.plays[0];
        assert_eq!(play.tasks[0].action, "copy");
        assert_eq!(
            play.tasks[0].args.get("mode"),
            Some(&Value::String("0644".into()))
        );
        let inner = &play.tasks[1].block.as_ref().expect("block").block[0];
        assert_eq!(inner.action, "command");
        assert_eq!(
            inner.args.get("_raw_params"),
            Some(&Value::String("ls -l".into()))
        );
        assert_eq!(
            inner.when,
            vec![Value::String("x".into()), Value::String("y".into())]
        );
        assert_eq!(inner.keyword("become"), Some(&Value::Bool(true)));
        assert_eq!(inner.tags, vec!["t".to_string()]);
    }

    #[test]
    fn unknown_module_suggests_the_near_name() {
        let e =
            load("- hosts: all\n  tasks:\n    - name: x\n      copyy: {}\n").expect_err("fails");
        assert_eq!(e.message, "couldn't resolve module/action 'copyy'");
        assert_eq!(e.notes, vec!["did you mean 'copy'?".to_string()]);
        assert_eq!(e.span.expect("span").line, 4);
        assert_eq!(e.task.as_deref(), Some("x"));
    }

    #[test]
    fn missing_handler_is_a_load_error() {
        let e = load("- hosts: all\n  tasks:\n    - command: ls\n      notify: restart nginx\n  handlers:\n    - name: restart ngnix\n      command: ls\n")
            .expect_err("fails");
        assert!(
            e.message.contains("'restart nginx' was not found"),
            "{}",
            e.message
        );
        assert_eq!(e.notes, vec!["did you mean 'restart ngnix'?".to_string()]);
    }
}
