//! Running plays: host batches, the linear strategy over a rayon pool, blocks, includes, handlers, recap.
//!
//! Every host has its own state (`HostRun`) behind a mutex that only its worker takes while a
//! task runs; other hosts' variables (`hostvars`) are read from snapshots so two hosts that
//! look at each other can never wait on each other.

mod actions;
pub mod hostwrap;
mod task;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{exit, Diagnostic};
use crate::inventory::Inventory;
use crate::playbook::{Inherited, Loader, Play, Playbook, Task};
use crate::report::{HostLine, Reporter, Stats, Status};
use crate::template::{HostVars, Scope, Templar};
use crate::vars::Layers;

/// Everything the command line decides about a run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub check: bool,
    pub diff: bool,
    pub verbosity: u8,
    pub forks: usize,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub limit: Option<String>,
    pub extra_vars: Map<String, Value>,
    pub start_at_task: Option<String>,
    pub connection: Option<String>,
    pub become_: bool,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    /// From `-K/--ask-become-pass`.
    pub become_password: Option<hostwrap::Secret>,
    pub remote_user: Option<String>,
    /// `--private-key`: tried before the hosts' own key files.
    pub private_key: Option<std::path::PathBuf>,
    /// `-T`: SSH connect timeout in seconds.
    pub timeout: Option<u64>,
    /// `host_key_checking` from play.toml / `ANSIBLE_HOST_KEY_CHECKING`.
    pub host_key_checking: Option<crate::connection::HostKeyChecking>,
}

/// A target's connection, owned by the host's worker while a task runs.
pub type Conn = Box<dyn modules::Host + Send>;

/// One host's state during a play.
pub(crate) struct HostRun {
    pub name: String,
    pub conn: Option<Conn>,
    pub layers: Layers,
    pub failed: bool,
    pub unreachable: bool,
    pub ended: bool,
    /// Handler indices notified and not yet run.
    pub pending_handlers: Vec<usize>,
    /// Set when a task fails inside a block, for `ansible_failed_task` / `ansible_failed_result`.
    pub failed_task: Option<(Value, Map<String, Value>)>,
    pub stats: Stats,
}

/// Each host's variables as other hosts see them through `hostvars`.
type Snapshots = Arc<RwLock<HashMap<String, Arc<Map<String, Value>>>>>;

/// Facts and set_facts of each host, kept across plays (as Ansible keeps them for the run).
#[derive(Default, Clone)]
struct Persisted {
    facts: Map<String, Value>,
    set_facts: Map<String, Value>,
    include_vars: Map<String, Value>,
}

pub struct Runner {
    pub(crate) opts: Options,
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) templar: Templar,
    pub(crate) report: Reporter,
    stats: Mutex<IndexMap<String, Stats>>,
    persisted: Mutex<HashMap<String, Persisted>>,
    conns: Mutex<HashMap<String, Conn>>,
    /// Sessions to `delegate_to` hosts, reused by every delegated task.
    pub(crate) delegate_pool: DelegatePool,
    /// Hosts that failed or were unreachable: left out of later plays.
    dead_hosts: Mutex<std::collections::HashSet<String>>,
    /// What `hostvars[h]` shows: a host's variables as of its last finished task.
    snapshots: Snapshots,
    start_at_found: AtomicBool,
    pool: rayon::ThreadPool,
}

/// Idle sessions to delegate hosts. A worker takes one for a task and puts it back; hosts
/// delegating at the same moment open their own, and the pool keeps one per delegate.
#[derive(Default)]
pub(crate) struct DelegatePool(Mutex<HashMap<String, Conn>>);

impl DelegatePool {
    pub(crate) fn take(&self, host: &str) -> Option<Conn> {
        self.0.lock().ok()?.remove(host)
    }
    pub(crate) fn put(&self, host: &str, conn: Conn) {
        if let Ok(mut pool) = self.0.lock() {
            pool.entry(host.to_string()).or_insert(conn);
        }
    }
}

