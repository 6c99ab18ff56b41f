//! Carrying out one task once: argument templating, connections, and the actions the engine runs
//! itself (debug, set_fact, assert, fail, pause, include_vars, template, copy/fetch/script sources).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::hostwrap::{Become, TaskHost};
use super::task::Ran;
use super::{Conn, HostRun, PlayCtx, Runner};
use crate::connection::{ConnectOptions, ControllerSettings, SshHost};
use crate::error::{exit, Diagnostic};
use crate::playbook::Task;
use crate::template::Scope;

/// Whether a task runs in check mode and shows diffs (the play's setting or the task's own).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RunMode {
    pub check: bool,
    pub diff: bool,
}

/// Load a vars file (YAML or JSON) into a mapping; an empty file is an empty mapping.
pub(crate) fn load_vars_file(path: &Path) -> Result<Map<String, Value>, Diagnostic> {
    let node = crate::yaml::load_one(path)?;
    match node.to_value() {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(Diagnostic::new(format!(
            "{} must contain a mapping of variables",
            path.display()
        ))
        .at(node.span)
        .exit_code(exit::PARSE)),
    }
}

/// Controller-side glob (`with_fileglob`), relative patterns against `base/files` then `base`.
pub(crate) fn fileglob(patterns: &[String], base: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for pat in patterns {
        let (dir_part, file_part) = match pat.rfind('/') {
            Some(i) => (&pat[..i], &pat[i + 1..]),
            None => ("", pat.as_str()),
        };
        let Ok(glob) = globset::Glob::new(file_part) else {
            continue;
        };
        let matcher = glob.compile_matcher();
        let dirs: Vec<PathBuf> = if Path::new(dir_part).is_absolute() {
            vec![PathBuf::from(dir_part)]
        } else {
            vec![base.join("files").join(dir_part), base.join(dir_part)]
        };
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut found: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file() && matcher.is_match(e.file_name()))
                .map(|e| e.path().display().to_string())
                .collect();
            if !found.is_empty() {
                found.sort();
                out.extend(found);
                break;
            }
        }
    }
    out
}

/// `with_sequence`: `start=1 end=5 stride=1 format=%d` or `count=3`, as strings.
pub(crate) fn sequence(spec: &Value) -> Result<Vec<String>, String> {
    let map = match spec {
        Value::String(s) => {
            let s = s.trim();
            // Shortcut form: [start-]end[/stride][:format]
            if !s.contains('=') {
                let mut m = Map::new();
                let (range, format) = s
                    .split_once(':')
                    .map(|(a, b)| (a, Some(b)))
                    .unwrap_or((s, None));
                let (range, stride) = range
                    .split_once('/')
                    .map(|(a, b)| (a, Some(b)))
                    .unwrap_or((range, None));
                let (start, end) = range
                    .split_once('-')
                    .map(|(a, b)| (Some(a), b))
                    .unwrap_or((None, range));
                m.insert("start".into(), Value::String(start.unwrap_or("1").into()));
                m.insert("end".into(), Value::String(end.into()));
                if let Some(st) = stride {
                    m.insert("stride".into(), Value::String(st.into()));
                }
                if let Some(f) = format {
                    m.insert("format".into(), Value::String(f.into()));
                }
                m
            } else {
                crate::playbook::kv::parse_kv(s, false)
            }
        }
        Value::Object(m) => m.clone(),
        other => return Err(format!("with_sequence: bad spec {other}")),
    };
    let num = |k: &str| -> Result<Option<i64>, String> {
        match map.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_i64()),
            Some(Value::String(s)) => {
                let s = s.trim();
                let parsed = if let Some(h) = s.strip_prefix("0x") {
                    i64::from_str_radix(h, 16)
                } else {
                    s.parse()
                };
                parsed
                    .map(Some)
                    .map_err(|_| format!("with_sequence: can't parse {k}={s}"))
            }
            Some(other) => Err(format!("with_sequence: bad {k}: {other}")),
        }
    };
    let start = num("start")?.unwrap_or(1);
    let stride = num("stride")?.unwrap_or(if num("end")?.is_some_and(|e| e < start) {
        -1
    } else {
        1
    });
    let end = match (num("end")?, num("count")?) {
        (Some(e), None) => e,
        (None, Some(c)) => start + (c - 1) * stride,
        (Some(_), Some(_)) => return Err("with_sequence: can't specify both count and end".into()),
        (None, None) => return Err("with_sequence: must specify count or end".into()),
    };
    if stride == 0 {
        return Err("with_sequence: stride must not be 0".into());
    }
    let format = map
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or("%d")
        .to_string();
    let mut out = Vec::new();
    let mut i = start;
    while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
        out.push(printf_int(&format, i));
        i += stride;
        if out.len() > 100_000 {
            return Err("with_sequence: too many items".into());
        }
    }
    Ok(out)
}

/// The `%d`, `%02d`, `%x`, `%o` subset of printf that sequence formats use.
fn printf_int(format: &str, n: i64) -> String {
    let re = regex::Regex::new(r"%(0?)(\d*)([dxXo])").ok();
    let Some(re) = re else { return n.to_string() };
    re.replace(format, |c: &regex::Captures<'_>| {
        let width: usize = c[2].parse().unwrap_or(0);
        let body = match &c[3] {
            "x" => format!("{n:x}"),
            "X" => format!("{n:X}"),
            "o" => format!("{n:o}"),
            _ => n.to_string(),
        };
        if c[1].is_empty() {
            format!("{body:>width$}")
        } else {
            format!("{body:0>width$}")
        }
    })
    .into_owned()
}

