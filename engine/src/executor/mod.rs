//! Running plays: host batches, the linear strategy over a rayon pool, blocks, includes, handlers, recap.
//!
//! Every host has its own state (`HostRun`) behind a mutex that only its worker takes while a
//! task runs; other hosts' variables (`hostvars`) are read from snapshots so two hosts that
//! look at each other can never wait on each other.

mod actions;
pub mod hostwrap;
mod prompt;
mod task;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use indexmap::IndexMap;
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::error::{exit, Diagnostic};
use crate::inventory::Inventory;
use crate::playbook::{Loader, Play, Playbook, Task};
use crate::report::{HostLine, Reporter, Stats, Status};
use crate::roles::{self, CallHow, PlayRoles, RoleInstance, RoleSearch, RoleSpec};
use crate::template::{HostVars, Scope, Templar, Vars};
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
    /// Where `include_role` (and `import_role` in included files) find roles.
    pub role_search: RoleSearch,
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
    /// Notifications not yet matched to handlers: as in Ansible, a name is looked up when
    /// handlers run, so it reaches the last handler defined with that name by then.
    pub notifications: Vec<String>,
    /// Handler indices notified and not yet run.
    pub pending_handlers: Vec<usize>,
    /// Set when a task fails inside a block, for `ansible_failed_task` / `ansible_failed_result`.
    pub failed_task: Option<(Value, Map<String, Value>)>,
    pub stats: Stats,
    /// Roles (by identity) of which this host ran at least one task, not skipped.
    pub roles_ran: HashSet<String>,
    /// Roles this host has run to the end: Ansible runs them once per play.
    pub roles_done: HashSet<String>,
    /// Roles a `meta: end_role` ended for this host, until their completion marker.
    pub ended_roles: HashSet<String>,
    /// The magic variables of this host alone (`inventory_hostname`, `group_names`, ...).
    pub magic: Arc<Map<String, Value>>,
}

/// Each host's variables as other hosts see them through `hostvars`.
type Snapshots = Arc<RwLock<HashMap<String, Vars>>>;

/// Facts and set_facts of each host, kept across plays (as Ansible keeps them for the run).
#[derive(Default, Clone)]
struct Persisted {
    facts: Arc<Map<String, Value>>,
    set_facts: Arc<Map<String, Value>>,
    include_vars: Arc<Map<String, Value>>,
}

