//! The module contract (`Host`, `Module`, `Outcome`), the registry of every module, and shared helpers.
//!
//! A module knows nothing of playbooks, SSH or YAML files: it receives already-templated
//! arguments and a `Host` to run shell commands on, and says what changed. Modules run on
//! the controller and only ever send shell commands (and file contents) to the target.

pub mod accounts;
pub mod args;
pub mod cmd;
pub mod commands;
pub mod diff;
pub mod files;
pub mod local;
pub mod net;
pub mod packages;
pub mod pyfmt;
pub mod services;
pub mod system;
pub mod tools;

use std::fmt;

pub use cmd::{quote, Cmd, Script};

/// Ansible-style data: every argument, result and variable is JSON-shaped.
pub type Value = serde_json::Value;
/// An ordered mapping of names to values (insertion order is kept, as Python dicts do).
pub type Map = serde_json::Map<String, Value>;

/// What a command printed and how it ended. stdout and stderr are kept apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status; a command killed by a signal reports 128 + the signal number.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a host could not do what was asked. `Unreachable` makes the host UNREACHABLE in the recap.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Transfer(String),
}

/// Ownership and permissions a transferred file is given before it is renamed into place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAttrs {
    /// Permission bits (e.g. 0o644). `None` keeps the mode of the file being replaced,
    /// or 0644 & ~umask for a new file, as Ansible does.
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// One target host. Owned by that host's worker thread; every module reaches the target
/// only through it (never the controller's own filesystem).
pub trait Host {
    /// The inventory name of the host.
    fn name(&self) -> &str;
    /// Run a command through `sh -c` on the target.
    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError>;
    /// Write `data` to `dest` atomically: a 0600 temp file beside `dest`, attributes set,
    /// then renamed over `dest`. A dropped connection leaves the old file intact.
    fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError>;
    /// Write `data` to `path`, a temporary name that must not exist yet, as a file of the
    /// connecting user with exactly `mode` (0600 while it is written): nothing else. For a
    /// module whose next command finishes the file anyway (owner, validation, backup, the
    /// rename over the destination), which then needs no command of its own here (the SSH
    /// connection does it all by SFTP). A dropped connection may leave `path` behind, never
    /// touches anything else.
    fn put_new(&mut self, data: &[u8], path: &str, mode: u32) -> Result<(), HostError> {
        let attrs = FileAttrs {
            mode: Some(mode),
            ..FileAttrs::default()
        };
        self.put(data, path, &attrs)
    }
    /// Read a whole file from the target.
    fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError>;
}

/// What a module run needs besides its arguments.
pub struct Ctx<'a> {
    pub host: &'a mut dyn Host,
    /// `--check`: compute what would change, change nothing.
    pub check: bool,
    /// `--diff`: fill `Outcome::diffs`.
    pub diff: bool,
    /// Facts gathered for this host (`ansible_facts` without the `ansible_` prefix); may be empty.
    pub facts: &'a Map,
}

/// A before/after pair for `--diff`, as Ansible's `diff` result key carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileDiff {
    pub before_header: String,
    pub after_header: String,
    pub before: String,
    pub after: String,
}

/// What a module reports. `result` holds the module-specific keys (rc, stdout, dest, ...)
/// exactly as Ansible names them; the engine adds `changed`, `failed`, `msg` from the fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub changed: bool,
    pub failed: bool,
    pub skipped: bool,
    pub msg: Option<String>,
    pub result: Map,
    pub diffs: Vec<FileDiff>,
}

impl Outcome {
    pub fn ok() -> Self {
        Self::default()
    }
    pub fn changed(changed: bool) -> Self {
        Self {
            changed,
            ..Self::default()
        }
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        Self {
            failed: true,
            msg: Some(msg.into()),
            ..Self::default()
        }
    }
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.result.insert(key.to_string(), value.into());
        self
    }
    pub fn with_msg(mut self, msg: impl Into<String>) -> Self {
        self.msg = Some(msg.into());
        self
    }
    /// The registered result as Ansible shows it: module keys plus `changed`, `failed`, `msg`.
    pub fn to_result(&self) -> Map {
        let mut map = self.result.clone();
        map.insert("changed".into(), Value::Bool(self.changed));
        if self.failed {
            map.insert("failed".into(), Value::Bool(true));
        }
        if self.skipped {
            map.insert("skipped".into(), Value::Bool(true));
        }
        if let Some(msg) = &self.msg {
            map.insert("msg".into(), Value::String(msg.clone()));
        }
        if !self.diffs.is_empty() {
            let diffs: Vec<Value> = self
                .diffs
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "before_header": d.before_header, "after_header": d.after_header,
                        "before": d.before, "after": d.after,
                    })
                })
                .collect();
            map.insert("diff".into(), Value::Array(diffs));
        }
        map
    }
}