/// The per-play context shared by the host workers.
pub(crate) struct PlayCtx<'a> {
    pub play: &'a Play,
    pub hosts: Vec<String>,
    pub states: Vec<Mutex<HostRun>>,
    pub end_play: AtomicBool,
    /// The hosts of this batch, and those of them not failed (`ansible_play_hosts`), kept
    /// here so that reading them never takes a host's lock.
    pub batch: Vec<String>,
    pub live: RwLock<Vec<String>>,
    pub check: bool,
    pub diff: bool,
}

/// `hostvars`: other hosts' variables from the snapshots (inventory vars for hosts not in the play).
struct RunHostVars {
    inventory: Arc<Inventory>,
    snapshots: Snapshots,
}

impl HostVars for RunHostVars {
    fn host_names(&self) -> Vec<String> {
        self.inventory.hosts()
    }
    fn vars_of(&self, host: &str) -> Option<Arc<Map<String, Value>>> {
        if let Some(v) = self
            .snapshots
            .read()
            .ok()
            .and_then(|s| s.get(host).cloned())
        {
            return Some(v);
        }
        if !self.inventory.has_host(host) {
            return None;
        }
        let mut vars = self.inventory.host_vars(host);
        vars.insert("inventory_hostname".into(), Value::String(host.to_string()));
        vars.insert(
            "group_names".into(),
            self.inventory
                .group_names(host)
                .into_iter()
                .map(Value::String)
                .collect(),
        );
        Some(Arc::new(vars))
    }
}

/// How the run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Ok,
    HostsFailed,
    HostsUnreachable,
}

impl RunEnd {
    pub fn exit_code(self) -> i32 {
        match self {
            RunEnd::Ok => exit::OK,
            RunEnd::HostsFailed => exit::HOST_FAILED,
            RunEnd::HostsUnreachable => exit::UNREACHABLE,
        }
    }
}

impl Runner {
    pub fn new(opts: Options, inventory: Inventory, report: Reporter) -> Result<Self, Diagnostic> {
        let forks = if opts.forks == 0 { 50 } else { opts.forks };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(forks.max(1))
            .build()
            .map_err(|e| {
                Diagnostic::new(format!("cannot start {forks} workers: {e}")).exit_code(exit::ERROR)
            })?;
        Ok(Self {
            opts,
            inventory: Arc::new(inventory),
            templar: Templar::new(),
            report,
            stats: Mutex::new(IndexMap::new()),
            persisted: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            dead_hosts: Mutex::new(std::collections::HashSet::new()),
            delegate_pool: DelegatePool::default(),
            snapshots: Arc::new(RwLock::new(HashMap::new())),
            start_at_found: AtomicBool::new(false),
            pool,
        })
    }

    /// Run every play of the playbooks in order, then print the recap.
    pub fn run(&self, playbooks: &[Playbook]) -> Result<RunEnd, Diagnostic> {
        for pb in playbooks {
            for play in &pb.plays {
                if !self.run_play(play)? {
                    break;
                }
            }
        }
        let stats = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        self.report.recap(&stats);
        let end = if stats.values().any(|s| s.unreachable > 0) {
            RunEnd::HostsUnreachable
        } else if stats.values().any(|s| s.failed > 0) {
            RunEnd::HostsFailed
        } else {
            RunEnd::Ok
        };
        Ok(end)
    }

    pub(crate) fn scope(&self, vars: Map<String, Value>) -> Scope {
        Scope {
            vars: Arc::new(vars),
            hostvars: Some(Arc::new(RunHostVars {
                inventory: self.inventory.clone(),
                snapshots: self.snapshots.clone(),
            })),
        }
    }