/// Hand a controller file's bytes to the copy (or unarchive) module (`_content_b64`,
/// binary-safe) with its path (`_src`).
fn attach_source(args: &mut Map<String, Value>, data: &[u8], path: &Path) {
    args.insert(
        "_content_b64".into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
    );
    args.insert("_src".into(), Value::String(path.display().to_string()));
}

/// The action's fully qualified name, as Ansible's messages give it
/// (`ansible.builtin.debug`, `community.general.pacman`).
fn qualified_action(t: &Task) -> String {
    if t.action_written.contains('.') {
        return t.action_written.clone();
    }
    match modules::lookup(&t.action).and_then(|m| m.collections().first()) {
        Some(collection) => format!("{collection}.{}", t.action),
        None => format!("ansible.builtin.{}", t.action),
    }
}

fn drop_omitted(args: &mut Map<String, Value>) {
    args.retain(|_, v| v.as_str() != Some(crate::template::OMIT_TOKEN));
}

/// Whether `execute` hands the action to its module as it is (no engine-side work first),
/// which is what a loop's batch of items (`Module::run_many`) needs.
pub(crate) fn runs_module(action: &str) -> bool {
    !matches!(
        action,
        "debug"
            | "set_fact"
            | "assert"
            | "fail"
            | "pause"
            | "include_vars"
            | "validate_argument_spec"
            | "template"
            | "copy"
            | "unarchive"
            | "fetch"
            | "script"
            | "setup"
            | "gather_facts"
    )
}

impl Runner {
    /// Run a task once (one loop item) on a host and return its raw result.
    pub(crate) fn execute(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        st: &mut HostRun,
        scope: &Scope,
    ) -> Ran {
        let args = match self.task_args(ctx, t, scope) {
            Ok(args) => args,
            Err(ran) => return ran,
        };
        let mode = self.run_mode(ctx, t, scope);
        if matches!(
            t.action.as_str(),
            "debug" | "set_fact" | "assert" | "fail" | "pause"
        ) && args.contains_key("_raw_params")
        {
            return Ran::failed(format!(
                "Action 'ansible.builtin.{}' does not support raw params.",
                t.action
            ));
        }
        match t.action.as_str() {
            "debug" => self.act_debug(t, &args, scope),
            "set_fact" => act_set_fact(args),
            "assert" => self.act_assert(t, &args, scope),
            "fail" => {
                let msg = args
                    .get("msg")
                    .map(value_text)
                    .unwrap_or_else(|| "Failed as requested from task".into());
                Ran::failed(msg)
            }
            "pause" => act_pause(&args),
            "group_by" => self.act_group_by(ctx, st, &args),
            "add_host" => self.act_add_host(ctx, st, args),
            "wait_for_connection" => self.act_wait_for_connection(st, &args, scope),
            "include_vars" => self.act_include_vars(ctx, t, &args),
            "validate_argument_spec" => Ran::ok(crate::roles::argspec::validate(&args, |name| {
                let v = scope.get(name)?;
                Some(self.templar.template_value(v, scope).map_err(|e| e.message))
            })),
            "template" => self.act_template(ctx, t, st, args, scope, mode),
            "copy" => self.act_copy(ctx, t, st, args, scope, mode),
            "unarchive" => self.act_unarchive(ctx, t, st, args, scope, mode),
            "fetch" => self.act_fetch(ctx, t, st, &args, scope, mode.check),
            "script" => self.act_script(ctx, t, st, args, scope, mode),
            "setup" | "gather_facts" => self.run_module("setup", st, args, scope, t, mode),
            action => self.run_module(action, st, args, scope, t, mode),
        }
    }

