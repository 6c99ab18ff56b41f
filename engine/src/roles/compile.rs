//! Compiling role calls: the loader finds a role, checks its dependency graph for cycles,
//! compiles its dependencies, then its own tasks and handlers, each task carrying the call's
//! `RoleCall` (and the argument-spec check and completion marker Ansible adds).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value};

use super::files::{load_def, load_role_vars, role_files};
use super::{
    absolute, apply_keywords, argspec, graph, CallHow, Expanded, Lineage, PlayRoleState, PlayRoles,
    RoleCall, RoleDef, RoleInstance, RoleOwn, RoleSpec,
};
use crate::error::{exit, Diagnostic, Span};
use crate::playbook::{Inherited, Loader, Task};
use crate::vars::RoleVars;
use crate::yaml::{self, Node};

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