    /// The hosts a play targets: its pattern (templated with extra vars), then `--limit`.
    pub fn play_hosts(&self, play: &Play) -> Result<Vec<String>, Diagnostic> {
        let pattern = if play.hosts.contains("{{") {
            let mut vars = self.opts.extra_vars.clone();
            vars.extend(play.vars.clone());
            match self.templar.template_str(&play.hosts, &self.scope(vars)) {
                Ok(Value::String(s)) => s,
                Ok(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                Ok(other) => other.to_string(),
                Err(e) => {
                    return Err(
                        Diagnostic::new(format!("hosts: {}", e.message)).at(play.span.clone())
                    )
                }
            }
        } else {
            play.hosts.clone()
        };
        let mut hosts = self.inventory.select(&pattern)?;
        if let Some(limit) = &self.opts.limit {
            let allowed = self.inventory.limit(limit)?;
            hosts.retain(|h| allowed.contains(h));
        }
        Ok(hosts)
    }

    /// Returns false when the run must stop (every host failed).
    fn run_play(&self, play: &Play) -> Result<bool, Diagnostic> {
        let mut hosts = self.play_hosts(play)?;
        // Hosts that failed or were unreachable in an earlier play sit out the rest of the run.
        if let Ok(dead) = self.dead_hosts.lock() {
            hosts.retain(|h| !dead.contains(h));
        }
        if hosts.is_empty() {
            self.report.play_start(&play.name);
            self.report.note("skipping: no hosts matched");
            return Ok(true);
        }
        for batch in serial_batches(&hosts, play.serial.as_ref()) {
            // Ansible prints the play banner again for every serial batch.
            self.report.play_start(&play.name);
            let ctx = self.start_batch(play, &hosts, &batch)?;
            self.run_batch(&ctx);
            self.finish_batch(ctx);
        }
        Ok(true)
    }

    fn start_batch<'a>(
        &self,
        play: &'a Play,
        all_hosts: &[String],
        batch: &[String],
    ) -> Result<PlayCtx<'a>, Diagnostic> {
        let persisted = self.persisted.lock().map(|p| p.clone()).unwrap_or_default();
        let mut states = Vec::new();
        for name in batch {
            let saved = persisted.get(name).cloned().unwrap_or_default();
            let layers = Layers {
                inventory: self.inventory.host_vars(name),
                facts: saved.facts,
                play: play.vars.clone(),
                vars_files: Map::new(),
                include_vars: saved.include_vars,
                set_facts: saved.set_facts,
                extra: self.opts.extra_vars.clone(),
            };
            let conn = self.conns.lock().ok().and_then(|mut c| c.remove(name));
            states.push(Mutex::new(HostRun {
                name: name.clone(),

                conn,
                layers,
                failed: false,
                unreachable: false,
                ended: false,
                pending_handlers: Vec::new(),
                failed_task: None,
                stats: Stats::default(),
            }));
        }
        let check = play
            .keywords
            .get("check_mode")
            .and_then(Value::as_bool)
            .unwrap_or(self.opts.check);
        let diff = play
            .keywords
            .get("diff")
            .and_then(Value::as_bool)
            .unwrap_or(self.opts.diff);
        let ctx = PlayCtx {
            play,
            hosts: all_hosts.to_vec(),
            states,
            end_play: AtomicBool::new(false),
            batch: batch.to_vec(),
            live: RwLock::new(batch.to_vec()),
            check,
            diff,
        };
        // vars_files are loaded per host: their names may use host variables.
        for st in &ctx.states {
            let Ok(mut st) = st.lock() else { continue };
            for entry in &play.vars_files {
                let vars = self.host_scope_vars(&ctx, &st, &Map::new(), &Map::new());
                match self.load_vars_file_entry(entry, &play.dir, vars) {
                    Ok(m) => st.layers.vars_files.extend(m),
                    Err(d) => return Err(d.at_opt(Some(play.span.clone()))),
                }
            }
            self.snapshot(&ctx, &st);
            let mut stats = self
                .stats
                .lock()
                .map_err(|_| Diagnostic::new("stats lock poisoned"))?;
            stats.entry(st.name.clone()).or_default();
        }
        Ok(ctx)
    }

    fn finish_batch(&self, ctx: PlayCtx<'_>) {
        for st in ctx.states {
            let Ok(st) = st.into_inner() else { continue };
            if st.failed || st.unreachable {
                if let Ok(mut dead) = self.dead_hosts.lock() {
                    dead.insert(st.name.clone());
                }
            }
            if let Ok(mut p) = self.persisted.lock() {
                p.insert(
                    st.name.clone(),
                    Persisted {
                        facts: st.layers.facts,
                        set_facts: st.layers.set_facts,
                        include_vars: st.layers.include_vars,
                    },
                );
            }
            if let (Some(conn), Ok(mut conns)) = (st.conn, self.conns.lock()) {
                conns.insert(st.name.clone(), conn);
            }
        }
    }

    fn run_batch(&self, ctx: &PlayCtx<'_>) {
        let all: Vec<usize> = (0..ctx.states.len()).collect();
        if self.gather_facts_enabled(ctx.play) {
            self.gather_facts(ctx, &all);
        }
        let no_params = Map::new();
        for section in [&ctx.play.pre_tasks, &ctx.play.tasks, &ctx.play.post_tasks] {
            self.run_list(ctx, section, &all, &no_params, false);
            self.flush_handlers(ctx, &all);
            if ctx.end_play.load(Ordering::SeqCst) {
                break;
            }
        }
    }

    fn gather_facts_enabled(&self, play: &Play) -> bool {
        match &play.gather_facts {
            None => true,
            Some(v) => modules::args::ansible_bool(v).unwrap_or(true),
        }
    }

    /// Recompute `ansible_play_hosts` (called between tasks, when no worker holds a host lock).
    fn refresh_live(&self, ctx: &PlayCtx<'_>) {
        let live: Vec<String> = ctx
            .states
            .iter()
            .filter_map(|s| {
                s.lock()
                    .ok()
                    .filter(|s| !s.failed && !s.unreachable)
                    .map(|s| s.name.clone())
            })
            .collect();
        if let Ok(mut l) = ctx.live.write() {
            *l = live;
        }
    }

    /// Hosts of `hosts` that can still run tasks.
    fn active(&self, ctx: &PlayCtx<'_>, hosts: &[usize]) -> Vec<usize> {
        hosts
            .iter()
            .copied()
            .filter(|&i| {
                ctx.states[i]
                    .lock()
                    .map(|s| !s.failed && !s.unreachable && !s.ended)
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Run a task list on some hosts (linear: every host finishes a task before the next starts).
    pub(crate) fn run_list(
        &self,
        ctx: &PlayCtx<'_>,
        tasks: &[Task],
        hosts: &[usize],
        params: &Map<String, Value>,
        handler: bool,
    ) {
        for t in tasks {
            if ctx.end_play.load(Ordering::SeqCst) {
                return;
            }
            let active = self.active(ctx, hosts);
            if active.is_empty() {
                return;
            }
            self.refresh_live(ctx);
            if t.block.is_some() {
                self.run_block(ctx, t, &active, params, handler);
                continue;
            }
            if !self.selected_by_tags(t) || !self.start_at_reached(t) {
                continue;
            }
            match t.action.as_str() {
                "meta" => {
                    self.report.task_start(&t.display_name(), handler);
                    self.run_meta(ctx, t, &active)
                }
                "include_tasks" | "include" => self.run_include(ctx, t, &active, params, handler),
                _ => self.run_task(ctx, t, &active, params, handler),
            }
        }
    }

    fn start_at_reached(&self, t: &Task) -> bool {
        let Some(start) = &self.opts.start_at_task else {
            return true;
        };
        if self.start_at_found.load(Ordering::SeqCst) {
            return true;
        }
        let name = t.display_name();
        if &name == start
            || globset::Glob::new(start)
                .map(|g| g.compile_matcher().is_match(&name))
                .unwrap_or(false)
        {
            self.start_at_found.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Tag selection as Ansible does it: `always` runs unless skipped, `never` only when asked for.
    pub(crate) fn selected_by_tags(&self, t: &Task) -> bool {
        let tags = &t.tags;
        let has = |x: &str| tags.iter().any(|t| t == x);
        if self.opts.skip_tags.iter().any(|s| {
            has(s) || (s == "tagged" && !tags.is_empty()) || (s == "untagged" && tags.is_empty())
        }) {
            return false;
        }
        if has("always") {
            return true;
        }
        let wanted = if self.opts.tags.is_empty() {
            vec!["all".to_string()]
        } else {
            self.opts.tags.clone()
        };
        if has("never") {
            return wanted.iter().any(|w| w != "all" && has(w));
        }
        wanted.iter().any(|w| match w.as_str() {
            "all" => true,
            "tagged" => !tags.is_empty(),
            "untagged" => tags.is_empty(),
            w => has(w),
        })
    }

    fn run_block(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        hosts: &[usize],
        params: &Map<String, Value>,
        handler: bool,
    ) {
        let Some(block) = &t.block else { return };
        self.run_list(ctx, &block.block, hosts, params, handler);
        let failed: Vec<usize> = hosts
            .iter()
            .copied()
            .filter(|&i| {
                ctx.states[i]
                    .lock()
                    .map(|s| s.failed && !s.unreachable)
                    .unwrap_or(false)
            })
            .collect();
        if !block.rescue.is_empty() && !failed.is_empty() {
            for &i in &failed {
                if let Ok(mut st) = ctx.states[i].lock() {
                    st.failed = false;
                    // The failure was already counted; a rescued failure counts as rescued instead.
                    if let Ok(mut stats) = self.stats.lock() {
                        let s = stats.entry(st.name.clone()).or_default();
                        s.failed = s.failed.saturating_sub(1);
                        s.rescued += 1;
                    }
                    if let Some((task, result)) = st.failed_task.clone() {
                        st.layers
                            .set_facts
                            .insert("ansible_failed_task".into(), task);
                        st.layers
                            .set_facts
                            .insert("ansible_failed_result".into(), Value::Object(result));
                    }
                }
                self.sync_stats(ctx, i);
            }
            self.run_list(ctx, &block.rescue, &failed, params, handler);
        }
        if !block.always.is_empty() {
            // `always` runs for every host that entered the block, failed or not.
            let mut was_failed = Vec::new();
            for &i in hosts {
                if let Ok(mut st) = ctx.states[i].lock() {
                    if st.failed && !st.unreachable {
                        was_failed.push(i);
                        st.failed = false;
                    }
                }
            }
            self.run_list(ctx, &block.always, hosts, params, handler);
            for i in was_failed {
                if let Ok(mut st) = ctx.states[i].lock() {
                    st.failed = true;
                }
            }
        }
    }

    fn run_meta(&self, ctx: &PlayCtx<'_>, t: &Task, hosts: &[usize]) {
        let what = t
            .args
            .get("_raw_params")
            .and_then(Value::as_str)
            .unwrap_or("noop")
            .trim()
            .to_string();
        let holds = |i: usize| {
            ctx.states[i]
                .lock()
                .map(|st| self.when_holds(ctx, t, &st))
                .unwrap_or(false)
        };
        let skipped = |i: usize| HostLine {
            host: ctx.states[i]
                .lock()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            delegated_to: None,
            status: Status::Skipped,
            item: None,
            result: Map::new(),
            ignored: false,
            show_result: false,
            censored: false,
            diff: None,
        };
        if what == "end_host" {
            let mut lines = Vec::new();
            for &i in hosts {
                if holds(i) {
                    if let Ok(mut st) = ctx.states[i].lock() {
                        st.ended = true;
                    }
                } else {
                    lines.push(skipped(i));
                }
            }
            self.report.host_lines(&lines);
            return;
        }
        // Other meta tasks act once for the play; like Ansible, their `when` is judged on the first host.
        let Some(&first) = hosts.first() else { return };
        if !t.when.is_empty() && !holds(first) {
            self.report.host_lines(&[skipped(first)]);
            return;
        }
        match what.as_str() {
            "flush_handlers" => self.flush_handlers(ctx, hosts),
            "end_play" | "end_batch" => ctx.end_play.store(true, Ordering::SeqCst),
            "clear_facts" => {
                for &i in hosts {
                    if let Ok(mut st) = ctx.states[i].lock() {
                        st.layers.facts.clear();
                    }
                }
            }
            "clear_host_errors" => {
                for st in &ctx.states {
                    if let Ok(mut st) = st.lock() {
                        st.failed = false;
                    }
                }
            }
            // noop, refresh_inventory, reset_connection: nothing to do here.
            _ => {}
        }
    }

    fn when_holds(&self, ctx: &PlayCtx<'_>, t: &Task, st: &HostRun) -> bool {
        let vars = self.host_scope_vars(ctx, st, &t.vars, &Map::new());
        let scope = self.scope(vars);
        t.when.iter().all(|w| match w {
            Value::Bool(b) => *b,
            Value::String(s) => self.templar.eval_bool(s, &scope).unwrap_or(false),
            other => !other.is_null(),
        })
    }

    /// Run the handlers notified on these hosts, in the order they are defined.
    pub(crate) fn flush_handlers(&self, ctx: &PlayCtx<'_>, hosts: &[usize]) {
        for (idx, handler) in ctx.play.handlers.iter().enumerate() {
            let notified: Vec<usize> = hosts
                .iter()
                .copied()
                .filter(|&i| {
                    ctx.states[i]
                        .lock()
                        .map(|st| {
                            st.pending_handlers.contains(&idx) && !st.failed && !st.unreachable
                        })
                        .unwrap_or(false)
                })
                .collect();
            if notified.is_empty() {
                continue;
            }
            for &i in &notified {
                if let Ok(mut st) = ctx.states[i].lock() {
                    st.pending_handlers.retain(|h| *h != idx);
                }
            }
            self.run_list(
                ctx,
                std::slice::from_ref(handler),
                &notified,
                &Map::new(),
                true,
            );
        }
    }

    /// Handler indices a notification name reaches (by name or `listen` topic).
    pub(crate) fn handlers_for(&self, ctx: &PlayCtx<'_>, name: &str) -> Vec<usize> {
        ctx.play
            .handlers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.name.as_deref() == Some(name) || h.listen.iter().any(|l| l == name))
            .map(|(i, _)| i)
            .collect()
    }

    fn gather_facts(&self, ctx: &PlayCtx<'_>, hosts: &[usize]) {
        let mut args = Map::new();
        if let Some(subset) = &ctx.play.gather_subset {
            args.insert("gather_subset".into(), subset.clone());
        }
        let task = Task {
            name: Some("Gathering Facts".into()),
            span: ctx.play.span.clone(),
            action: "setup".into(),
            action_written: "gather_facts".into(),
            args,
            when: Vec::new(),
            tags: vec!["always".into()],
            vars: Map::new(),
            environment: Vec::new(),
            keywords: Map::new(),
            block: None,
            listen: Vec::new(),
            notify: Vec::new(),
        };
        self.run_task(ctx, &task, hosts, &Map::new(), false);
    }

    /// Every variable a host sees for a task: the precedence layers plus the magic variables.
    pub(crate) fn host_scope_vars(
        &self,
        ctx: &PlayCtx<'_>,
        st: &HostRun,
        task_vars: &Map<String, Value>,
        params: &Map<String, Value>,
    ) -> Map<String, Value> {
        let magic = self.magic_vars(ctx, &st.name);
        st.layers.merged(task_vars, params, &magic)
    }

    fn magic_vars(&self, ctx: &PlayCtx<'_>, host: &str) -> Map<String, Value> {
        let mut m = Map::new();
        let strs = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        m.insert("inventory_hostname".into(), Value::String(host.to_string()));
        m.insert(
            "inventory_hostname_short".into(),
            Value::String(host.split('.').next().unwrap_or(host).to_string()),
        );
        m.insert(
            "group_names".into(),
            strs(&self.inventory.group_names(host)),
        );
        m.insert("groups".into(), Value::Object(self.inventory.groups_var()));
        m.insert("playbook_dir".into(), Value::String(abs(&ctx.play.dir)));
        if let Some(dir) = self.inventory.inventory_dir(host) {
            m.insert("inventory_dir".into(), Value::String(abs(&dir)));
        }
        m.insert("ansible_play_hosts_all".into(), strs(&ctx.hosts));
        let live = ctx.live.read().map(|l| l.clone()).unwrap_or_default();
        m.insert("ansible_play_hosts".into(), strs(&live));
        m.insert("play_hosts".into(), strs(&live));
        m.insert("ansible_play_batch".into(), strs(&ctx.batch));
        m.insert(
            "ansible_play_name".into(),
            Value::String(ctx.play.name.clone()),
        );
        m.insert("ansible_check_mode".into(), Value::Bool(ctx.check));
        m.insert("ansible_diff_mode".into(), Value::Bool(ctx.diff));
        m.insert("ansible_verbosity".into(), Value::from(self.opts.verbosity));
        m.insert(
            "ansible_run_tags".into(),
            strs(if self.opts.tags.is_empty() {
                &[]
            } else {
                &self.opts.tags
            }),
        );
        m.insert("ansible_skip_tags".into(), strs(&self.opts.skip_tags));
        m.insert(
            "ansible_version".into(),
            serde_json::json!({"full": "2.19.0", "major": 2, "minor": 19, "revision": 0, "string": "2.19.0"}),
        );
        m
    }

    /// Record what `hostvars[host]` shows to other hosts.
    pub(crate) fn snapshot(&self, ctx: &PlayCtx<'_>, st: &HostRun) {
        let vars = self.host_scope_vars(ctx, st, &Map::new(), &Map::new());
        if let Ok(mut s) = self.snapshots.write() {
            s.insert(st.name.clone(), Arc::new(vars));
        }
    }

    pub(crate) fn sync_stats(&self, ctx: &PlayCtx<'_>, i: usize) {
        if let (Ok(st), Ok(mut stats)) = (ctx.states[i].lock(), self.stats.lock()) {
            let base = stats.entry(st.name.clone()).or_default();
            *base = merge_stats(base, &st.stats);
        }
        if let Ok(mut st) = ctx.states[i].lock() {
            st.stats = Stats::default();
        }
    }

    /// Load one `vars_files` entry (a file, or a list: the first that exists).
    fn load_vars_file_entry(
        &self,
        entry: &Value,
        dir: &Path,
        vars: Map<String, Value>,
    ) -> Result<Map<String, Value>, Diagnostic> {
        let scope = self.scope(vars);
        let candidates: Vec<Value> = match entry {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        let mut tried = Vec::new();
        for c in &candidates {
            let name = match self.templar.template_value(c, &scope) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) if candidates.len() > 1 => {
                    tried.push(e.message);
                    continue;
                }
                Err(e) => return Err(Diagnostic::new(format!("vars_files: {}", e.message))),
            };
            let path = dir.join(&name);
            if path.is_file() {
                return actions::load_vars_file(&path);
            }
            tried.push(path.display().to_string());
        }
        Err(
            Diagnostic::new(format!("vars file not found: {}", tried.join(", ")))
                .exit_code(exit::ERROR),
        )
    }

    /// Run an `include_tasks`: per host, decide the file (and loop items), then run each file
    /// on the hosts that included it.
    fn run_include(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        hosts: &[usize],
        params: &Map<String, Value>,
        handler: bool,
    ) {
        let name = t.display_name();
        self.report.task_start(&name, handler);
        // (file, params) in first-seen order, with the hosts that include it.
        let mut includes: Vec<(task::Included, Vec<usize>)> = Vec::new();
        let mut lines = Vec::new();
        for &i in hosts {
            let Ok(mut st) = ctx.states[i].lock() else {
                continue;
            };
            match self.evaluate_include(ctx, t, &st, params) {
                Ok(entries) if entries.is_empty() => {
                    st.stats.skipped += 1;
                    lines.push(HostLine {
                        host: st.name.clone(),
                        delegated_to: None,
                        status: Status::Skipped,
                        item: None,
                        result: Map::new(),
                        ignored: false,
                        show_result: false,
                        censored: false,
                        diff: None,
                    });
                }
                Ok(entries) => {
                    for entry in entries {
                        st.stats.ok += 1;
                        match includes
                            .iter_mut()
                            .find(|((ip, pp, _), _)| ip == &entry.0 && pp == &entry.1)
                        {
                            Some(found) => found.1.push(i),
                            None => includes.push((entry, vec![i])),
                        }
                    }
                }
                Err(msg) => {
                    st.stats.failed += 1;
                    st.failed = true;
                    let mut result = Map::new();
                    result.insert("failed".into(), Value::Bool(true));
                    result.insert("msg".into(), Value::String(msg));
                    lines.push(HostLine {
                        host: st.name.clone(),
                        delegated_to: None,
                        status: Status::Failed,
                        item: None,
                        result,
                        ignored: false,
                        show_result: false,
                        censored: false,
                        diff: None,
                    });
                }
            }
        }
        self.report.host_lines(&lines);
        // One line per included file (and item), naming every host that includes it, as Ansible prints it.
        for ((path, _, label), inc_hosts) in &includes {
            let names: Vec<String> = inc_hosts
                .iter()
                .filter_map(|&i| ctx.states[i].lock().ok().map(|s| s.name.clone()))
                .collect();
            let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            self.report.note(&format!(
                "included: {} for {}{}",
                shown.display(),
                names.join(", "),
                label
                    .as_ref()
                    .map(|l| format!(" => (item={l})"))
                    .unwrap_or_default()
            ));
        }
        for &i in hosts {
            self.sync_stats(ctx, i);
        }
        let mut loader = Loader::default();
        for ((path, p, _), inc_hosts) in includes {
            let inherited = Inherited {
                tags: t.tags.clone(),
                ..Inherited::default()
            };
            match loader.load_task_file(&path, &inherited, handler) {
                Ok(tasks) => {
                    let mut merged = params.clone();
                    merged.extend(p);
                    self.run_list(ctx, &tasks, &inc_hosts, &merged, handler);
                }
                Err(d) => {
                    self.report.note(&d.render());
                    for i in inc_hosts {
                        if let Ok(mut st) = ctx.states[i].lock() {
                            st.failed = true;
                            st.stats.failed += 1;
                        }
                        self.sync_stats(ctx, i);
                    }
                }
            }
        }
    }
}

fn merge_stats(a: &Stats, b: &Stats) -> Stats {
    Stats {
        ok: a.ok + b.ok,
        changed: a.changed + b.changed,
        unreachable: a.unreachable + b.unreachable,
        failed: a.failed + b.failed,
        skipped: a.skipped + b.skipped,
        rescued: a.rescued + b.rescued,
        ignored: a.ignored + b.ignored,
    }
}

fn abs(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// Split the play's hosts into `serial` batches (a number, a percentage, or a list of them).
pub fn serial_batches(hosts: &[String], serial: Option<&Value>) -> Vec<Vec<String>> {
    let Some(serial) = serial else {
        return vec![hosts.to_vec()];
    };
    let sizes: Vec<Value> = match serial {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let size_of = |v: &Value| -> usize {
        let n = match v {
            Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
            Value::String(s) if s.trim().ends_with('%') => {
                let pct: f64 = s
                    .trim()
                    .trim_end_matches('%')
                    .trim()
                    .parse()
                    .unwrap_or(100.0);
                ((hosts.len() as f64) * pct / 100.0).floor() as usize
            }
            Value::String(s) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        if n == 0 {
            hosts.len().max(1)
        } else {
            n
        }
    };
    let mut batches = Vec::new();
    let mut rest = hosts;
    let mut k = 0;
    while !rest.is_empty() {
        let size = size_of(&sizes[k.min(sizes.len() - 1)])
            .min(rest.len())
            .max(1);
        batches.push(rest[..size].to_vec());
        rest = &rest[size..];
        k += 1;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_accepts_numbers_percentages_and_lists() {
        let hosts: Vec<String> = (1..=5).map(|i| format!("h{i}")).collect();
        let sizes = |v: Value| {
            serial_batches(&hosts, Some(&v))
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(serde_json::json!(2)), vec![2, 2, 1]);
        assert_eq!(sizes(serde_json::json!("40%")), vec![2, 2, 1]);
        assert_eq!(sizes(serde_json::json!([1, "50%"])), vec![1, 2, 2]);
        assert_eq!(serial_batches(&hosts, None).len(), 1);
    }
}