    /// The task's arguments for one run: templated, `omit`ted ones dropped, `module_defaults`
    /// filled in.
    pub(crate) fn task_args(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        scope: &Scope,
    ) -> Result<Map<String, Value>, Ran> {
        // Key by key, so a failure names the argument, worded as ansible-core 2.19 words it.
        let mut args = Map::with_capacity(t.args.len());
        for (key, raw) in &t.args {
            match self.templar.template_value(raw, scope) {
                Ok(v) => {
                    args.insert(key.clone(), v);
                }
                Err(e) => {
                    let cause = match e.undefined {
                        Some(_) => e.message,
                        None => format!("Error rendering template: {}", e.message),
                    };
                    let mut ran = Ran::failed(format!(
                        "Task failed: Finalization of task args for '{}' failed: Error while \
                         resolving value for '{key}': {cause}",
                        qualified_action(t)
                    ));
                    // Printed on one line, as Ansible prints a failure its action never saw.
                    ran.result
                        .insert("_ansible_verbose_always".into(), Value::Bool(false));
                    return Err(ran);
                }
            }
        }
        drop_omitted(&mut args);
        if let Some(Value::Object(defaults)) = ctx.play.keywords.get("module_defaults") {
            for (name, d) in defaults {
                let applies = crate::playbook::resolve_action(name).is_some_and(|n| n == t.action);
                if let (true, Value::Object(d)) = (applies, d) {
                    for (k, v) in d {
                        args.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        Ok(args)
    }

    pub(crate) fn run_mode(&self, ctx: &PlayCtx<'_>, t: &Task, scope: &Scope) -> RunMode {
        RunMode {
            check: match t.keyword("check_mode") {
                Some(v) => self.keyword_bool(Some(v), scope),
                None => ctx.check,
            },
            diff: match t.keyword("diff") {
                Some(v) => self.keyword_bool(Some(v), scope),
                None => ctx.diff,
            },
        }
    }

    /// A module on the host (or its `delegate_to` host), with the task's environment and become.
    pub(crate) fn run_module(
        &self,
        name: &str,
        st: &mut HostRun,
        args: Map<String, Value>,
        scope: &Scope,
        t: &Task,
        mode: RunMode,
    ) -> Ran {
        let Some(module) = modules::lookup(name) else {
            return Ran::failed(format!("couldn't resolve module/action '{name}'"));
        };
        if mode.check && !module.supports_check() {
            let mut r = Map::new();
            r.insert("changed".into(), Value::Bool(false));
            r.insert("skipped".into(), Value::Bool(true));
            r.insert(
                "msg".into(),
                Value::String("This module does not support check mode.".into()),
            );
            return Ran::ok(r);
        }
        self.on_task_host(
            st,
            scope,
            t,
            mode,
            |mctx| module_ran(module.run(mctx, &args)),
            |ran| ran.unreachable,
        )
        .unwrap_or_else(|ran| ran)
    }

    /// Run `f` with the task's view of the host that runs its modules: the host's own
    /// connection or its `delegate_to` host's, with the task's environment and become.
    /// `Err`: the host could not be reached. `gone(&result)` says the host went away during
    /// `f`, so a delegate's session is not given back to the pool.
    pub(crate) fn on_task_host<R>(
        &self,
        st: &mut HostRun,
        scope: &Scope,
        t: &Task,
        mode: RunMode,
        f: impl FnOnce(&mut modules::Ctx<'_>) -> R,
        gone: impl FnOnce(&R) -> bool,
    ) -> Result<R, Ran> {
        let env = self.task_environment(t, scope);
        let become_ = self.task_become(t, scope);
        let delegate = self
            .keyword_str(t.keyword("delegate_to"), scope)
            .filter(|d| d != &st.name);
        let empty = Map::new();
        let facts = match st.layers.facts.get("ansible_facts") {
            Some(Value::Object(m)) => m,
            _ => &empty,
        };
        let mut delegate_conn: Option<Conn> = None;
        let conn: &mut Conn = match &delegate {
            // A delegate's session is borrowed from the pool (opened once) and given back below.
            Some(d) => match self
                .delegate_pool
                .take(d)
                .map_or_else(|| self.connect(d, scope), Ok)
            {
                Ok(c) => delegate_conn.insert(c),
                Err(msg) => return Err(unreachable(msg)),
            },
            // The host's own connection, as `host_conn` opens it (borrowing only `st.conn`).
            None => {
                if st.conn.is_none() {
                    st.conn = Some(self.connect(&st.name, scope).map_err(unreachable)?);
                }
                st.conn
                    .as_mut()
                    .ok_or_else(|| unreachable("no connection".into()))?
            }
        };
        let mut host = TaskHost {
            inner: conn.as_mut(),
            env,
            become_,
        };
        let mut mctx = modules::Ctx {
            host: &mut host,
            check: mode.check,
            diff: mode.diff,
            facts,
        };
        let result = f(&mut mctx);
        if let (Some(d), Some(c)) = (delegate, delegate_conn) {
            if !gone(&result) {
                self.delegate_pool.put(&d, c);
            }
        }
        Ok(result)
    }

    /// The host's own connection, opened on first use and kept for the rest of the run.
    fn host_conn<'s>(&self, st: &'s mut HostRun, scope: &Scope) -> Result<&'s mut Conn, Ran> {
        if st.conn.is_none() {
            st.conn = Some(self.connect(&st.name, scope).map_err(unreachable)?);
        }
        st.conn
            .as_mut()
            .ok_or_else(|| unreachable("no connection".into()))
    }

    /// Open a connection to a host: `local` for localhost or when asked for, else SSH
    /// (`ssh`, and `smart`/`paramiko`, which mean ssh to play).
    pub(crate) fn connect(&self, host: &str, scope: &Scope) -> Result<Conn, String> {
        let current = scope.get("inventory_hostname").and_then(Value::as_str);
        // Another host's variables when connecting to a delegate; `None`: the task's own host.
        let delegate_vars = match scope.hostvars.as_ref().and_then(|h| h.vars_of(host)) {
            Some(v) if Some(host) != current => Some(v),
            _ => None,
        };
        let host_vars = delegate_vars.as_ref().unwrap_or(&scope.vars);
        let conn_type = self
            .opts
            .connection
            .clone()
            .or_else(|| {
                host_vars
                    .get("ansible_connection")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                if matches!(host, "localhost" | "127.0.0.1" | "::1") {
                    "local".into()
                } else {
                    "ssh".into()
                }
            });
        match conn_type.as_str() {
            "local" => Ok(Box::new(modules::local::LocalHost::new(host))),
            "ssh" | "paramiko" | "smart" => {
                // Connection variables may be templates ("{{ bastion_ip }}"); the host's own
                // are read as templates read them (what the run made stays text), a
                // delegate's are templated in the task's scope.
                let var = |name: &str| match &delegate_vars {
                    None => self.var_str(name, scope),
                    Some(vars) => self.keyword_str(vars.get(name), scope),
                };
                let settings = self.controller_settings();
                let options = ConnectOptions::from_vars(host, &var, &settings)
                    .map_err(|e| format!("Failed to connect to the host via ssh: {e}"))?;
                Ok(Box::new(SshHost::connect(options)?))
            }
            other => Err(format!("the connection plugin '{other}' was not found")),
        }
    }

    /// What the command line and play.toml say about connections.
    fn controller_settings(&self) -> ControllerSettings {
        ControllerSettings {
            remote_user: self.opts.remote_user.clone(),
            private_key: self.opts.private_key.clone(),
            timeout: self.opts.timeout,
            host_key_checking: self.opts.host_key_checking,
            home: std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default(),
            local_user: std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .or_else(current_user)
                .unwrap_or_else(|| "root".into()),
        }
    }

    pub(crate) fn task_environment(&self, t: &Task, scope: &Scope) -> Vec<(String, String)> {
        let mut env = Map::new();
        for e in &t.environment {
            if let Ok(Value::Object(m)) = self.templar.template_value(e, scope) {
                env.extend(m);
            }
        }
        env.into_iter().map(|(k, v)| (k, value_text(&v))).collect()
    }

    pub(crate) fn task_become(&self, t: &Task, scope: &Scope) -> Option<Become> {
        let var = |k: &str| scope.get(k).cloned();
        let enabled = match t.keyword("become") {
            Some(v) => self.keyword_bool(Some(v), scope),
            None => var("ansible_become")
                .map(|v| self.keyword_bool(Some(&v), scope))
                .unwrap_or(self.opts.become_),
        };
        if !enabled {
            return None;
        }
        let user = self
            .keyword_str(t.keyword("become_user"), scope)
            .or_else(|| self.var_str("ansible_become_user", scope))
            .or_else(|| self.opts.become_user.clone())
            .unwrap_or_else(|| "root".into());
        let method = self
            .keyword_str(t.keyword("become_method"), scope)
            .or_else(|| self.var_str("ansible_become_method", scope))
            .or_else(|| self.opts.become_method.clone())
            .unwrap_or_else(|| "sudo".into());
        // Already that user on a local connection: nothing to switch.
        let is_local = scope.get("ansible_connection").and_then(Value::as_str) == Some("local")
            || self.opts.connection.as_deref() == Some("local")
            || matches!(
                scope.get("inventory_hostname").and_then(Value::as_str),
                Some("localhost")
            );
        if is_local && current_user().as_deref() == Some(user.as_str()) {
            return None;
        }
        let password = [
            "ansible_become_password",
            "ansible_become_pass",
            "ansible_sudo_pass",
        ]
        .iter()
        .find_map(|k| self.var_str(k, scope))
        .or_else(|| self.opts.become_password.as_ref().map(|s| s.0.clone()));
        Some(Become {
            method,
            user,
            password,
        })
    }

    fn act_debug(&self, t: &Task, args: &Map<String, Value>, scope: &Scope) -> Ran {
        let mut r = Map::new();
        let needed = args
            .get("verbosity")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(0);
        if needed > u64::from(self.opts.verbosity) {
            r.insert("changed".into(), Value::Bool(false));
            r.insert(
                "skipped_reason".into(),
                Value::String("Verbosity threshold not met.".into()),
            );
            r.insert("skipped".into(), Value::Bool(true));
            return Ran::ok(r);
        }
        if let Some(Value::String(var)) = t.args.get("var") {
            let value = match self.templar.eval_expr(var, scope) {
                Ok(v) => v,
                Err(e) if e.undefined.is_some() => Value::String("VARIABLE IS NOT DEFINED!".into()),
                Err(e) => Value::String(e.message),
            };
            r.insert(var.clone(), value);
        } else {
            r.insert(
                "msg".into(),
                args.get("msg")
                    .cloned()
                    .unwrap_or_else(|| Value::String("Hello world!".into())),
            );
        }
        r.insert("changed".into(), Value::Bool(false));
        Ran::ok(r)
    }

    fn act_assert(&self, t: &Task, args: &Map<String, Value>, scope: &Scope) -> Ran {
        let that: Vec<Value> = match t.args.get("that") {
            Some(Value::Array(a)) => a.clone(),
            Some(other) => vec![other.clone()],
            None => return Ran::failed("missing required arguments: that"),
        };
        let quiet = args
            .get("quiet")
            .is_some_and(|v| modules::args::ansible_bool(v).unwrap_or(false));
        for cond in &that {
            let text = value_text(cond);
            let ok = match cond {
                Value::Bool(b) => *b,
                _ => match self.templar.eval_bool(&text, scope) {
                    Ok(b) => b,
                    Err(e) => {
                        return Ran::failed(format!(
                            "The conditional check '{text}' failed. The error was: {}",
                            e.message
                        ))
                    }
                },
            };
            if !ok {
                let mut r = Map::new();
                r.insert("assertion".into(), Value::String(text));
                r.insert("changed".into(), Value::Bool(false));
                r.insert("evaluated_to".into(), Value::Bool(false));
                r.insert("failed".into(), Value::Bool(true));
                let msg = args
                    .get("fail_msg")
                    .or_else(|| args.get("msg"))
                    .cloned()
                    .unwrap_or_else(|| Value::String("Assertion failed".into()));
                r.insert("msg".into(), msg);
                return Ran::ok(r);
            }
        }
        let mut r = Map::new();
        r.insert("changed".into(), Value::Bool(false));
        let msg = args
            .get("success_msg")
            .cloned()
            .unwrap_or_else(|| Value::String("All assertions passed".into()));
        r.insert("msg".into(), msg);
        if quiet {
            r.insert("_ansible_verbose_always".into(), Value::Bool(false));
        }
        Ran::ok(r)
    }

    fn act_include_vars(&self, ctx: &PlayCtx<'_>, t: &Task, args: &Map<String, Value>) -> Ran {
        let mut files = Vec::new();
        if let Some(file) = args
            .get("_raw_params")
            .or_else(|| args.get("file"))
            .and_then(Value::as_str)
        {
            match self.find_file(ctx, t, "vars", file) {
                Some(p) => files.push(p),
                None => return Ran::failed(format!("Could not find or access '{file}'")),
            }
        } else if let Some(dir) = args.get("dir").and_then(Value::as_str) {
            let Some(d) = self.find_file(ctx, t, "vars", dir) else {
                return Ran::failed(format!("{dir} directory does not exist"));
            };
            let pattern = args
                .get("files_matching")
                .and_then(Value::as_str)
                .and_then(|p| regex::Regex::new(p).ok());
            let mut found = Vec::new();
            walk_files(&d, &mut found);
            found.retain(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let ext_ok = ["yml", "yaml", "json"]
                    .iter()
                    .any(|e| name.ends_with(&format!(".{e}")));
                ext_ok && pattern.as_ref().is_none_or(|re| re.is_match(name))
            });
            found.sort();
            files.extend(found);
        } else {
            return Ran::failed("one of the following is required: file, dir");
        }
        let mut facts = Map::new();
        for f in &files {
            match load_vars_file(f) {
                Ok(m) => facts.extend(m),
                Err(d) => return Ran::failed(d.message),
            }
        }
        let facts = match args.get("name").and_then(Value::as_str) {
            Some(name) => {
                let mut m = Map::new();
                m.insert(name.to_string(), Value::Object(facts));
                m
            }
            None => facts,
        };
        let mut r = Map::new();
        r.insert("ansible_facts".into(), Value::Object(facts));
        r.insert(
            "ansible_included_var_files".into(),
            files
                .iter()
                .map(|p| Value::String(p.display().to_string()))
                .collect(),
        );
        r.insert("changed".into(), Value::Bool(false));
        Ran::ok(r)
    }

    /// A controller-side file a task names (each place's `kind/` first): in a role, the role's
    /// own folders, then those of the roles that led to it; then beside the task's file, then
    /// beside the playbook (Ansible's search path).
    pub(crate) fn find_file(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        kind: &str,
        name: &str,
    ) -> Option<PathBuf> {
        let p = PathBuf::from(name);
        if p.is_absolute() {
            return p.exists().then_some(p);
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(role) = &t.role {
            dirs.extend(role.chain.iter().rev().map(|r| r.path.clone()));
        }
        if let Some(d) = t.span.file.parent() {
            dirs.push(d.to_path_buf());
            if let Some(parent) = d.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
        dirs.push(ctx.play.dir.clone());
        for d in &dirs {
            for c in [d.join(kind).join(name), d.join(name)] {
                if c.exists() {
                    return Some(c);
                }
            }
        }
        None
    }

    fn act_template(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        st: &mut HostRun,
        mut args: Map<String, Value>,
        scope: &Scope,
        mode: RunMode,
    ) -> Ran {
        let Some(src) = args.remove("src").map(|v| value_text(&v)) else {
            return Ran::failed("src is required");
        };
        let Some(path) = self.find_file(ctx, t, "templates", &src) else {
            return Ran::failed(format!("Could not find or access '{src}'"));
        };
        let text = match crate::vault::read_controller_file(&path).map(String::from_utf8) {
            Ok(Ok(t)) => t,
            Ok(Err(_)) => return Ran::failed(format!("'{}' is not UTF-8 text", path.display())),
            Err(e) => return Ran::failed(e),
        };
        let mut vars = Map::new();
        vars.insert(
            "template_path".into(),
            Value::String(path.display().to_string()),
        );
        vars.insert(
            "template_fullpath".into(),
            Value::String(
                std::fs::canonicalize(&path)
                    .unwrap_or(path.clone())
                    .display()
                    .to_string(),
            ),
        );
        if let Some(d) = args.get("dest") {
            vars.insert("template_destpath".into(), d.clone());
        }
        let rendered = match self.templar.render_file(&text, &path, &scope.with(vars)) {
            Ok(r) => r,
            Err(e) => return Ran::failed(format!("{}: {}", path.display(), e.message)),
        };
        for k in [
            "trim_blocks",
            "lstrip_blocks",
            "newline_sequence",
            "variable_start_string",
            "variable_end_string",
            "block_start_string",
            "block_end_string",
            "output_encoding",
        ] {
            args.remove(k);
        }
        attach_source(&mut args, rendered.as_bytes(), &path);
        self.run_module("copy", st, args, scope, t, mode)
    }

    fn act_copy(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        st: &mut HostRun,
        mut args: Map<String, Value>,
        scope: &Scope,
        mode: RunMode,
    ) -> Ran {
        let remote = args
            .get("remote_src")
            .is_some_and(|v| modules::args::ansible_bool(v).unwrap_or(false));
        let Some(src) = args.get("src").map(value_text).filter(|_| !remote) else {
            return self.run_module("copy", st, args, scope, t, mode);
        };
        let Some(path) = self.find_file(ctx, t, "files", &src) else {
            return Ran::failed(format!(
                "Could not find or access '{src}' on the Ansible Controller."
            ));
        };
        args.remove("src");
        if path.is_dir() {
            // `src: dir/` copies what is in dir; `src: dir` copies dir itself into dest.
            let dest = args.get("dest").map(value_text).unwrap_or_default();
            let base = if src.ends_with('/') {
                dest.trim_end_matches('/').to_string()
            } else {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                format!("{}/{name}", dest.trim_end_matches('/'))
            };
            args.insert("dest".into(), Value::String(base));
            return self.copy_directory(&path, st, args, scope, t, mode);
        }
        // `mode: preserve` means the controller file's own mode, which only the engine can read.
        if args.get("mode").and_then(Value::as_str) == Some("preserve") {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(&path) {
                args.insert(
                    "mode".into(),
                    Value::String(format!("0{:o}", meta.permissions().mode() & 0o7777)),
                );
            }
        }
        let data = match crate::vault::read_controller_file(&path) {
            Ok(d) => d,
            Err(e) => return Ran::failed(e),
        };
        attach_source(&mut args, &data, &path);
        self.run_module("copy", st, args, scope, t, mode)
    }

    /// `unarchive` of a controller file: its bytes go to the module as `copy`'s do.
    fn act_unarchive(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        st: &mut HostRun,
        mut args: Map<String, Value>,
        scope: &Scope,
        mode: RunMode,
    ) -> Ran {
        let flag = |k: &str| args.get(k).and_then(modules::args::ansible_bool);
        let remote = flag("remote_src").unwrap_or(false) || flag("copy") == Some(false);
        let src = args.get("src").map(value_text);
        let Some(src) = src.filter(|s| !remote && !s.contains("://")) else {
            return self.run_module("unarchive", st, args, scope, t, mode);
        };
        let Some(path) = self.find_file(ctx, t, "files", &src) else {
            return Ran::failed(format!(
                "Could not find or access '{src}' on the Ansible Controller."
            ));
        };
        let data = match crate::vault::read_controller_file(&path) {
            Ok(d) => d,
            Err(e) => return Ran::failed(e),
        };
        attach_source(&mut args, &data, &path);
        self.run_module("unarchive", st, args, scope, t, mode)
    }

    /// `copy` of a controller directory: directories with `file`, files with `copy`, one result.
    fn copy_directory(
        &self,
        dir: &Path,
        st: &mut HostRun,
        args: Map<String, Value>,
        scope: &Scope,
        t: &Task,
        mode: RunMode,
    ) -> Ran {
        // `dest` is the directory the tree lands in (the caller chose it from src's trailing slash).
        let base = args.get("dest").map(value_text).unwrap_or_default();
        let mut files = Vec::new();
        walk_files(dir, &mut files);
        files.sort();
        let mut changed = false;
        let mut dirs_done: Vec<String> = Vec::new();
        for f in files {
            let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
            let target = format!("{base}/{rel}");
            let parent = target
                .rsplit_once('/')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            if !dirs_done.contains(&parent) {
                let mut dargs = Map::new();
                dargs.insert("path".into(), Value::String(parent.clone()));
                dargs.insert("state".into(), Value::String("directory".into()));
                if let Some(m) = args.get("directory_mode") {
                    dargs.insert("mode".into(), m.clone());
                }
                for k in ["owner", "group"] {
                    if let Some(v) = args.get(k) {
                        dargs.insert(k.into(), v.clone());
                    }
                }
                let r = self.run_module("file", st, dargs, scope, t, mode);
                if r.unreachable || r.result.get("failed").and_then(Value::as_bool) == Some(true) {
                    return r;
                }
                changed |= r
                    .result
                    .get("changed")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                dirs_done.push(parent);
            }
            let data = match crate::vault::read_controller_file(&f) {
                Ok(d) => d,
                Err(e) => return Ran::failed(e),
            };
            let mut fargs = args.clone();
            fargs.remove("directory_mode");
            fargs.insert("dest".into(), Value::String(target));
            attach_source(&mut fargs, &data, &f);
            let r = self.run_module("copy", st, fargs, scope, t, mode);
            if r.unreachable || r.result.get("failed").and_then(Value::as_bool) == Some(true) {
                return r;
            }
            changed |= r
                .result
                .get("changed")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        }
        let mut r = Map::new();
        r.insert("changed".into(), Value::Bool(changed));
        r.insert("dest".into(), Value::String(format!("{base}/")));
        r.insert("src".into(), Value::String(dir.display().to_string()));
        Ran::ok(r)
    }

    fn act_fetch(
        &self,
        ctx: &PlayCtx<'_>,
        _t: &Task,
        st: &mut HostRun,
        args: &Map<String, Value>,
        scope: &Scope,
        check: bool,
    ) -> Ran {
        let (Some(src), Some(dest)) = (
            args.get("src").map(value_text),
            args.get("dest").map(value_text),
        ) else {
            return Ran::failed("src and dest are required");
        };
        let flat = args
            .get("flat")
            .is_some_and(|v| modules::args::ansible_bool(v).unwrap_or(false));
        let fail_on_missing = args
            .get("fail_on_missing")
            .is_none_or(|v| modules::args::ansible_bool(v).unwrap_or(true));
        let local = if flat {
            if dest.ends_with('/') {
                format!("{dest}{}", src.rsplit('/').next().unwrap_or(&src))
            } else {
                dest.clone()
            }
        } else {
            format!(
                "{}/{}/{}",
                dest.trim_end_matches('/'),
                st.name,
                src.trim_start_matches('/')
            )
        };
        let local = if Path::new(&local).is_absolute() {
            PathBuf::from(&local)
        } else {
            ctx.play.dir.join(&local)
        };
        let conn = match self.host_conn(st, scope) {
            Ok(c) => c,
            Err(ran) => return ran,
        };
        let data = match conn.get(&src) {
            Ok(d) => d,
            Err(modules::HostError::Unreachable(m)) => return unreachable(m),
            Err(modules::HostError::Transfer(m)) => {
                let mut r = Map::new();
                r.insert("changed".into(), Value::Bool(false));
                r.insert("file".into(), Value::String(src.clone()));
                r.insert(
                    "msg".into(),
                    Value::String(format!(
                        "the remote file does not exist, not transferring, ignored ({m})"
                    )),
                );
                if fail_on_missing {
                    r.insert("failed".into(), Value::Bool(true));
                    r.insert(
                        "msg".into(),
                        Value::String("the remote file does not exist".into()),
                    );
                }
                return Ran::ok(r);
            }
        };
        let sum = sha1_hex(&data);
        let existing = std::fs::read(&local).ok();
        let changed = existing.as_deref() != Some(&data[..]);
        if changed && !check {
            if let Some(parent) = local.parent() {
                if let Err(e) = std::fs::create_dir_all(parent) {
                    return Ran::failed(format!("cannot create {}: {e}", parent.display()));
                }
            }
            let tmp = local.with_extension("play-tmp");
            if let Err(e) = std::fs::write(&tmp, &data).and_then(|_| std::fs::rename(&tmp, &local))
            {
                let _ = std::fs::remove_file(&tmp);
                return Ran::failed(format!("cannot write {}: {e}", local.display()));
            }
        }
        let mut r = Map::new();
        r.insert("changed".into(), Value::Bool(changed));
        r.insert("checksum".into(), Value::String(sum.clone()));
        r.insert("dest".into(), Value::String(local.display().to_string()));
        r.insert("remote_checksum".into(), Value::String(sum));
        Ran::ok(r)
    }

    fn act_script(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        st: &mut HostRun,
        mut args: Map<String, Value>,
        scope: &Scope,
        mode: RunMode,
    ) -> Ran {
        let raw = args
            .remove("_raw_params")
            .or_else(|| args.remove("cmd"))
            .map(|v| value_text(&v))
            .unwrap_or_default();
        let (script, rest) = raw
            .trim()
            .split_once(char::is_whitespace)
            .map(|(a, b)| (a.to_string(), b.trim().to_string()))
            .unwrap_or((raw.trim().to_string(), String::new()));
        if script.is_empty() {
            return Ran::failed("script: no script given");
        }
        let Some(path) = self.find_file(ctx, t, "files", &script) else {
            return Ran::failed(format!(
                "Could not find or access '{script}' on the Ansible Controller."
            ));
        };
        let data = match crate::vault::read_controller_file(&path) {
            Ok(d) => d,
            Err(e) => return Ran::failed(e),
        };
        args.insert(
            "_script_b64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&data)),
        );
        args.insert(
            "_script_name".into(),
            Value::String(
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("script")
                    .to_string(),
            ),
        );
        args.insert("_raw_params".into(), Value::String(rest));
        self.run_module("script", st, args, scope, t, mode)
    }
}

/// Group names given as a list or as one comma-separated string.
fn group_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().map(value_text).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![value_text(other)],
    }
}

impl Runner {
    /// `group_by`: this host joins group `key` (made under `parents`, default `all`); its
    /// `group_names` and the play's `groups` see it from the next task on.
    fn act_group_by(&self, ctx: &PlayCtx<'_>, st: &mut HostRun, args: &Map<String, Value>) -> Ran {
        let Some(key) = args.get("key").map(value_text).filter(|k| !k.is_empty()) else {
            return Ran::failed("the 'key' param is required when using group_by");
        };
        let parents = match args.get("parents") {
            None | Some(Value::Null) => vec!["all".to_string()],
            some => group_list(some),
        };
        let changed = match self.change_inventory(|inv| inv.group_by(&st.name, &key, &parents)) {
            Ok(changed) => changed,
            Err(e) => return Ran::failed(e.message),
        };
        self.inventory_changed(ctx, st);
        let mut r = Map::new();
        r.insert("changed".into(), Value::Bool(changed));
        r.insert("add_group".into(), Value::String(key));
        r.insert(
            "parent_groups".into(),
            Value::Array(parents.into_iter().map(Value::String).collect()),
        );
        Ran::ok(r)
    }

    /// `add_host`: a host (with its variables and groups) that later plays can target.
    fn act_add_host(
        &self,
        ctx: &PlayCtx<'_>,
        st: &mut HostRun,
        mut args: Map<String, Value>,
    ) -> Ran {
        let name = ["name", "host", "hostname"]
            .iter()
            .find_map(|k| args.remove(*k))
            .map(|v| value_text(&v))
            .filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Ran::failed("name, host or hostname needs to be provided");
        };
        let mut groups = Vec::new();
        for k in ["groups", "group", "groupname"] {
            groups.extend(group_list(args.remove(k).as_ref()));
        }
        // Everything else is a variable of the host (`ansible_host`, `ansible_port`, ...).
        let host_vars = args;
        let changed =
            match self.change_inventory(|inv| inv.add_host(&name, &groups, host_vars.clone())) {
                Ok(changed) => changed,
                Err(e) => return Ran::failed(e.message),
            };
        self.inventory_changed(ctx, st);
        let mut added = Map::new();
        added.insert("host_name".into(), Value::String(name));
        added.insert(
            "groups".into(),
            Value::Array(groups.into_iter().map(Value::String).collect()),
        );
        added.insert("host_vars".into(), Value::Object(host_vars));
        let mut r = Map::new();
        r.insert("changed".into(), Value::Bool(changed));
        r.insert("add_host".into(), Value::Object(added));
        Ran::ok(r)
    }

    /// `wait_for_connection`: after `delay`, a new session and one command (`true`) every
    /// `sleep` seconds until one works or `timeout` passes. The host's old session is
    /// dropped first (the host may have rebooted under it); the new one serves later tasks.
    fn act_wait_for_connection(
        &self,
        st: &mut HostRun,
        args: &Map<String, Value>,
        scope: &Scope,
    ) -> Ran {
        let seconds = |k: &str, default: f64| -> Result<f64, String> {
            match args.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => number(v)
                    .filter(|n| *n >= 0.0)
                    .ok_or_else(|| format!("argument '{k}' must be a number of seconds")),
            }
        };
        let (connect_timeout, delay, sleep, timeout) = match (
            seconds("connect_timeout", 5.0),
            seconds("delay", 0.0),
            seconds("sleep", 1.0),
            seconds("timeout", 600.0),
        ) {
            (Ok(c), Ok(d), Ok(s), Ok(t)) => (c, d, s, t),
            (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
                return Ran::failed(e)
            }
        };
        let started = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_secs_f64(delay));
        let mut timeout_var = Map::new();
        timeout_var.insert(
            "ansible_timeout".into(),
            Value::from(connect_timeout.ceil().max(1.0) as u64),
        );
        let attempt_scope = scope.with_data(timeout_var);
        loop {
            st.conn = None;
            let error = match self.connect(&st.name, &attempt_scope) {
                Ok(mut conn) => match conn.exec(&modules::Cmd::argv(&["true"])) {
                    Ok(out) if out.status == 0 => {
                        st.conn = Some(conn);
                        let mut r = Map::new();
                        r.insert("changed".into(), Value::Bool(false));
                        r.insert("elapsed".into(), Value::from(started.elapsed().as_secs()));
                        return Ran::ok(r);
                    }
                    Ok(out) => format!("`true` exited with {}", out.status),
                    Err(e) => e.to_string(),
                },
                Err(e) => e,
            };
            // As Ansible: sleep after a failed attempt, then try again while time is left.
            std::thread::sleep(std::time::Duration::from_secs_f64(sleep));
            if started.elapsed().as_secs_f64() >= timeout {
                let mut ran =
                    Ran::failed(format!("timed out waiting for ping module test: {error}"));
                ran.result
                    .insert("elapsed".into(), Value::from(started.elapsed().as_secs()));
                return ran;
            }
        }
    }

    /// After `group_by`/`add_host`: this host's `group_names` and the batch's `groups` are
    /// made again from the changed inventory.
    fn inventory_changed(&self, ctx: &PlayCtx<'_>, st: &mut HostRun) {
        st.magic = std::sync::Arc::new(self.host_magic(&st.name));
        if let Ok(mut m) = ctx.magic.write() {
            *m = None;
        }
    }
}

