//! The command line, spelled as `ansible-playbook` spells it, and the defaults from `play.toml` and `ANSIBLE_*`.
//!
//! Subcommands: `play PLAYBOOK...` runs playbooks, exactly as `ansible-playbook` would; a
//! first argument that names a subcommand (`graph`) selects that subcommand's own parser
//! instead (see `Command::parse`). A playbook file literally called `graph` is run as
//! `play ./graph`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{Map, Value};

use crate::error::{exit, Diagnostic};

#[derive(Debug, Parser)]
#[command(
    name = "play",
    version,
    about = "Run Ansible-syntax playbooks over SSH, without Python on the targets",
    after_help = "Subcommands:\n  play graph PLAYBOOK... [--format tree|dot|json]   print the role graph of the playbooks\n  play vault encrypt|decrypt|view|edit|rekey|encrypt-string|keygen   the age vault\n  play modules [NAME] [--format text|markdown]   the modules and their arguments"
)]
pub struct Cli {
    /// Playbook files to run, in order.
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub playbooks: Vec<PathBuf>,
    /// Inventory file, directory, or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
    pub inventory: Vec<String>,
    /// Limit the run to hosts matching this pattern (`@file` reads patterns from a file).
    #[arg(short = 'l', long = "limit", value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Only run tasks with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags", value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Skip tasks with these tags (comma-separated, repeatable).
    #[arg(long = "skip-tags", value_name = "TAGS")]
    pub skip_tags: Vec<String>,
    /// Extra variables: `k=v ...`, `@file.yml`, or a JSON/YAML mapping (repeatable; later wins).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Don't change anything; report what would change.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Show differences in files the tasks change.
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// Connection type to use (`local`, `ssh`).
    #[arg(short = 'c', long = "connection", value_name = "CONNECTION")]
    pub connection: Option<String>,
    /// Number of hosts to work on at once.
    #[arg(short = 'f', long = "forks", value_name = "FORKS")]
    pub forks: Option<usize>,
    /// Connect as this user.
    #[arg(short = 'u', long = "user", value_name = "REMOTE_USER")]
    pub user: Option<String>,
    /// Use this file to authenticate the SSH connection (tried before the hosts' own keys).
    #[arg(
        long = "private-key",
        visible_alias = "key-file",
        value_name = "PRIVATE_KEY_FILE"
    )]
    pub private_key: Option<PathBuf>,
    /// SSH connect timeout in seconds (default 10).
    #[arg(short = 'T', long = "timeout", value_name = "TIMEOUT")]
    pub timeout: Option<u64>,
    /// Run operations with become (sudo by default).
    #[arg(short = 'b', long = "become")]
    pub become_: bool,
    /// Become this user (default root).
    #[arg(long = "become-user", value_name = "USER")]
    pub become_user: Option<String>,
    /// Become method (sudo, su, doas).
    #[arg(long = "become-method", value_name = "METHOD")]
    pub become_method: Option<String>,
    /// Ask for the become (sudo) password on the terminal before running.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// List the hosts each play would run on, then stop.
    #[arg(long = "list-hosts")]
    pub list_hosts: bool,
    /// List the tasks each play would run, then stop.
    #[arg(long = "list-tasks")]
    pub list_tasks: bool,
    /// List every tag, then stop.
    #[arg(long = "list-tags")]
    pub list_tags: bool,
    /// Load and check the playbooks, then stop.
    #[arg(long = "syntax-check")]
    pub syntax_check: bool,
    /// Start at the task with this name (glob allowed).
    #[arg(long = "start-at-task", value_name = "NAME")]
    pub start_at_task: Option<String>,
    /// More output: -v shows every result, -vvv shows results indented.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Output format: `text` (Ansible's) or `json` (one event per line).
    #[arg(long = "output", value_name = "FORMAT", default_value = "text")]
    pub output: String,
    #[command(flatten)]
    pub vault: VaultKeys,
}

/// Where the vault's keys come from (a run and `play vault` take the same options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VaultKeys {
    /// An age identity file or SSH private key to decrypt the vault with (repeatable;
    /// also `PLAY_VAULT_IDENTITY` and play.toml's `vault_identity`).
    #[arg(long = "vault-identity", value_name = "FILE", global = true)]
    pub vault_identity: Vec<PathBuf>,
    /// A file whose first line is the vault passphrase (age scrypt).
    #[arg(
        long = "vault-password-file",
        visible_alias = "vault-pass-file",
        value_name = "FILE",
        global = true
    )]
    pub vault_password_file: Option<PathBuf>,
    /// Ask for the vault passphrase on the terminal.
    #[arg(
        long = "ask-vault-pass",
        visible_alias = "ask-vault-password",
        global = true
    )]
    pub ask_vault_pass: bool,
    /// A file whose first line is an Ansible Vault password, to read `$ANSIBLE_VAULT` files
    /// and values and to `play vault migrate` them (repeatable).
    #[arg(
        long = "ansible-vault-password-file",
        value_name = "FILE",
        global = true
    )]
    pub ansible_vault_password_file: Vec<PathBuf>,
}