pub struct Runner {
    pub(crate) opts: Options,
    /// The inventory as it is now: `add_host` and `group_by` replace it (copy on write).
    inventory: RwLock<Arc<Inventory>>,
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
    /// Absolute forms of the directories every task's magic variables name (playbook, role,
    /// task file), resolved once rather than per host and task.
    abs_paths: Mutex<HashMap<std::path::PathBuf, String>>,
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
    /// The play's handlers, and those `include_role` adds as the play runs.
    pub handlers: RwLock<Vec<Task>>,
    /// The play's roles (their names grow as `include_role` brings more).
    pub roles: RwLock<PlayRoles>,
    /// The magic variables every host of the batch shares (`groups`, `ansible_play_hosts`,
    /// ...), made when first needed and again after they change.
    pub magic: RwLock<Option<Arc<Map<String, Value>>>>,
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
    fn vars_of(&self, host: &str) -> Option<Vars> {
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
        Some(Vars::from(vars))
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers(forks, cores))
            .build()
            .map_err(|e| {
                Diagnostic::new(format!("cannot start {forks} workers: {e}")).exit_code(exit::ERROR)
            })?;
        Ok(Self {
            opts,
            inventory: RwLock::new(Arc::new(inventory)),
            templar: Templar::new(),
            report,
            stats: Mutex::new(IndexMap::new()),
            persisted: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            dead_hosts: Mutex::new(std::collections::HashSet::new()),
            delegate_pool: DelegatePool::default(),
            snapshots: Arc::new(RwLock::new(HashMap::new())),
            start_at_found: AtomicBool::new(false),
            abs_paths: Mutex::new(HashMap::new()),
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

    /// The inventory as it is now.
    pub(crate) fn inventory(&self) -> Arc<Inventory> {
        match self.inventory.read() {
            Ok(inventory) => inventory.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes the inventory (`add_host`, `group_by`); what `change` returns is handed back.
    pub(crate) fn change_inventory<R>(&self, change: impl FnOnce(&mut Inventory) -> R) -> R {
        let mut inventory = match self.inventory.write() {
            Ok(inventory) => inventory,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(Arc::make_mut(&mut inventory))
    }

    pub(crate) fn scope(&self, vars: impl Into<Vars>) -> Scope {
        Scope {
            vars: vars.into(),
            hostvars: Some(Arc::new(RunHostVars {
                inventory: self.inventory(),
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
        let mut hosts = self.inventory().select(&pattern)?;
        if let Some(limit) = &self.opts.limit {
            let allowed = self.inventory().limit(limit)?;
            hosts.retain(|h| allowed.contains(h));
        }
        Ok(hosts)
    }

    /// Returns false when the run must stop (every host failed).
    fn run_play(&self, play: &Play) -> Result<bool, Diagnostic> {
        let prompted = self.prompt_vars(play)?;
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
            let ctx = self.start_batch(play, &hosts, &batch, &prompted)?;
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
        prompted: &Map<String, Value>,
    ) -> Result<PlayCtx<'a>, Diagnostic> {
        let persisted = self.persisted.lock().map(|p| p.clone()).unwrap_or_default();
        // The layers every host has alike are shared, not copied per host.
        let role_defaults = Arc::new(play.roles.defaults.clone());
        let role_exports = Arc::new(play.roles.exports.clone());
        // vars_prompt answers sit just above the play's vars (level 13).
        let mut play_vars = play.vars.clone();
        play_vars.extend(prompted.iter().map(|(k, v)| (k.clone(), v.clone())));
        let play_vars = Arc::new(play_vars);
        let extra = Arc::new(self.opts.extra_vars.clone());
        let mut states = Vec::new();
        for name in batch {
            let saved = persisted.get(name).cloned().unwrap_or_default();
            let layers = Layers {
                role_defaults: role_defaults.clone(),
                role_exports: role_exports.clone(),
                inventory: Arc::new(self.inventory().host_vars(name)),
                facts: saved.facts,
                play: play_vars.clone(),
                vars_files: Arc::default(),
                include_vars: saved.include_vars,
                set_facts: saved.set_facts,
                extra: extra.clone(),
            };
            let conn = self.conns.lock().ok().and_then(|mut c| c.remove(name));
            states.push(Mutex::new(HostRun {
                name: name.clone(),

                conn,
                layers,
                failed: false,
                unreachable: false,
                ended: false,
                notifications: Vec::new(),
                pending_handlers: Vec::new(),
                failed_task: None,
                stats: Stats::default(),
                roles_ran: HashSet::new(),
                roles_done: HashSet::new(),
                ended_roles: HashSet::new(),
                magic: Arc::new(self.host_magic(name)),
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
            handlers: RwLock::new(play.handlers.clone()),
            roles: RwLock::new(play.roles.clone()),
            magic: RwLock::new(None),
        };
        // vars_files are loaded per host: their names may use host variables.
        for st in &ctx.states {
            let Ok(mut st) = st.lock() else { continue };
            for entry in &play.vars_files {
                let vars = self.host_scope_vars(&ctx, &st, None, &Map::new());
                match self.load_vars_file_entry(entry, &play.dir, vars) {
                    Ok(m) => Arc::make_mut(&mut st.layers.vars_files).extend(m),
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
        let free = ctx.play.strategy.as_deref() == Some("free");
        for section in [&ctx.play.pre_tasks, &ctx.play.tasks, &ctx.play.post_tasks] {
            if free {
                // strategy free: every host goes through the section at its own pace; a host's
                // lines are still printed whole, under the banner of the task it is at.
                self.pool.install(|| {
                    all.par_iter().for_each(|&i| {
                        self.run_list(ctx, section, &[i], &no_params, false);
                        self.flush_handlers(ctx, &[i]);
                    })
                });
            } else {
                self.run_list(ctx, section, &all, &no_params, false);
                self.flush_handlers(ctx, &all);
            }
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
        let previous = ctx.live.read().map(|l| l.clone()).unwrap_or_default();
        // states[i] is batch[i]. A host busy in a task (strategy free) keeps its last known
        // state, so that this never waits for another host.
        let live: Vec<String> = ctx
            .states
            .iter()
            .zip(&ctx.batch)
            .filter(|(state, name)| match state.try_lock() {
                Ok(s) => !s.failed && !s.unreachable,
                Err(_) => previous.contains(name),
            })
            .map(|(_, name)| name.clone())
            .collect();
        if live != previous {
            if let Ok(mut l) = ctx.live.write() {
                *l = live;
            }
            // ansible_play_hosts changed.
            if let Ok(mut m) = ctx.magic.write() {
                *m = None;
            }
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
            if t.is_implicit() {
                self.complete_role(ctx, t, &active);
                continue;
            }
            // A role that already ran on a host is not run there again (same role, same
            // params); its handlers still run when notified.
            let active = if handler {
                active
            } else {
                self.not_done_with_role(ctx, t, active)
            };
            if active.is_empty() {
                continue;
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
                "include_role" => self.run_include_role(ctx, t, &active, params, handler),
                _ => self.run_task(ctx, t, &active, params, handler),
            }
        }
    }

    /// The hosts that still run a role's task: all of them, unless the role (this identity)
    /// already ran to its end on a host and does not allow duplicates.
    fn not_done_with_role(&self, ctx: &PlayCtx<'_>, t: &Task, hosts: Vec<usize>) -> Vec<usize> {
        let Some(role) = t.role.as_ref() else {
            return hosts;
        };
        hosts
            .into_iter()
            .filter(|&i| {
                ctx.states[i]
                    .lock()
                    .map(|st| {
                        !st.ended_roles.contains(&role.key)
                            && (role.allow_duplicates || !st.roles_done.contains(&role.key))
                    })
                    .unwrap_or(false)
            })
            .collect()
    }

    /// The end of a role's tasks: hosts that ran any of them have run the role.
    fn complete_role(&self, ctx: &PlayCtx<'_>, t: &Task, hosts: &[usize]) {
        let Some(role) = &t.role else { return };
        for &i in hosts {
            if let Ok(mut st) = ctx.states[i].lock() {
                st.ended_roles.remove(&role.key);
                if st.roles_ran.contains(&role.key) {
                    st.roles_done.insert(role.key.clone());
                }
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
        // As Ansible: the task's own name, or its full name (`role : name`), or a glob of either.
        let matcher = globset::Glob::new(start).ok().map(|g| g.compile_matcher());
        let matches =
            |name: &str| name == start || matcher.as_ref().is_some_and(|m| m.is_match(name));
        if t.name.as_deref().is_some_and(matches) || matches(&t.display_name()) {
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
                        let facts = Arc::make_mut(&mut st.layers.set_facts);
                        facts.insert("ansible_failed_task".into(), task);
                        facts.insert("ansible_failed_result".into(), Value::Object(result));
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
        if what == "end_host" || what == "end_role" {
            let mut lines = Vec::new();
            for &i in hosts {
                if holds(i) {
                    if let Ok(mut st) = ctx.states[i].lock() {
                        match (&t.role, what.as_str()) {
                            // The host skips the rest of the role (up to its completion marker).
                            (Some(role), "end_role") => {
                                st.ended_roles.insert(role.key.clone());
                            }
                            (_, "end_role") => {}
                            _ => st.ended = true,
                        }
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
                        st.layers.facts = Arc::default();
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
        let vars = self.host_scope_vars(ctx, st, Some(t), &Map::new());
        let scope = self.scope(vars);
        t.when.iter().all(|w| match w {
            Value::Bool(b) => *b,
            Value::String(s) => self.templar.eval_bool(s, &scope).unwrap_or(false),
            other => !other.is_null(),
        })
    }

    /// Run the handlers notified on these hosts, in the order they are defined.
    pub(crate) fn flush_handlers(&self, ctx: &PlayCtx<'_>, hosts: &[usize]) {
        let all = ctx.handlers.read().map(|h| h.clone()).unwrap_or_default();
        for (idx, handler) in all.iter().enumerate() {
            // Notifications so far (including those of the handlers just run) find their handlers.
            self.resolve_notifications(ctx, hosts);
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

    fn resolve_notifications(&self, ctx: &PlayCtx<'_>, hosts: &[usize]) {
        for &i in hosts {
            let Ok(mut st) = ctx.states[i].lock() else {
                continue;
            };
            for name in std::mem::take(&mut st.notifications) {
                for idx in self.handlers_for(ctx, &name) {
                    if !st.pending_handlers.contains(&idx) {
                        st.pending_handlers.push(idx);
                    }
                }
            }
        }
    }

    /// Handler indices a notification reaches, as Ansible finds them: by name (`name` or
    /// `role : name`) the last handler defined with it, and every handler listening to it
    /// (one per handler name, the last defined).
    pub(crate) fn handlers_for(&self, ctx: &PlayCtx<'_>, name: &str) -> Vec<usize> {
        let Ok(handlers) = ctx.handlers.read() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let by_name = handlers.iter().rposition(|h| {
            h.name.as_deref() == Some(name)
                || matches!((&h.role, &h.name), (Some(r), Some(n)) if format!("{} : {n}", r.name) == name)
        });
        out.extend(by_name);
        let mut seen: HashSet<Option<&str>> = HashSet::new();
        for (i, h) in handlers.iter().enumerate().rev() {
            if !h.listen.iter().any(|l| l == name) {
                continue;
            }
            if h.name.is_some() && !seen.insert(h.name.as_deref()) {
                continue;
            }
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
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
            role: None,
            inherited: None,
        };
        self.run_task(ctx, &task, hosts, &Map::new(), false);
    }

    /// Every variable a host sees for a task: the precedence layers (with the task's role
    /// and vars) plus the magic variables.
    pub(crate) fn host_scope_vars(
        &self,
        ctx: &PlayCtx<'_>,
        st: &HostRun,
        task: Option<&Task>,
        params: &Map<String, Value>,
    ) -> Vars {
        let mut magic = Map::new();
        let role = task.and_then(|t| t.role.as_deref());
        if let Some(r) = role {
            let path = self.abs_path(&r.path);
            magic.insert("role_name".into(), Value::String(r.name.clone()));
            magic.insert("role_path".into(), Value::String(path));
            magic.insert("ansible_role_name".into(), Value::String(r.name.clone()));
            magic.insert("ansible_collection_name".into(), Value::Null);
        }
        if let Some(t) = task {
            // Where lookups find relative files: the role's own folder, those of the roles
            // that led to it, the task file's, the playbook's (Ansible's `ansible_search_path`).
            let mut search: Vec<String> = role
                .map(|r| {
                    r.chain
                        .iter()
                        .rev()
                        .map(|o| self.abs_path(&o.path))
                        .collect()
                })
                .unwrap_or_default();
            for dir in [
                crate::playbook::parent_dir(&t.span.file),
                ctx.play.dir.clone(),
            ] {
                let dir = self.abs_path(&dir);
                if !search.contains(&dir) {
                    search.push(dir);
                }
            }
            magic.insert(
                "ansible_search_path".into(),
                Value::Array(search.into_iter().map(Value::String).collect()),
            );
        }
        let no_vars = Map::new();
        let task_vars = task.map_or(&no_vars, |t| &t.vars);
        st.layers.vars(
            role.map(|r| &r.vars),
            task_vars,
            params,
            &[st.magic.clone(), self.play_magic(ctx), Arc::new(magic)],
        )
    }

    /// `abs(p)`, remembered.
    fn abs_path(&self, p: &Path) -> String {
        if let Some(known) = self.abs_paths.lock().ok().and_then(|m| m.get(p).cloned()) {
            return known;
        }
        let resolved = abs(p);
        if let Ok(mut m) = self.abs_paths.lock() {
            m.insert(p.to_path_buf(), resolved.clone());
        }
        resolved
    }

    /// The magic variables of one host (the same all play long).
    fn host_magic(&self, host: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("inventory_hostname".into(), Value::String(host.to_string()));
        m.insert(
            "inventory_hostname_short".into(),
            Value::String(host.split('.').next().unwrap_or(host).to_string()),
        );
        m.insert(
            "group_names".into(),
            Value::Array(
                self.inventory()
                    .group_names(host)
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ),
        );
        if let Some(dir) = self.inventory().inventory_dir(host) {
            m.insert("inventory_dir".into(), Value::String(abs(&dir)));
        }
        m
    }

    /// The magic variables every host of the batch shares, as they are now.
    fn play_magic(&self, ctx: &PlayCtx<'_>) -> Arc<Map<String, Value>> {
        if let Some(m) = ctx.magic.read().ok().and_then(|m| m.clone()) {
            return m;
        }
        // Made under the lock, so that a change (which empties the slot after it is made,
        // holding no other lock) cannot be overwritten by variables made before it.
        match ctx.magic.write() {
            Ok(mut slot) => slot
                .get_or_insert_with(|| Arc::new(self.shared_magic(ctx)))
                .clone(),
            Err(_) => Arc::new(self.shared_magic(ctx)),
        }
    }

    fn shared_magic(&self, ctx: &PlayCtx<'_>) -> Map<String, Value> {
        let mut m = Map::new();
        let strs = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        m.insert(
            "groups".into(),
            Value::Object(self.inventory().groups_var()),
        );
        m.insert(
            "playbook_dir".into(),
            Value::String(self.abs_path(&ctx.play.dir)),
        );
        m.insert("ansible_play_hosts_all".into(), strs(&ctx.hosts));
        let live = ctx.live.read().map(|l| l.clone()).unwrap_or_default();
        m.insert("ansible_play_hosts".into(), strs(&live));
        m.insert("play_hosts".into(), strs(&live));
        m.insert("ansible_play_batch".into(), strs(&ctx.batch));
        m.insert(
            "ansible_play_name".into(),
            Value::String(ctx.play.name.clone()),
        );
        if let Ok(roles) = ctx.roles.read() {
            m.insert("ansible_role_names".into(), strs(&roles.all_role_names()));
            m.insert(
                "ansible_play_role_names".into(),
                strs(&roles.play_role_names),
            );
            m.insert("role_names".into(), strs(&roles.play_role_names));
            m.insert(
                "ansible_dependent_role_names".into(),
                strs(&roles.dependent_role_names),
            );
        }
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
        let vars = self.host_scope_vars(ctx, st, None, &Map::new());
        if let Ok(mut s) = self.snapshots.write() {
            s.insert(st.name.clone(), vars);
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
        vars: Vars,
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

    /// Run an `include_tasks`: per host, decide the file (and loop items), load every file,
    /// then run each on the hosts that included it.
    fn run_include(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        hosts: &[usize],
        params: &Map<String, Value>,
        handler: bool,
    ) {
        let decided = self.decide_includes(ctx, t, hosts, handler, |st| {
            self.evaluate_include(ctx, t, st, params).map(|entries| {
                entries
                    .into_iter()
                    .map(|(path, p, label)| ((path, p), label))
                    .collect()
            })
        });
        let mut loader = self.runtime_loader(ctx);
        // What the enclosing blocks pass down; the include's own keywords stay with it.
        let inherited = t.inherited.as_deref().cloned().unwrap_or_default();
        let loaded = self.load_includes(
            ctx,
            t,
            decided,
            |(path, _)| abs(path),
            |(path, _)| {
                if !path.is_file() {
                    let reason = format!(
                        "Could not find or access '{}' on the Ansible Controller.",
                        abs(path)
                    );
                    return Err(Diagnostic::new(reason).at(t.span.clone()));
                }
                let tasks = loader.load_task_file(path, &inherited, handler)?;
                Ok((tasks, loader.take_import_handlers()))
            },
        );
        for ((_, p), (tasks, imported_handlers), inc_hosts) in loaded {
            self.add_handlers(ctx, imported_handlers, &Map::new());
            let mut merged = params.clone();
            merged.extend(p);
            self.run_list(ctx, &tasks, &inc_hosts, &merged, handler);
        }
    }

    /// Run an `include_role`: per host, decide the role (and loop items), compile every role
    /// included, then run each on the hosts that included it.
    fn run_include_role(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        hosts: &[usize],
        params: &Map<String, Value>,
        handler: bool,
    ) {
        let decided = self.decide_includes(ctx, t, hosts, handler, |st| {
            self.evaluate_include_role(ctx, t, st, params)
        });
        let mut loader = self.runtime_loader(ctx);
        let loaded = self.load_includes(
            ctx,
            t,
            decided,
            |inc| inc.name.clone(),
            |inc| {
                let mut spec = RoleSpec::named(inc.name.clone(), t.span.clone());
                spec.vars = t.vars.clone();
                let how = CallHow {
                    from: inc.from.clone(),
                    from_include: true,
                    allow_duplicates: Some(inc.allow_duplicates),
                    skip_validation: !inc.validate,
                };
                let lineage = t
                    .role
                    .as_ref()
                    .map(|r| r.lineage_for_child())
                    .unwrap_or_default();
                let mut inherited = t.inherited.as_deref().cloned().unwrap_or_default();
                roles::apply_keywords(&mut inherited, &inc.apply)
                    .map_err(|m| Diagnostic::new(m).at(t.span.clone()))?;
                let expanded = loader.expand_role(&spec, &how, &lineage, &inherited)?;
                Ok((expanded, loader.take_import_handlers()))
            },
        );
        for (inc, (expanded, imported_handlers), inc_hosts) in loaded {
            let mut merged = params.clone();
            merged.extend(inc.params.clone());
            self.add_handlers(ctx, expanded.handlers, &merged);
            self.add_handlers(ctx, imported_handlers, &merged);
            self.note_included_role(ctx, &expanded.instance, inc.public);
            self.run_list(ctx, &expanded.tasks, &inc_hosts, &merged, handler);
        }
    }

    /// What every dynamic include does first: print its banner, and per host decide what it
    /// includes (one entry per loop item; `Err` fails the host), printing the hosts it skips
    /// or fails. Returns each distinct inclusion (with its loop item's label) and the hosts
    /// that include it, in first-seen order.
    fn decide_includes<K: PartialEq>(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        hosts: &[usize],
        handler: bool,
        decide: impl Fn(&HostRun) -> Result<Vec<(K, Option<String>)>, String>,
    ) -> Vec<(K, Option<String>, Vec<usize>)> {
        self.report.task_start(&t.display_name(), handler);
        let mut includes: Vec<(K, Option<String>, Vec<usize>)> = Vec::new();
        let mut lines = Vec::new();
        for &i in hosts {
            let Ok(mut st) = ctx.states[i].lock() else {
                continue;
            };
            match decide(&st) {
                Ok(entries) if entries.is_empty() => {
                    st.stats.skipped += 1;
                    lines.push(include_line(&st.name, Status::Skipped, Map::new()));
                }
                Ok(entries) => {
                    // An include that ran counts as a task of its role having run.
                    if let Some(r) = &t.role {
                        st.roles_ran.insert(r.key.clone());
                    }
                    for (what, label) in entries {
                        match includes.iter_mut().find(|(k, _, _)| k == &what) {
                            Some(found) => found.2.push(i),
                            None => includes.push((what, label, vec![i])),
                        }
                    }
                }
                Err(msg) => {
                    st.stats.failed += 1;
                    st.failed = true;
                    let mut result = Map::new();
                    result.insert("failed".into(), Value::Bool(true));
                    result.insert("msg".into(), Value::String(msg));
                    lines.push(include_line(&st.name, Status::Failed, result));
                }
            }
        }
        self.report.host_lines(&lines);
        includes
    }

    /// Load every inclusion before any of them runs, as Ansible does: one that loads is
    /// announced (`included: X for h1, h2`) and counts as ok on its hosts; one that cannot
    /// be loaded fails its hosts (`fatal: ... "reason"`, or only the error for a loop), who
    /// then run none of what they included.
    fn load_includes<K, L>(
        &self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        decided: Vec<(K, Option<String>, Vec<usize>)>,
        shown: impl Fn(&K) -> String,
        mut load: impl FnMut(&K) -> Result<L, Diagnostic>,
    ) -> Vec<(K, L, Vec<usize>)> {
        let in_loop = t
            .keywords
            .keys()
            .any(|k| k == "loop" || k.starts_with("with_"));
        let mut loaded = Vec::new();
        for (what, label, inc_hosts) in decided {
            match load(&what) {
                Ok(l) => {
                    let mut names = Vec::new();
                    for &i in &inc_hosts {
                        if let Ok(mut st) = ctx.states[i].lock() {
                            st.stats.ok += 1;
                            names.push(st.name.clone());
                        }
                    }
                    self.report.note(&format!(
                        "included: {} for {}{}",
                        shown(&what),
                        names.join(", "),
                        label
                            .as_ref()
                            .map(|l| format!(" => (item={l})"))
                            .unwrap_or_default()
                    ));
                    loaded.push((what, l, inc_hosts));
                }
                Err(d) => {
                    self.report.task_error(&d.render());
                    let reason = std::iter::once(d.message.clone())
                        .chain(d.notes.iter().cloned())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let mut lines = Vec::new();
                    for &i in &inc_hosts {
                        let Ok(mut st) = ctx.states[i].lock() else {
                            continue;
                        };
                        st.failed = true;
                        st.stats.failed += 1;
                        let mut result = Map::new();
                        result.insert("changed".into(), Value::Bool(false));
                        let file = t.args.get("_raw_params").or(t.args.get("file"));
                        if let (Some(file), false) = (file, t.action == "include_role") {
                            result.insert("include".into(), file.clone());
                        }
                        result.insert("failed".into(), Value::Bool(true));
                        result.insert("reason".into(), Value::String(reason.clone()));
                        lines.push(include_line(&st.name, Status::Failed, result));
                    }
                    if !in_loop {
                        self.report.host_lines(&lines);
                    }
                }
            }
        }
        for i in 0..ctx.states.len() {
            self.sync_stats(ctx, i);
        }
        loaded
    }

    /// A loader for files and roles included while the play runs.
    fn runtime_loader(&self, ctx: &PlayCtx<'_>) -> Loader {
        let mut loader = Loader::new(self.opts.role_search.clone(), self.opts.extra_vars.clone());
        loader.begin_play_roles(&ctx.play.dir, ctx.play.vars.clone());
        loader
    }

    /// Handlers an include brings join the play's (Ansible appends them; a notification by
    /// name reaches the last one). Include params stay visible to them.
    fn add_handlers(&self, ctx: &PlayCtx<'_>, new: Vec<Task>, include_params: &Map<String, Value>) {
        if new.is_empty() {
            return;
        }
        let Ok(mut handlers) = ctx.handlers.write() else {
            return;
        };
        for mut h in new {
            for (k, v) in include_params {
                h.vars.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if !handlers.contains(&h) {
                handlers.push(h);
            }
        }
    }

    /// An included role joins the play's roles; a public one shows its defaults and vars to
    /// every later task, as Ansible does.
    fn note_included_role(&self, ctx: &PlayCtx<'_>, instance: &RoleInstance, public: bool) {
        if let Ok(mut roles) = ctx.roles.write() {
            if public {
                roles.add_public(instance);
            } else {
                roles.play_role_names.push(instance.own.name.clone());
            }
        }
        // The role names in the magic variables changed.
        if let Ok(mut m) = ctx.magic.write() {
            *m = None;
        }
        if !public {
            return;
        }
        let defaults = instance.defaults_along(&[]);
        let exports = instance.exports();
        // Hosts that shared a layer share the extended one.
        let (mut new_defaults, mut new_exports) = (Vec::new(), Vec::new());
        for st in &ctx.states {
            if let Ok(mut st) = st.lock() {
                extend_shared(&mut st.layers.role_defaults, &defaults, &mut new_defaults);
                extend_shared(&mut st.layers.role_exports, &exports, &mut new_exports);
            }
        }
    }
}

type Layer = Arc<Map<String, Value>>;

/// `layer` extended by `more`; `done` remembers the layers already extended (old, new), so
/// hosts that shared the old layer share the new one.
fn extend_shared(layer: &mut Layer, more: &Map<String, Value>, done: &mut Vec<(Layer, Layer)>) {
    if let Some((_, new)) = done.iter().find(|(old, _)| Arc::ptr_eq(old, layer)) {
        *layer = new.clone();
        return;
    }
    let mut m = (**layer).clone();
    m.extend(more.clone());
    let new = Arc::new(m);
    done.push((layer.clone(), new.clone()));
    *layer = new;
}

/// A host's line for an include task (skipped, or failed).
fn include_line(host: &str, status: Status, result: Map<String, Value>) -> HostLine {
    HostLine {
        host: host.to_string(),
        delegated_to: None,
        status,
        item: None,
        result,
        ignored: false,
        show_result: false,
        censored: false,
        diff: None,
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

/// A path as Ansible shows it: absolute, symlinks resolved when it exists.
fn abs(p: &Path) -> String {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// How many worker threads run hosts at once: `forks`, but no more than 2 per core (at
/// least 4). A host's task mostly waits on its connection, yet on loopback 4 threads on 2
/// cores are as fast as 8 (within the noise of 3 runs on 50 hosts), and every thread holds
/// memory: a malloc arena with its share of the hosts' data and what it freed, ~0.7 MiB
/// each on 50 hosts. Hosts beyond the workers wait for a free one.
fn workers(forks: usize, cores: usize) -> usize {
    forks.clamp(1, (2 * cores).max(4))
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
    fn workers_are_forks_up_to_two_per_core() {
        assert_eq!(workers(50, 2), 4);
        assert_eq!(workers(3, 2), 3);
        assert_eq!(workers(50, 8), 16);
        assert_eq!(workers(50, 1), 4);
        assert_eq!(workers(0, 1), 1);
        assert_eq!(workers(100, 64), 100);
    }

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
