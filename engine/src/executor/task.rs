//! One task on the hosts of a play: conditions, loops, retries, changed/failed overrides, register, notify.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Map, Value};

use super::{HostRun, PlayCtx, Runner};
use crate::report::pyfmt::item_label;
use crate::report::{HostLine, Status};
use crate::template::Scope;

/// What an `include_tasks` includes on a host: the file, its params, the loop item's label.
pub(crate) type Included = (PathBuf, Map<String, Value>, Option<String>);

/// What an `include_role` includes on a host (for one loop item).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoleInclusion {
    pub name: String,
    pub from: crate::roles::FromFiles,
    /// The include's params (its `vars:`, templated, and the loop item).
    pub params: Map<String, Value>,
    pub public: bool,
    pub allow_duplicates: bool,
    /// `rolespec_validate` (default yes).
    pub validate: bool,
    /// Keywords for the role's tasks (`apply:`).
    pub apply: Map<String, Value>,
}

/// One run of a task (or of one loop item) on a host: its status, its result, whether its
/// failure is ignored, and the diff to show.
type ItemRun = (Status, Map<String, Value>, bool, Option<String>);

/// The result of running a task (or one loop item) once on one host.
pub(crate) struct Ran {
    pub result: Map<String, Value>,
    pub unreachable: bool,
}

impl Ran {
    pub fn ok(result: Map<String, Value>) -> Self {
        Self {
            result,
            unreachable: false,
        }
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        let mut result = Map::new();
        result.insert("failed".into(), Value::Bool(true));
        result.insert("msg".into(), Value::String(msg.into()));
        result.insert("changed".into(), Value::Bool(false));
        Self {
            result,
            unreachable: false,
        }
    }
}

/// How a module runs for one loop item, besides its arguments: items batched together
/// must agree on all of it.
#[derive(PartialEq)]
struct ModuleSetting {
    mode: super::actions::RunMode,
    env: Vec<(String, String)>,
    become_: Option<super::hostwrap::Become>,
    delegate: Option<String>,
}

/// Whether loops may run their items in one batch (`PLAY_BATCH_LOOPS=0` turns it off, to
/// compare with running them one by one).
fn batch_loops() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PLAY_BATCH_LOOPS").is_none_or(|v| v != "0"))
}

/// The result of a task (or loop item) whose `when` is false.
fn skipped(false_condition: Option<String>) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("changed".into(), Value::Bool(false));
    if let Some(c) = false_condition {
        r.insert("false_condition".into(), Value::String(c));
    }
    r.insert(
        "skip_reason".into(),
        Value::String("Conditional result was False".into()),
    );
    r.insert("skipped".into(), Value::Bool(true));
    r
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn status_of(result: &Map<String, Value>) -> Status {
    if truthy(result.get("failed")) {
        Status::Failed
    } else if truthy(result.get("skipped")) {
        Status::Skipped
    } else if truthy(result.get("changed")) {
        Status::Changed
    } else {
        Status::Ok
    }
}

impl Runner {
    /// Template a task keyword to a boolean (`ignore_errors: "{{ x }}"`, `no_log: yes`).
    pub(crate) fn keyword_bool(&self, v: Option<&Value>, scope: &Scope) -> bool {
        match v {
            None => false,
            Some(Value::String(s)) if s.contains("{{") => match self.templar.template_str(s, scope)
            {
                Ok(v) => modules::args::ansible_bool(&v).unwrap_or(truthy(Some(&v))),
                Err(_) => false,
            },
            Some(v) => modules::args::ansible_bool(v).unwrap_or(false),
        }
    }

    /// A variable's value as text, resolved as a template would see it: what the user wrote
    /// is templated, what the run made (a `set_fact` value, a result) is not. `None` when
    /// the variable is not set or is null.
    pub(crate) fn var_str(&self, name: &str, scope: &Scope) -> Option<String> {
        let raw = scope.get(name)?;
        match self.templar.eval_expr(name, scope) {
            Ok(Value::String(s)) => Some(s),
            Ok(Value::Null) => None,
            Ok(other) => Some(other.to_string()),
            Err(_) => Some(super::actions::value_text(raw)),
        }
    }