impl VaultKeys {
    /// The vault these options (then `PLAY_VAULT_IDENTITY`, then play.toml) give, with the
    /// recipients of `.age-recipients` in `project_dir` and `recipients`.
    pub fn vault(
        &self,
        config_identities: Vec<PathBuf>,
        project_dir: &Path,
        recipients: &[String],
    ) -> Result<crate::vault::Vault, Diagnostic> {
        let mut files = self.vault_identity.clone();
        if files.is_empty() {
            files = crate::vault::env_identities();
        }
        if files.is_empty() {
            files = config_identities;
        }
        let keys = crate::vault::keys_from(
            &files,
            self.vault_password_file.as_deref(),
            self.ask_vault_pass,
        )?;
        let mut all_recipients = recipients.to_vec();
        let file = project_dir.join(".age-recipients");
        if all_recipients.is_empty() && file.is_file() {
            all_recipients = crate::vault::read_recipients_file(&file)?;
        }
        let mut ansible_passwords = Vec::new();
        for p in &self.ansible_vault_password_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Diagnostic::new(format!("cannot read {}: {e}", p.display()))
                    .exit_code(exit::BAD_OPTIONS)
            })?;
            ansible_passwords.push(text.lines().next().unwrap_or_default().to_string());
        }
        Ok(crate::vault::Vault {
            keys,
            recipients: all_recipients,
            ansible_passwords,
        })
    }
}

/// `play vault`: encrypt, decrypt, view and edit vaulted files; make keys.
#[derive(Debug, Parser)]
#[command(
    name = "play vault",
    about = "Keep secrets in the repository, encrypted with age"
)]
pub struct VaultCli {
    #[command(subcommand)]
    pub action: VaultAction,
    #[command(flatten)]
    pub keys: VaultKeys,
    /// Encrypt to this recipient (`age1...` or an SSH public key; repeatable). Default: the
    /// lines of `.age-recipients` in the current directory, else the keys given.
    #[arg(
        long = "recipient",
        short = 'r',
        global = true,
        value_name = "RECIPIENT"
    )]
    pub recipient: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum VaultAction {
    /// Encrypt files in place (ASCII-armored).
    Encrypt { files: Vec<PathBuf> },
    /// Decrypt files in place.
    Decrypt { files: Vec<PathBuf> },
    /// Print decrypted files.
    View { files: Vec<PathBuf> },
    /// Decrypt into a private temp file, run $EDITOR, re-encrypt.
    Edit { file: PathBuf },
    /// Re-encrypt files to the current recipients.
    Rekey { files: Vec<PathBuf> },
    /// Read a value on stdin and print `NAME: !vault |` with its ciphertext.
    EncryptString { name: String },
    /// Print a new age identity (the public key goes to stderr).
    Keygen,
    /// Convert Ansible Vault files and `!vault` values in these files to age, in place.
    Migrate { files: Vec<PathBuf> },
}

/// `play graph`: the role graph of playbooks, without running anything.
#[derive(Debug, Parser)]
#[command(
    name = "play graph",
    about = "Print the role graph of playbooks: every role each play uses, with its dependencies"
)]
pub struct GraphCli {
    /// Playbook files.
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub playbooks: Vec<PathBuf>,
    /// `tree` (indented, for reading), `dot` (Graphviz) or `json`.
    #[arg(long = "format", value_name = "FORMAT", default_value = "tree", value_parser = ["tree", "dot", "json"])]
    pub format: String,
    /// Extra variables (for role names that use them), as for a run.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
}

/// `play modules`: the modules and engine actions a task can call, with their arguments.
#[derive(Debug, Parser)]
#[command(
    name = "play modules",
    about = "List the modules and actions tasks can call, with the arguments each accepts"
)]
pub struct ModulesCli {
    /// Show only this module (any name it answers to, e.g. `ansible.posix.sysctl`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// `text` (for reading) or `markdown` (the table README.md carries).
    #[arg(long = "format", value_name = "FORMAT", default_value = "text", value_parser = ["text", "markdown"])]
    pub format: String,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `play PLAYBOOK...`: run (or list, or check) playbooks.
    Run(Box<Cli>),
    /// `play graph PLAYBOOK...`.
    Graph(GraphCli),
    /// `play vault ACTION ...`.
    Vault(VaultCli),
    /// `play modules [NAME]`.
    Modules(ModulesCli),
}