fn act_set_fact(mut args: Map<String, Value>) -> Ran {
    args.remove("cacheable");
    if let Some(bad) = args.keys().find(|k| !is_identifier(k)) {
        return Ran::failed(format!("The variable name '{bad}' is not valid. Variables must start with a letter or underscore character, and contain only letters, numbers and underscores."));
    }
    let mut r = Map::new();
    r.insert("ansible_facts".into(), Value::Object(args));
    r.insert("changed".into(), Value::Bool(false));
    Ran::ok(r)
}

/// A number given as a number or as text (`"5"`, `" 1.5 "`).
fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn act_pause(args: &Map<String, Value>) -> Ran {
    let num = |k: &str| args.get(k).and_then(number);
    let seconds = num("seconds")
        .or_else(|| num("minutes").map(|m| m * 60.0))
        .unwrap_or(0.0);
    let start = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs_f64(seconds.max(0.0)));
    let mut r = Map::new();
    r.insert("changed".into(), Value::Bool(false));
    r.insert("delta".into(), Value::from(start.elapsed().as_secs()));
    r.insert("echo".into(), Value::Bool(true));
    r.insert("rc".into(), Value::from(0));
    r.insert(
        "stdout".into(),
        Value::String(format!("Paused for {} seconds", fmt_seconds(seconds))),
    );
    r.insert("user_input".into(), Value::String(String::new()));
    Ran::ok(r)
}