    pub(crate) fn keyword_str(&self, v: Option<&Value>, scope: &Scope) -> Option<String> {
        match v? {
            Value::String(s) => match self.templar.template_str(s, scope) {
                Ok(Value::String(s)) => Some(s),
                Ok(Value::Null) => None,
                Ok(other) => Some(other.to_string()),
                Err(_) => Some(s.clone()),
            },
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// All `when` conditions hold (Ansible ANDs a list).
    fn conditions_hold(
        &self,
        conds: &[Value],
        scope: &Scope,
    ) -> Result<(bool, Option<String>), String> {
        for c in conds {
            let ok = match c {
                Value::Bool(b) => *b,
                Value::String(s) => self.templar.eval_bool(s, scope).map_err(|e| {
                    format!(
                        "The conditional check '{s}' failed. The error was: {}",
                        e.message
                    )
                })?,
                Value::Null => false,
                other => truthy(Some(other)),
            };
            if !ok {
                let text = match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                return Ok((false, Some(text)));
            }
        }
        Ok((true, None))
    }

    /// The task's display name, templated with the first host's variables when it holds templates.
    fn task_title(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        hosts: &[usize],
        params: &Map<String, Value>,
    ) -> String {
        let name = t.display_name();
        if !name.contains("{{") {
            return name;
        }
        let Some(&first) = hosts.first() else {
            return name;
        };
        let Ok(st) = ctx.states[first].lock() else {
            return name;
        };
        let vars = self.host_scope_vars(ctx, &st, Some(t), params);
        match self.templar.template_str(&name, &self.scope(vars)) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => name,
        }
    }

    pub(crate) fn run_task(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        hosts: &[usize],
        params: &Map<String, Value>,
        handler: bool,
    ) {
        let title = self.task_title(ctx, t, hosts, params);
        self.report.task_start(&title, handler);
        // add_host runs once for the play's hosts, as Ansible's bypasses the host loop.
        let run_once = t.action == "add_host"
            || t.keyword("run_once")
                .is_some_and(|v| modules::args::ansible_bool(v).unwrap_or(false));
        let runners: Vec<usize> = if run_once {
            hosts.iter().copied().take(1).collect()
        } else {
            hosts.to_vec()
        };
        let bar = self.report.progress(&title, runners.len());
        // throttle: at most this many hosts run the task at once.
        let throttle = t
            .keyword("throttle")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
            .filter(|n| *n > 0)
            .map_or(runners.len().max(1), |n| n as usize);
        // group_by changes the inventory from every host: one host after the other, in
        // inventory order, so groups list their members and children in a stable order.
        let throttle = if t.action == "group_by" { 1 } else { throttle };
        let mut results: Vec<(usize, Vec<HostLine>)> = self.pool.install(|| {
            runners
                .chunks(throttle)
                .flat_map(|chunk| {
                    chunk
                        .par_iter()
                        .map(|&i| {
                            let lines = match ctx.states[i].lock() {
                                Ok(mut st) => {
                                    let lines = self.run_on_host(ctx, t, &mut st, params);
                                    note_role_ran(&mut st, t, &lines);
                                    lines
                                }
                                Err(_) => Vec::new(),
                            };
                            if let Some(b) = &bar {
                                b.inc(1);
                            }
                            (i, lines)
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        });
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        results.sort_by_key(|(i, _)| *i);
        // run_once: the other hosts get the same registered result and facts, as in Ansible.
        if run_once && hosts.len() > 1 {
            self.share_run_once(ctx, t, hosts);
        }
        let lines: Vec<HostLine> = results.into_iter().flat_map(|(_, l)| l).collect();
        if let Some(failed) = lines
            .iter()
            .find(|l| l.status == Status::Failed && !l.ignored)
        {
            let msg = match (failed.censored, failed.result.get("msg")) {
                (false, Some(Value::String(m))) => m.clone(),
                _ => "see the task result".to_string(),
            };
            let msg = match msg.strip_prefix("Task failed: ") {
                Some(rest) => rest.to_string(),
                None => msg,
            };
            let d = crate::error::Diagnostic::new(format!("Task failed: {msg}"))
                .at(t.span.clone())
                .in_task(title.clone());
            self.report.task_error(&d.render());
        }
        self.report.host_lines(&lines);
        // Modules' own warnings, as Ansible shows them after the task's lines.
        for l in &lines {
            if let Some(Value::Array(warnings)) = l.result.get("warnings") {
                for w in warnings.iter().filter_map(Value::as_str) {
                    self.report.warning(w);
                }
            }
        }
        for &i in hosts {
            if let Ok(st) = ctx.states[i].lock() {
                self.snapshot(ctx, &st);
            }
            self.sync_stats(ctx, i);
        }
        let any_errors_fatal = t
            .keyword("any_errors_fatal")
            .or_else(|| ctx.play.keywords.get("any_errors_fatal"))
            .is_some_and(|v| modules::args::ansible_bool(v).unwrap_or(false));
        if any_errors_fatal
            && lines
                .iter()
                .any(|l| l.status == Status::Failed && !l.ignored)
        {
            for st in &ctx.states {
                if let Ok(mut st) = st.lock() {
                    if !st.failed {
                        st.failed = true;
                    }
                }
            }
            ctx.end_play.store(true, Ordering::SeqCst);
        }
        if let Some(pct) = ctx.play.max_fail_percentage.as_ref().and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        }) {
            let total = ctx.states.len() as f64;
            let failed = ctx
                .states
                .iter()
                .filter(|s| s.lock().map(|s| s.failed || s.unreachable).unwrap_or(false))
                .count() as f64;
            if total > 0.0 && failed / total * 100.0 > pct {
                ctx.end_play.store(true, Ordering::SeqCst);
            }
        }
    }

    fn share_run_once(&self, ctx: &PlayCtx<'_>, t: &crate::playbook::Task, hosts: &[usize]) {
        let Some(&first) = hosts.first() else { return };
        let (registered, facts) = match ctx.states[first].lock() {
            Ok(st) => {
                let reg = t.keyword("register").and_then(Value::as_str).and_then(|r| {
                    st.layers
                        .set_facts
                        .get(r)
                        .map(|v| (r.to_string(), v.clone()))
                });
                let facts = if t.action == "set_fact" {
                    Some(st.layers.set_facts.clone())
                } else {
                    None
                };
                (reg, facts)
            }
            Err(_) => return,
        };
        for &i in &hosts[1..] {
            if let Ok(mut st) = ctx.states[i].lock() {
                if let Some((name, v)) = &registered {
                    Arc::make_mut(&mut st.layers.set_facts).insert(name.clone(), v.clone());
                }
                if let Some(f) = &facts {
                    let set_facts = Arc::make_mut(&mut st.layers.set_facts);
                    for (k, v) in f.iter() {
                        set_facts.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }

    /// The loop items of a task, or `None` for a task without a loop.
    fn loop_items(
        &self,
        t: &crate::playbook::Task,
        scope: &Scope,
    ) -> Result<Option<Vec<Value>>, String> {
        let (kind, spec) = match t
            .keywords
            .iter()
            .find(|(k, _)| *k == "loop" || k.starts_with("with_"))
        {
            Some((k, v)) => (k.as_str(), v),
            None => return Ok(None),
        };
        let templated = match spec {
            // `with_items: somevar` (a bare name) is templated as an expression, as Ansible does.
            Value::String(s)
                if !s.contains("{{")
                    && kind != "loop"
                    && kind != "with_fileglob"
                    && kind != "with_sequence" =>
            {
                self.templar.eval_expr(s, scope).map_err(|e| e.message)?
            }
            other => self
                .templar
                .template_value(other, scope)
                .map_err(|e| e.message)?,
        };
        let items = match kind {
            "loop" | "with_list" => match templated {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                other => return Err(format!("Invalid data passed to 'loop', it requires a list, got this instead: {other}. Hint: If you passed a list/dict of just one element, try adding wantlist=True to your lookup invocation or use q/query instead of lookup.")),
            },
            "with_items" => match templated {
                Value::Array(a) => a.into_iter().flat_map(|v| match v {
                    Value::Array(inner) => inner,
                    other => vec![other],
                }).collect(),
                Value::Null => Vec::new(),
                other => vec![other],
            },
            "with_dict" => match templated {
                Value::Object(m) => m.into_iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect(),
                other => return Err(format!("with_dict expects a dict, got {other}")),
            },
            "with_fileglob" => {
                let patterns: Vec<String> = match templated {
                    Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                    Value::String(s) => vec![s],
                    _ => Vec::new(),
                };
                let base = scope.get("playbook_dir").and_then(Value::as_str).map(PathBuf::from).unwrap_or_default();
                super::actions::fileglob(&patterns, &base).into_iter().map(Value::String).collect()
            }
            "with_sequence" => super::actions::sequence(&templated)?.into_iter().map(Value::String).collect(),
            "with_together" => match templated {
                Value::Array(lists) => {
                    let n = lists.iter().map(|l| l.as_array().map_or(0, Vec::len)).max().unwrap_or(0);
                    (0..n).map(|i| Value::Array(lists.iter().map(|l| l.get(i).cloned().unwrap_or(Value::Null)).collect())).collect()
                }
                _ => Vec::new(),
            },
            "with_nested" | "with_cartesian" => match templated {
                Value::Array(lists) => {
                    let mut acc: Vec<Vec<Value>> = vec![Vec::new()];
                    for l in lists {
                        let items = l.as_array().cloned().unwrap_or_default();
                        acc = acc.into_iter().flat_map(|prefix| items.iter().map(move |it| {
                            let mut p = prefix.clone();
                            p.push(it.clone());
                            p
                        })).collect();
                    }
                    acc.into_iter().map(Value::Array).collect()
                }
                _ => Vec::new(),
            },
            other => return Err(format!("the loop '{other}' is not supported")),
        };
        Ok(Some(items))
    }

    /// Run the task on one host (all loop items), updating its state; returns its output lines.
    fn run_on_host(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &mut HostRun,
        params: &Map<String, Value>,
    ) -> Vec<HostLine> {
        let scope = self.scope(self.host_scope_vars(ctx, st, Some(t), params));
        let no_log = self.keyword_bool(t.keyword("no_log"), &scope);
        let ignore_errors = self.keyword_bool(t.keyword("ignore_errors"), &scope);
        let delegate = self.keyword_str(t.keyword("delegate_to"), &scope);
        let host_name = st.name.clone();
        let line = |status: Status,
                    item: Option<String>,
                    result: Map<String, Value>,
                    ignored: bool| HostLine {
            host: host_name.clone(),
            delegated_to: delegate.clone(),
            status,
            item,
            show_result: matches!(t.action.as_str(), "debug" | "assert")
                && status != Status::Skipped
                && result.get("_ansible_verbose_always") != Some(&Value::Bool(false)),
            ignored,
            censored: no_log,
            diff: None,
            result: if t.action == "debug" {
                clean_debug_result(result)
            } else {
                result
            },
        };
        let mut lines = Vec::new();

        let items = match self.loop_items(t, &scope) {
            Ok(items) => items,
            Err(msg) => {
                let r = Ran::failed(msg);
                let l = self.finish(st, t, r.result, ignore_errors, false);
                lines.push(line(l.0, None, l.1, l.2));
                return lines;
            }
        };
        let Some(items) = items else {
            let (status, result, ignored, diff) =
                self.run_once_on_host(ctx, t, st, &scope, ignore_errors);
            self.register(st, t, &result);
            let mut l = line(status, None, result, ignored);
            l.diff = diff;
            lines.push(l);
            return lines;
        };

        let loop_control = t
            .keyword("loop_control")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let loop_var = loop_control
            .get("loop_var")
            .and_then(Value::as_str)
            .unwrap_or("item")
            .to_string();
        let index_var = loop_control
            .get("index_var")
            .and_then(Value::as_str)
            .map(str::to_string);
        let label_tpl = loop_control.get("label").cloned();
        let pause = loop_control.get("pause").and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        });
        let extended = loop_control
            .get("extended")
            .is_some_and(|v| modules::args::ansible_bool(v).unwrap_or(false));
        let n = items.len();
        // Each item sees the task's variables with the loop's over them.
        let item_scopes: Vec<Scope> = items
            .iter()
            .enumerate()
            .map(|(idx, item)| {
                let mut vars = Map::new();
                vars.insert(loop_var.clone(), item.clone());
                if let Some(iv) = &index_var {
                    vars.insert(iv.clone(), Value::from(idx));
                }
                vars.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
                if extended {
                    vars.insert("ansible_loop".into(), serde_json::json!({
                        "index": idx + 1, "index0": idx, "first": idx == 0, "last": idx + 1 == n, "length": n,
                        "revindex": n - idx, "revindex0": n - idx - 1,
                    }));
                }
                scope.with_data(vars)
            })
            .collect();
        // A plain module's items in one go when it can; what it did not run (all items, or
        // those after the host went away) runs one by one below.
        let mut batched = match pause {
            None => self.run_items_batched(ctx, t, st, &item_scopes, ignore_errors),
            Some(_) => Vec::new(),
        }
        .into_iter();
        let mut item_results = Vec::new();
        let (mut any_changed, mut any_failed, mut all_skipped) = (false, false, true);
        let mut item_lines = Vec::new();
        for (idx, (item, item_scope)) in items.into_iter().zip(&item_scopes).enumerate() {
            let (status, mut result, ignored, diff) = match batched.next() {
                Some(run) => run,
                None => {
                    if idx > 0 {
                        if let Some(p) = pause {
                            std::thread::sleep(std::time::Duration::from_secs_f64(p.max(0.0)));
                        }
                    }
                    self.run_once_on_host(ctx, t, st, item_scope, ignore_errors)
                }
            };
            let label = match &label_tpl {
                Some(l) => match self.templar.template_value(l, item_scope) {
                    Ok(v) => item_label(&v),
                    Err(_) => item_label(&item),
                },
                None => item_label(&item),
            };
            result.insert(loop_var.clone(), item);
            result.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
            if let Some(iv) = &index_var {
                result.insert("ansible_index_var".into(), Value::String(iv.clone()));
                result.insert(iv.clone(), Value::from(idx));
            }
            match status {
                Status::Changed => any_changed = true,
                Status::Failed => any_failed = true,
                _ => {}
            }
            if status != Status::Skipped {
                all_skipped = false;
            }
            let mut l = line(
                status,
                Some(label),
                result.clone(),
                ignored && status == Status::Failed,
            );
            l.diff = diff;
            item_lines.push(l);
            item_results.push(Value::Object(result));
        }
        // The task as a whole: what the recap counts and what `register` holds.
        let mut summary = Map::new();
        summary.insert("changed".into(), Value::Bool(any_changed));
        if any_failed {
            summary.insert("failed".into(), Value::Bool(true));
            summary.insert(
                "msg".into(),
                Value::String("One or more items failed".into()),
            );
        } else {
            summary.insert("msg".into(), Value::String("All items completed".into()));
        }
        if all_skipped {
            summary.insert("skipped".into(), Value::Bool(true));
        }
        summary.insert("results".into(), Value::Array(item_results));
        self.count(st, &summary, ignore_errors);
        self.register(st, t, &summary);
        if any_failed {
            if !ignore_errors {
                st.failed = true;
                st.failed_task = Some((task_info(t), summary.clone()));
            }
            if let Some(last) = item_lines
                .iter_mut()
                .rev()
                .find(|l| l.status == Status::Failed)
            {
                last.ignored = ignore_errors;
            }
        }
        if any_changed {
            self.notify(st, t);
        }
        lines.extend(item_lines);
        if all_skipped && n > 0 {
            // Ansible closes a loop whose every item was skipped with one plain skipping line.
            lines.push(line(Status::Skipped, None, Map::new(), false));
        }
        lines
    }

    /// A plain module's loop items in one `Module::run_many` call, when the module batches
    /// them: each item's `when` and arguments first (a skipped item keeps its place), then
    /// every item that runs in one call, then each item's `changed_when`/`failed_when`, as
    /// one by one. Returns the runs of the first items in order: all of them, or those up to
    /// the item at which the host went away (the caller runs the rest one by one, as the
    /// loop would have gone on). Empty when the loop is not batched: `until`, a module
    /// without a batch form, items the module does not batch, or items that would run
    /// differently (delegate, become, environment, check or diff mode differing per item).
    fn run_items_batched(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &mut HostRun,
        scopes: &[Scope],
        ignore_errors: bool,
    ) -> Vec<ItemRun> {
        /// What an item needs before the module runs.
        enum Planned {
            /// Decided without the module (`when` false, or its evaluation failed).
            Done(ItemRun),
            /// Its arguments failed to template.
            Ran(Ran),
            /// Runs in the batch.
            Batch,
        }
        if !batch_loops()
            || scopes.len() < 2
            || t.keyword("until").is_some()
            || !super::actions::runs_module(&t.action)
        {
            return Vec::new();
        }
        let Some(module) = modules::lookup(&t.action) else {
            return Vec::new();
        };
        let mut plans = Vec::with_capacity(scopes.len());
        let mut args = Vec::new();
        let mut setting = None;
        let mut first = None;
        for (i, scope) in scopes.iter().enumerate() {
            match self.conditions_hold(&t.when, scope) {
                Ok((true, _)) => {}
                Ok((false, cond)) => {
                    plans.push(Planned::Done((Status::Skipped, skipped(cond), false, None)));
                    continue;
                }
                Err(msg) => {
                    let failed = (Status::Failed, Ran::failed(msg).result, ignore_errors, None);
                    plans.push(Planned::Done(failed));
                    continue;
                }
            }
            match self.task_args(ctx, t, scope) {
                Ok(a) => {
                    let this = self.module_setting(ctx, t, st, scope);
                    match &setting {
                        None => setting = Some(this),
                        Some(s) if *s == this => {}
                        Some(_) => return Vec::new(),
                    }
                    first.get_or_insert(i);
                    plans.push(Planned::Batch);
                    args.push(a);
                }
                Err(ran) => plans.push(Planned::Ran(ran)),
            }
        }
        let (Some(setting), Some(first)) = (setting, first) else {
            return Vec::new();
        };
        let mode = setting.mode;
        if args.len() < 2 || (mode.check && !module.supports_check()) {
            return Vec::new();
        }
        let host_gone = |r: &Option<Vec<Result<modules::Outcome, modules::ModuleError>>>| {
            matches!(
                r.as_ref().and_then(|r| r.last()),
                Some(Err(modules::ModuleError::Host(
                    modules::HostError::Unreachable(_)
                )))
            )
        };
        let ran = self.on_task_host(
            st,
            &scopes[first],
            t,
            mode,
            |mctx| module.run_many(mctx, &args),
            host_gone,
        );
        let mut results = match ran {
            Ok(Some(results)) => results
                .into_iter()
                .take(args.len())
                .map(super::actions::module_ran)
                .collect::<Vec<_>>()
                .into_iter(),
            Ok(None) => return Vec::new(),
            // No connection: the first item is unreachable, as it would be on its own.
            Err(ran) => vec![ran].into_iter(),
        };
        let mut runs = Vec::with_capacity(plans.len());
        for (plan, scope) in plans.into_iter().zip(scopes) {
            let ran = match plan {
                Planned::Done(run) => {
                    runs.push(run);
                    continue;
                }
                Planned::Ran(ran) => ran,
                Planned::Batch => match results.next() {
                    Some(ran) => ran,
                    None => break,
                },
            };
            runs.push(self.settle_item(ctx, t, st, scope, ran, ignore_errors, false));
        }
        runs
    }

    /// Everything that decides how a module runs for one item besides its arguments.
    fn module_setting(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &HostRun,
        scope: &Scope,
    ) -> ModuleSetting {
        ModuleSetting {
            mode: self.run_mode(ctx, t, scope),
            env: self.task_environment(t, scope),
            become_: self.task_become(t, scope),
            delegate: self
                .keyword_str(t.keyword("delegate_to"), scope)
                .filter(|d| d != &st.name),
        }
    }

    /// Count a task result in the host's recap and mark the host failed.
    fn count(&self, st: &mut HostRun, result: &Map<String, Value>, ignore_errors: bool) {
        match status_of(result) {
            Status::Failed if ignore_errors => {
                st.stats.ok += 1;
                st.stats.ignored += 1;
                if truthy(result.get("changed")) {
                    st.stats.changed += 1;
                }
            }
            Status::Failed => st.stats.failed += 1,
            Status::Skipped => st.stats.skipped += 1,
            Status::Changed => {
                st.stats.ok += 1;
                st.stats.changed += 1;
            }
            Status::Ok => st.stats.ok += 1,
            Status::Unreachable => st.stats.unreachable += 1,
        }
    }

    fn register(&self, st: &mut HostRun, t: &crate::playbook::Task, result: &Map<String, Value>) {
        if let Some(name) = t.keyword("register").and_then(Value::as_str) {
            let mut r = result.clone();
            r.remove("_ansible_facts_set");
            Arc::make_mut(&mut st.layers.set_facts).insert(name.to_string(), Value::Object(r));
        }
    }

    /// Remember a changed task's notifications; they find their handlers when handlers run.
    fn notify(&self, st: &mut HostRun, t: &crate::playbook::Task) {
        for n in &t.notify {
            if !st.notifications.contains(n) {
                st.notifications.push(n.clone());
            }
        }
    }

    /// Apply a finished result: recap counts, failure state. Returns the line's status/result/ignored.
    fn finish(
        &self,
        st: &mut HostRun,
        t: &crate::playbook::Task,
        result: Map<String, Value>,
        ignore_errors: bool,
        unreachable: bool,
    ) -> (Status, Map<String, Value>, bool) {
        if unreachable {
            st.unreachable = true;
            st.stats.unreachable += 1;
            return (Status::Unreachable, result, false);
        }
        let status = status_of(&result);
        self.count(st, &result, ignore_errors);
        if status == Status::Failed && !ignore_errors {
            st.failed = true;
            st.failed_task = Some((task_info(t), result.clone()));
        }
        (status, result, status == Status::Failed && ignore_errors)
    }

    /// One execution (no loop, or one loop item): when, until/retries, changed_when/failed_when.
    /// Counts the result and notifies handlers when there is no loop.
    fn run_once_on_host(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &mut HostRun,
        scope: &Scope,
        ignore_errors: bool,
    ) -> ItemRun {
        let in_loop = t
            .keywords
            .keys()
            .any(|k| k == "loop" || k.starts_with("with_"));
        match self.conditions_hold(&t.when, scope) {
            Ok((true, _)) => {}
            Ok((false, cond)) => {
                if !in_loop {
                    st.stats.skipped += 1;
                }
                return (Status::Skipped, skipped(cond), false, None);
            }
            Err(msg) => {
                let r = Ran::failed(msg).result;
                if in_loop {
                    return (Status::Failed, r, ignore_errors, None);
                }
                let (s, r, ig) = self.finish(st, t, r, ignore_errors, false);
                return (s, r, ig, None);
            }
        }

        let until = t.keyword("until").cloned();
        let retries = match &until {
            Some(_) => t
                .keyword("retries")
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(3),
            None => 0,
        };
        let delay = t
            .keyword("delay")
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(5.0);
        let register = t.keyword("register").and_then(Value::as_str);
        let mut attempt = 0u64;
        let ran = loop {
            attempt += 1;
            let ran = self.execute(ctx, t, st, scope);
            let Some(cond) = &until else {
                break ran;
            };
            let mut result = ran.result;
            if ran.unreachable {
                break Ran {
                    result,
                    unreachable: true,
                };
            }
            self.apply_overrides(t, &mut result, scope, register);
            let mut v = Map::new();
            if let Some(r) = register {
                v.insert(r.to_string(), Value::Object(result.clone()));
            }
            let done = self
                .conditions_hold(std::slice::from_ref(cond), &scope.with_data(v))
                .map(|(ok, _)| ok)
                .unwrap_or(false);
            result.insert("attempts".into(), Value::from(attempt));
            if done {
                result.remove("failed");
                break Ran::ok(result);
            }
            if attempt > retries {
                result.insert("failed".into(), Value::Bool(true));
                break Ran::ok(result);
            }
            self.report.note(&format!(
                "FAILED - RETRYING: [{}]: {} ({} retries left).",
                st.name,
                t.display_name(),
                retries + 1 - attempt
            ));
            std::thread::sleep(std::time::Duration::from_secs_f64(delay.max(0.0)));
        };
        // With `until`, the overrides were applied to each attempt.
        let overridden = until.is_some();
        if in_loop {
            return self.settle_item(ctx, t, st, scope, ran, ignore_errors, overridden);
        }
        let unreachable = ran.unreachable;
        let mut result = ran.result;
        if !unreachable && !overridden {
            self.apply_overrides(t, &mut result, scope, register);
        }
        self.keep_facts(t, st, &mut result);
        let diff_text = self.diff_text(ctx, t, scope, &result);
        let changed = truthy(result.get("changed")) && !truthy(result.get("failed"));
        let (s, r, ig) = self.finish(st, t, result, ignore_errors, unreachable);
        if changed && !unreachable {
            self.notify(st, t);
        }
        (s, r, ig, diff_text)
    }

    /// A loop item's result once its module (or action) ran: `changed_when`/`failed_when`
    /// (unless `overridden` already, and not for an unreachable host), facts it set, its
    /// diff, its status.
    #[allow(clippy::too_many_arguments)]
    fn settle_item(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &mut HostRun,
        scope: &Scope,
        ran: Ran,
        ignore_errors: bool,
        overridden: bool,
    ) -> ItemRun {
        let mut result = ran.result;
        if !ran.unreachable && !overridden {
            let register = t.keyword("register").and_then(Value::as_str);
            self.apply_overrides(t, &mut result, scope, register);
        }
        self.keep_facts(t, st, &mut result);
        let diff_text = self.diff_text(ctx, t, scope, &result);
        let status = status_of(&result);
        (
            status,
            result,
            ignore_errors && status == Status::Failed,
            diff_text,
        )
    }

    /// set_fact / include_vars / setup results carry facts for this host.
    fn keep_facts(
        &self,
        t: &crate::playbook::Task,
        st: &mut HostRun,
        result: &mut Map<String, Value>,
    ) {
        if matches!(t.action.as_str(), "setup" | "gather_facts")
            && t.keyword("register").is_none()
            && !self.report.prints_results()
            && status_of(result) != Status::Failed
        {
            // Nothing else reads these facts in the result: the host keeps them instead of
            // a copy (on 50 hosts the copies were a quarter of the controller's memory).
            if let Some(Value::Object(facts)) = result.remove("ansible_facts") {
                st.layers.set_facts_from_setup(facts);
            }
            return;
        }
        let Some(Value::Object(facts)) = result.get("ansible_facts") else {
            return;
        };
        match t.action.as_str() {
            "setup" | "gather_facts" => st.layers.set_facts_from_setup(facts.clone()),
            "include_vars" => Arc::make_mut(&mut st.layers.include_vars)
                .extend(facts.iter().map(|(k, v)| (k.clone(), v.clone()))),
            _ => Arc::make_mut(&mut st.layers.set_facts)
                .extend(facts.iter().map(|(k, v)| (k.clone(), v.clone()))),
        }
    }

    /// `changed_when` / `failed_when`, evaluated with the result bound to the `register` name.
    fn apply_overrides(
        &self,
        t: &crate::playbook::Task,
        result: &mut Map<String, Value>,
        scope: &Scope,
        register: Option<&str>,
    ) {
        let changed_when = t.keyword("changed_when");
        let failed_when = t.keyword("failed_when");
        if changed_when.is_none() && failed_when.is_none() {
            return;
        }
        let mut v = Map::new();
        if let Some(r) = register {
            v.insert(r.to_string(), Value::Object(result.clone()));
        }
        let scope = scope.with_data(v);
        let as_list = |x: &Value| match x {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        if let Some(cw) = changed_when {
            match self.conditions_hold(&as_list(cw), &scope) {
                Ok((b, _)) => {
                    result.insert("changed".into(), Value::Bool(b));
                }
                Err(msg) => {
                    result.insert("failed".into(), Value::Bool(true));
                    result.insert("msg".into(), Value::String(msg));
                    return;
                }
            }
        }
        if let Some(fw) = failed_when {
            match self.conditions_hold(&as_list(fw), &scope) {
                Ok((b, _)) => {
                    result.insert("failed_when_result".into(), Value::Bool(b));
                    if b {
                        result.insert("failed".into(), Value::Bool(true));
                    } else {
                        result.remove("failed");
                    }
                }
                Err(msg) => {
                    result.insert("failed".into(), Value::Bool(true));
                    result.insert("msg".into(), Value::String(msg));
                }
            }
        }
    }

    fn diff_text(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        scope: &Scope,
        result: &Map<String, Value>,
    ) -> Option<String> {
        let enabled = match t.keyword("diff") {
            Some(v) => self.keyword_bool(Some(v), scope),
            None => ctx.diff,
        };
        if !enabled {
            return None;
        }
        let diffs = result.get("diff")?.as_array()?;
        let mut text = String::new();
        for d in diffs {
            let get = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let fd = modules::FileDiff {
                before_header: get("before_header"),
                after_header: get("after_header"),
                before: get("before"),
                after: get("after"),
            };
            if fd.before != fd.after {
                text.push_str(&modules::diff::unified(&fd));
            }
        }
        (!text.is_empty()).then_some(text)
    }

    /// Decide what an `include_tasks` includes on this host: (file, params, item label) per loop item.
    pub(crate) fn evaluate_include(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &HostRun,
        params: &Map<String, Value>,
    ) -> Result<Vec<Included>, String> {
        let mut out = Vec::new();
        for (item, scope) in self.include_items(ctx, t, st, params)? {
            let file = t
                .args
                .get("_raw_params")
                .or_else(|| t.args.get("file"))
                .ok_or("include_tasks needs a file name")?;
            let file = match self
                .templar
                .template_value(file, &scope)
                .map_err(|e| e.message)?
            {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let path = self.find_task_file(ctx, t, &file);
            let p = self.include_params(t, item.as_ref(), &scope)?;
            out.push((path, p, item.as_ref().map(item_label)));
        }
        Ok(out)
    }

    /// The loop items of an include (or one `None` without a loop) whose `when` holds on
    /// this host, each with the scope it is decided in.
    fn include_items(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &HostRun,
        params: &Map<String, Value>,
    ) -> Result<Vec<(Option<Value>, Scope)>, String> {
        let base = self.scope(self.host_scope_vars(ctx, st, Some(t), params));
        let items: Vec<Option<Value>> = match self.loop_items(t, &base)? {
            Some(items) => items.into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut out = Vec::new();
        for item in items {
            let mut vars = Map::new();
            if let Some(it) = &item {
                vars.insert(loop_var(t), it.clone());
            }
            let scope = base.with_data(vars);
            if self.conditions_hold(&t.when, &scope)?.0 {
                out.push((item, scope));
            }
        }
        Ok(out)
    }

    /// An include's params (its `vars:`), templated now with the loop item they were given.
    fn include_params(
        &self,
        t: &crate::playbook::Task,
        item: Option<&Value>,
        scope: &Scope,
    ) -> Result<Map<String, Value>, String> {
        let mut p = t.vars.clone();
        if let Some(it) = item {
            p.insert(loop_var(t), it.clone());
        }
        match self
            .templar
            .template_value(&Value::Object(p), scope)
            .map_err(|e| e.message)?
        {
            Value::Object(m) => Ok(m),
            _ => Ok(Map::new()),
        }
    }

    /// Decide what an `include_role` includes on this host: the role, its `*_from` files, and
    /// params, per loop item.
    pub(crate) fn evaluate_include_role(
        &self,
        ctx: &PlayCtx<'_>,
        t: &crate::playbook::Task,
        st: &HostRun,
        params: &Map<String, Value>,
    ) -> Result<Vec<(RoleInclusion, Option<String>)>, String> {
        let mut out = Vec::new();
        for (item, scope) in self.include_items(ctx, t, st, params)? {
            let args = match self
                .templar
                .template_value(&Value::Object(t.args.clone()), &scope)
                .map_err(|e| e.message)?
            {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let name = crate::playbook::role_task_name(&args)
                .ok_or("'name' is a required field for include_role.")?;
            let flag = |k: &str, default: bool| {
                args.get(k)
                    .and_then(modules::args::ansible_bool)
                    .unwrap_or(default)
            };
            let apply = match t.args.get("apply") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            out.push((
                RoleInclusion {
                    name,
                    from: crate::playbook::from_files(&args),
                    params: self.include_params(t, item.as_ref(), &scope)?,
                    public: flag("public", false),
                    allow_duplicates: flag("allow_duplicates", true),
                    validate: flag("rolespec_validate", true),
                    apply,
                },
                item.as_ref().map(item_label),
            ));
        }
        Ok(out)
    }

    /// A task file named by an include: in a role, the role's `tasks/` first; then beside
    /// the including file, then beside the playbook.
    fn find_task_file(&self, ctx: &PlayCtx<'_>, t: &crate::playbook::Task, file: &str) -> PathBuf {
        let p = PathBuf::from(file);
        if p.is_absolute() {
            return p;
        }
        if let Some(role) = &t.role {
            let in_role = role.path.join("tasks").join(file);
            if in_role.is_file() {
                return in_role;
            }
        }
        let beside = t.span.file.parent().map(|d| d.join(file));
        match beside {
            Some(b) if b.is_file() => b,
            _ => ctx.play.dir.join(file),
        }
    }
}

/// The variable a task's loop items are bound to (`loop_control.loop_var`, or `item`).
fn loop_var(t: &crate::playbook::Task) -> String {
    t.keyword("loop_control")
        .and_then(|l| l.get("loop_var"))
        .and_then(Value::as_str)
        .unwrap_or("item")
        .to_string()
}

/// A role's task that ran on a host (ok, changed or failed; not skipped or unreachable)
/// means the host has run that role, once the role reaches its end.
fn note_role_ran(st: &mut HostRun, t: &crate::playbook::Task, lines: &[HostLine]) {
    let Some(role) = &t.role else { return };
    if lines
        .iter()
        .any(|l| matches!(l.status, Status::Ok | Status::Changed | Status::Failed))
    {
        st.roles_ran.insert(role.key.clone());
    }
}

/// What a debug line shows, as Ansible's callback trims it: `msg` alone, or the variable alone.
fn clean_debug_result(mut result: Map<String, Value>) -> Map<String, Value> {
    if result.contains_key("msg") {
        result.retain(|k, _| {
            matches!(
                k.as_str(),
                "msg" | "exception" | "warnings" | "deprecations"
            ) || k.starts_with('_')
        });
    } else {
        for k in [
            "changed",
            "failed",
            "skipped",
            "invocation",
            "skip_reason",
            "ansible_loop_var",
            "ansible_index_var",
            "ansible_loop",
        ] {
            result.remove(k);
        }
    }
    result
}

/// What `ansible_failed_task` holds.
fn task_info(t: &crate::playbook::Task) -> Value {
    serde_json::json!({"name": t.display_name(), "action": t.action_written, "args": t.args})
}