impl Command {
    /// The subcommand is chosen by the first argument, so that `play PLAYBOOK...` keeps
    /// `ansible-playbook`'s spelling: `graph` selects `play graph`; anything else is a run.
    pub fn parse<I, T>(args: I) -> Result<Command, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        match args.get(1).and_then(|a| a.to_str()) {
            Some("graph") => {
                let mut rest = vec![OsString::from("play graph")];
                rest.extend(args.iter().skip(2).cloned());
                GraphCli::try_parse_from(rest).map(Command::Graph)
            }
            Some("vault") => {
                let mut rest = vec![OsString::from("play vault")];
                rest.extend(args.iter().skip(2).cloned());
                VaultCli::try_parse_from(rest).map(Command::Vault)
            }
            Some("modules") => {
                let mut rest = vec![OsString::from("play modules")];
                rest.extend(args.iter().skip(2).cloned());
                ModulesCli::try_parse_from(rest).map(Command::Modules)
            }
            _ => Cli::try_parse_from(args).map(|c| Command::Run(Box::new(c))),
        }
    }
}

/// Defaults from `play.toml` (beside the first playbook, or `$PLAY_CONFIG`).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub inventory: Option<StringOrList>,
    pub roles_path: Option<StringOrList>,
    pub forks: Option<usize>,
    pub host_key_checking: Option<toml::Value>,
    /// SSH connect timeout in seconds.
    pub timeout: Option<u64>,
    /// A private key tried for every SSH host.
    pub private_key_file: Option<String>,
    /// Vault identity files (relative to play.toml).
    pub vault_identity: Option<StringOrList>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn items(&self) -> Vec<String> {
        match self {
            StringOrList::One(s) => s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            StringOrList::Many(v) => v.clone(),
        }
    }
}

/// The settings that win: command line, then `ANSIBLE_*`, then `play.toml`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub inventory: Vec<PathBuf>,
    pub forks: usize,
    pub roles_path: Vec<PathBuf>,
    pub host_key_checking: Option<String>,
    /// SSH connect timeout: `-T`, `ANSIBLE_TIMEOUT`, play.toml `timeout`.
    pub timeout: Option<u64>,
    /// `--private-key`, `ANSIBLE_PRIVATE_KEY_FILE`, play.toml `private_key_file`.
    pub private_key: Option<PathBuf>,
    /// The directory of the play.toml in use (the project, whose `roles/` is searched).
    pub project_dir: Option<PathBuf>,
    /// play.toml's `vault_identity` files.
    pub vault_identity: Vec<PathBuf>,
}

/// The play.toml in use (beside the first playbook, or `$PLAY_CONFIG`) and its directory;
/// the defaults when there is none.
pub fn load_config(first_playbook: &Path) -> Result<(Config, PathBuf), Diagnostic> {
    load_config_found(first_playbook).map(|(c, base, _)| (c, base))
}

fn load_config_found(first_playbook: &Path) -> Result<(Config, PathBuf, bool), Diagnostic> {
    let (path, explicit) = match std::env::var_os("PLAY_CONFIG") {
        Some(p) => (PathBuf::from(p), true),
        None => (
            first_playbook
                .parent()
                .unwrap_or(Path::new("."))
                .join("play.toml"),
            false,
        ),
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if !path.is_file() {
        if explicit {
            return Err(Diagnostic::new(format!(
                "PLAY_CONFIG names {}, which does not exist",
                path.display()
            ))
            .exit_code(exit::BAD_OPTIONS));
        }
        return Ok((Config::default(), base, false));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Diagnostic::new(format!("cannot read {}: {e}", path.display())).exit_code(exit::BAD_OPTIONS)
    })?;
    let config: Config = toml::from_str(&text).map_err(|e| {
        Diagnostic::new(format!("{}: {}", path.display(), e.message())).exit_code(exit::BAD_OPTIONS)
    })?;
    Ok((config, base, true))
}

pub fn settings(cli: &Cli) -> Result<Settings, Diagnostic> {
    let first = cli.playbooks.first().cloned().unwrap_or_default();
    settings_for(
        &first,
        &cli.inventory,
        cli.forks,
        cli.timeout,
        cli.private_key.clone(),
    )
}