/// Why a module could not run at all (as opposed to running and reporting `failed`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModuleError {
    /// Unknown, missing or mistyped arguments: the message is Ansible's wording.
    #[error("{0}")]
    Args(String),
    /// The module ran into something it cannot handle; reported as a task failure.
    #[error("{0}")]
    Failed(String),
    /// The host went away: the host becomes UNREACHABLE.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// A module: facts in, shell commands out. Check mode is the module's promise to stop
/// after it has read the target's state (`ctx.check`), reporting what it would change.
pub trait Module: Send + Sync {
    /// The short name (`copy`); the registry also answers to `ansible.builtin.copy` etc.
    fn name(&self) -> &'static str;
    /// Collection prefixes this module answers to besides `ansible.builtin` / `ansible.legacy`.
    fn collections(&self) -> &'static [&'static str] {
        &[]
    }
    /// Other short names (`systemd` for `systemd_service`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether the module takes a free-form string (`command: ls -l`), stored as `_raw_params`.
    fn free_form(&self) -> bool {
        false
    }
    /// Whether the module honours check mode (Ansible skips the others in check mode).
    fn supports_check(&self) -> bool {
        true
    }
    /// Every argument name the module accepts (aliases included), for load-time checks;
    /// usually `args::field_names::<XxxArgs>()`. Empty: not checked when loading.
    fn arg_names(&self) -> &'static [&'static str] {
        &[]
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError>;

    /// Several loop items of one task at once, in fewer round trips than a `run` each, with
    /// the outcomes `run` would give the items one after the other (changed, failed, result
    /// keys, diffs, check mode): a module only batches what it can prove it gets right, and
    /// runs items one by one itself where it cannot.
    ///
    /// `None`: these items are not batched (the default): the caller runs them one by one,
    /// which also reports argument errors as usual. `Some(results)`: one result per item in
    /// order, except that the list ends early at an item whose error is
    /// [`ModuleError::Host`] (the host is gone; later items were not run, as a loop stops).
    ///
    /// Only for items whose per-item task keywords (`when`, `until`, `changed_when`,
    /// `failed_when`, ...) do not depend on the item or on earlier items' results: the caller
    /// decides that; the module only sees arguments.
    fn run_many(
        &self,
        ctx: &mut Ctx<'_>,
        items: &[Map],
    ) -> Option<Vec<Result<Outcome, ModuleError>>> {
        let _ = (ctx, items);
        None
    }
}

/// Every module, one line each.
pub static REGISTRY: &[&dyn Module] = &[
    &commands::command::Command,
    &commands::shell::Shell,
    &commands::raw::Raw,
    &commands::script::ScriptModule,
    &commands::wait_for::WaitFor,
    &commands::ping::Ping,
    &files::copy::Copy,
    &files::file::File,
    &files::lineinfile::LineInFile,
    &files::blockinfile::BlockInFile,
    &files::replace::Replace,
    &files::stat::Stat,
    &files::slurp::Slurp,
    &files::find::Find,
    &files::tempfile::TempFile,
    &system::setup::Setup,
    &packages::pacman::Pacman,
    &packages::apt::Apt,
    &packages::package::Package,
    &accounts::user::User,
    &accounts::cron::Cron,
    &accounts::group::Group,
    &accounts::authorized_key::AuthorizedKey,
    &net::git::Git,
    &net::get_url::GetUrl,
    &net::uri::Uri,
    &net::unarchive::Unarchive,
    &services::systemd::SystemdService,
    &services::service::Service,
    &system::sysctl::Sysctl,
    &system::hostname::Hostname,
    &system::timezone::Timezone,
];

/// Find a module by any of the names Ansible users write: `copy`, `ansible.builtin.copy`,
/// `ansible.legacy.copy`, or a collection name the module declares.
pub fn lookup(name: &str) -> Option<&'static dyn Module> {
    let (prefix, short) = match name.rfind('.') {
        Some(dot) => (Some(&name[..dot]), &name[dot + 1..]),
        None => (None, name),
    };
    REGISTRY.iter().copied().find(|m| {
        (m.name() == short || m.aliases().contains(&short))
            && match prefix {
                None | Some("ansible.builtin") | Some("ansible.legacy") => true,
                Some(p) => m.collections().contains(&p),
            }
    })
}

/// Every name a module answers to, for "did you mean" suggestions.
pub fn all_names() -> Vec<String> {
    let mut names = Vec::new();
    for m in REGISTRY {
        names.push(m.name().to_string());
        names.extend(m.aliases().iter().map(|a| a.to_string()));
    }
    names
}

/// The closest of `candidates` to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

impl fmt::Debug for dyn Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Module({})", self.name())
    }
}