fn fmt_seconds(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as i64)
    } else {
        format!("{s}")
    }
}

/// A module's result as the task's.
pub(crate) fn module_ran(result: Result<modules::Outcome, modules::ModuleError>) -> Ran {
    match result {
        // `to_result` without copying the module's keys (a setup result is big): they are
        // taken, and the rest (`changed`, `msg`, ...) added to them in `to_result`'s order.
        Ok(mut outcome) => {
            let mut result = std::mem::take(&mut outcome.result);
            result.extend(outcome.to_result());
            Ran::ok(result)
        }
        Err(modules::ModuleError::Args(msg)) | Err(modules::ModuleError::Failed(msg)) => {
            Ran::failed(msg)
        }
        Err(modules::ModuleError::Host(modules::HostError::Unreachable(msg))) => unreachable(msg),
        Err(modules::ModuleError::Host(modules::HostError::Transfer(msg))) => Ran::failed(msg),
    }
}

fn unreachable(msg: String) -> Ran {
    let mut r = Map::new();
    r.insert("changed".into(), Value::Bool(false));
    r.insert("msg".into(), Value::String(msg));
    r.insert("unreachable".into(), Value::Bool(true));
    Ran {
        result: r,
        unreachable: true,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

/// A value as text the way Ansible's string parameters see it.
pub(crate) fn value_text(v: &Value) -> String {
    modules::args::ansible_str(v).unwrap_or_else(|| v.to_string())
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            walk_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The user the controller runs as (asked once: `id -un`).
fn current_user() -> Option<String> {
    static USER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_like_ansible() {
        assert_eq!(
            sequence(&Value::String("start=1 end=3".into())).expect("ok"),
            vec!["1", "2", "3"]
        );
        assert_eq!(
            sequence(&Value::String(
                "count=3 start=0 stride=2 format=web%02d".into()
            ))
            .expect("ok"),
            vec!["web00", "web02", "web04"]
        );
        assert_eq!(
            sequence(&Value::String("4-6/2".into())).expect("ok"),
            vec!["4", "6"]
        );
    }
}