/// The settings for playbooks whose first is `first`, with what the command line gave.
pub fn settings_for(
    first: &Path,
    cli_inventory: &[String],
    cli_forks: Option<usize>,
    cli_timeout: Option<u64>,
    cli_private_key: Option<PathBuf>,
) -> Result<Settings, Diagnostic> {
    let (config, base, found) = load_config_found(first)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let rel = |p: String| -> PathBuf {
        let pb = PathBuf::from(&p);
        if pb.is_absolute() || p.contains(',') {
            pb
        } else {
            base.join(pb)
        }
    };
    let inventory = if !cli_inventory.is_empty() {
        cli_inventory.iter().map(PathBuf::from).collect()
    } else if let Some(v) = env("ANSIBLE_INVENTORY") {
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect()
    } else {
        config
            .inventory
            .as_ref()
            .map(|i| i.items().into_iter().map(rel).collect())
            .unwrap_or_default()
    };
    let forks = match cli_forks {
        Some(f) => f,
        None => match env("ANSIBLE_FORKS") {
            Some(v) => v.parse().map_err(|_| {
                Diagnostic::new(format!("ANSIBLE_FORKS={v} is not a number"))
                    .exit_code(exit::BAD_OPTIONS)
            })?,
            None => config.forks.unwrap_or(0),
        },
    };
    let roles_path = env("PLAY_ROLES_PATH")
        .or_else(|| env("ANSIBLE_ROLES_PATH"))
        .map(|v| v.split(':').map(PathBuf::from).collect())
        .or_else(|| {
            config
                .roles_path
                .as_ref()
                .map(|r| r.items().into_iter().map(rel).collect())
        })
        .unwrap_or_default();
    let host_key_checking = env("ANSIBLE_HOST_KEY_CHECKING").or_else(|| {
        config.host_key_checking.as_ref().map(|v| match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    });
    let timeout = match cli_timeout {
        Some(t) => Some(t),
        None => match env("ANSIBLE_TIMEOUT") {
            Some(v) => Some(v.parse().map_err(|_| {
                Diagnostic::new(format!("ANSIBLE_TIMEOUT={v} is not a number of seconds"))
                    .exit_code(exit::BAD_OPTIONS)
            })?),
            None => config.timeout,
        },
    };
    let private_key = cli_private_key
        .or_else(|| env("ANSIBLE_PRIVATE_KEY_FILE").map(PathBuf::from))
        .or_else(|| config.private_key_file.clone().map(rel));
    Ok(Settings {
        inventory,
        forks,
        roles_path,
        host_key_checking,
        timeout,
        private_key,
        vault_identity: config
            .vault_identity
            .as_ref()
            .map(|r| r.items().into_iter().map(rel).collect())
            .unwrap_or_default(),
        project_dir: found.then(|| base.clone()),
    })
}

/// Parse every `-e`: later values win.
pub fn extra_vars(items: &[String], cwd: &Path) -> Result<Map<String, Value>, Diagnostic> {
    let mut out = Map::new();
    for item in items {
        let item = item.trim();
        let parsed = if let Some(file) = item.strip_prefix('@') {
            let path = cwd.join(file);
            crate::yaml::load_one(&path)
                .map_err(|d| d.exit_code(exit::BAD_OPTIONS))?
                .to_value()
        } else if item.starts_with('{') || item.starts_with('[') {
            let docs = crate::yaml::load_str(item, Path::new("<extra vars>"))
                .map_err(|d| d.exit_code(exit::BAD_OPTIONS))?;
            docs.first().map(|d| d.to_value()).unwrap_or(Value::Null)
        } else {
            Value::Object(crate::playbook::kv::parse_kv(item, false))
        };
        match parsed {
            Value::Object(m) => {
                if m.contains_key("_raw_params") {
                    return Err(Diagnostic::new(format!("invalid extra vars '{item}': expected key=value, @file or a JSON/YAML mapping")).exit_code(exit::BAD_OPTIONS));
                }
                out.extend(m)
            }
            Value::Null => {}
            _ => {
                return Err(
                    Diagnostic::new(format!("extra vars '{item}' must be a mapping"))
                        .exit_code(exit::BAD_OPTIONS),
                )
            }
        }
    }
    Ok(out)
}

/// `-t a,b -t c` as one list.
pub fn split_tags(items: &[String]) -> Vec<String> {
    items
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_is_a_subcommand_and_playbooks_still_run() {
        match Command::parse(["play", "graph", "site.yml", "--format", "dot"]) {
            Ok(Command::Graph(g)) => {
                assert_eq!(g.playbooks, vec![PathBuf::from("site.yml")]);
                assert_eq!(g.format, "dot");
            }
            other => panic!("not graph: {other:?}"),
        }
        match Command::parse(["play", "-i", "hosts", "site.yml", "graph.yml"]) {
            Ok(Command::Run(c)) => assert_eq!(c.playbooks.len(), 2),
            other => panic!("not a run: {other:?}"),
        }
        assert!(Command::parse(["play", "graph", "x.yml", "--format", "svg"]).is_err());
    }

    #[test]
    fn extra_vars_in_all_three_forms() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("v.yml"), "b: 2\nc: yes\n").expect("write");
        let m = extra_vars(
            &["a=1 b=x".into(), "@v.yml".into(), r#"{"d": [1]}"#.into()],
            dir.path(),
        )
        .expect("parses");
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"a": "1", "b": 2, "c": true, "d": [1]})
        );
        let e = extra_vars(&["oops".into()], dir.path()).expect_err("refused");
        assert_eq!(e.code, exit::BAD_OPTIONS);
    }
}
