//! How a host is reached over SSH: [`ConnectOptions`] gathered from Ansible's host variables,
//! the ssh arguments in them, and ssh_config files, with OpenSSH's precedence.
//!
//! Ansible runs OpenSSH as `ssh [StrictHostKeyChecking=no] -o Port -o IdentityFile -o User
//! -o ConnectTimeout <ssh_args> <common_args> <extra_args> host`, and OpenSSH keeps the first
//! value it sees for an option, command line before config file. [`SshOptions::apply`] is
//! fed in exactly that order, so the same inventory means the same connection here.
//!
//! Options play understands are listed in [`SshOptions::apply`]; options that change nothing
//! for a non-interactive session without a terminal (`ControlMaster`, `BatchMode`,
//! `ForwardX11`, ...) are accepted and ignored; anything else is an error that names it,
//! because an option silently ignored (a `ProxyCommand`, say) would connect somewhere else.

mod host_keys;
mod jump;
pub mod ssh;
pub mod ssh_config;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use ssh::SshHost;
use ssh_config::{expand_home, split_line, SshConfig};

/// What to do with a host key that no known_hosts file has (a *changed* key is always refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyChecking {
    /// Refuse unknown hosts (OpenSSH's `yes`, and `ask`, which cannot ask here).
    Strict,
    /// Trust an unknown host's key and append it to the first user known_hosts file.
    AcceptNew,
    /// Connect to unknown hosts without recording their key.
    Off,
}

impl HostKeyChecking {
    /// `StrictHostKeyChecking` values and Ansible's `host_key_checking` booleans.
    pub fn parse(value: &str) -> Option<HostKeyChecking> {
        match value.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" | "ask" | "strict" => Some(HostKeyChecking::Strict),
            "accept-new" | "accept_new" => Some(HostKeyChecking::AcceptNew),
            "no" | "false" | "off" | "0" => Some(HostKeyChecking::Off),
            _ => None,
        }
    }

    fn as_ssh_value(self) -> &'static str {
        match self {
            HostKeyChecking::Strict => "yes",
            HostKeyChecking::AcceptNew => "accept-new",
            HostKeyChecking::Off => "no",
        }
    }
}

/// A password: shown as `********` by `Debug`, so it never reaches output or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// OpenSSH's `ServerAliveInterval`/`ServerAliveCountMax`: after `count_max` intervals without
/// a word from the server, the connection is taken for dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    pub count_max: u32,
}

impl Keepalive {
    /// The interval libssh2 really keeps (it takes 1 s as 2 s, against busy loops).
    pub fn effective_interval(&self) -> Duration {
        self.interval.max(Duration::from_secs(2))
    }

    /// Silence after which the server is given up: OpenSSH disconnects when it would send the
    /// (count_max + 1)th keepalive without an answer to the earlier ones.
    pub fn dead_after(&self) -> Duration {
        self.effective_interval()
            .saturating_mul(self.count_max.saturating_add(1))
    }
}

/// IPv4, IPv6 or either (`AddressFamily`, `-4`, `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    #[default]
    Any,
    Inet,
    Inet6,
}

/// Everything needed to open one SSH session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The inventory name, for messages.
    pub name: String,
    /// Address or DNS name to connect to (after `HostName`).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private keys to try, in order (`-i`, `IdentityFile`, then OpenSSH's default names).
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: don't offer the agent's keys.
    pub identities_only: bool,
    pub password: Option<Secret>,
    /// User known_hosts files; `accept-new` appends to the first.
    pub known_hosts_files: Vec<PathBuf>,
    /// System known_hosts files, read only.
    pub global_known_hosts_files: Vec<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    pub connect_timeout: Duration,
    /// How long one command may run before the host is given up as unreachable; none by default.
    pub command_timeout: Option<Duration>,
    pub keepalive: Option<Keepalive>,
    pub compression: bool,
    pub address_family: AddressFamily,
    /// The jump host this one is reached through (`ProxyJump`): `a,b` makes the target's
    /// `via` b, and b's `via` a, as `ssh -J a,b` does.
    pub via: Option<Box<ConnectOptions>>,
}

impl ConnectOptions {
    /// `user@host:port`, for messages.
    pub fn target(&self) -> String {
        format!("{}@{}", self.user, self.address())
    }

    /// `host:port` (`[v6]:port`).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Settings from play's command line and play.toml rather than from the host.
#[derive(Debug, Clone, Default)]
pub struct ControllerSettings {
    /// `-u`: wins over `ansible_user`.
    pub remote_user: Option<String>,
    /// `--private-key`: tried before the host's own key files.
    pub private_key: Option<PathBuf>,
    /// `-T`: the connect timeout in seconds, over `ansible_timeout`.
    pub timeout: Option<u64>,
    /// `host_key_checking` from play.toml / `ANSIBLE_HOST_KEY_CHECKING` / the CLI.
    pub host_key_checking: Option<HostKeyChecking>,
    /// The controller user's home (`~` in paths, `~/.ssh/config`).
    pub home: PathBuf,
    /// The controller user's name: the remote user when nothing else names one.
    pub local_user: String,
}

/// Ansible's default connect timeout (`timeout` in ansible.cfg).
const DEFAULT_CONNECT_TIMEOUT: u64 = 10;
/// How many `ProxyJump` hops from ssh_config are followed before a loop is assumed.
const MAX_JUMP_DEPTH: usize = 8;

impl ConnectOptions {
    /// Options for `inventory_name`, whose (templated) variables `var` returns.
    pub fn from_vars(
        inventory_name: &str,
        var: &dyn Fn(&str) -> Option<String>,
        settings: &ControllerSettings,
    ) -> Result<ConnectOptions, String> {
        let first = |names: &[&str]| names.iter().find_map(|n| var(n).filter(|v| !v.is_empty()));
        let destination = first(&["ansible_host", "ansible_ssh_host"])
            .unwrap_or_else(|| inventory_name.to_string());
        let mut options = SshOptions::default();

        // Ansible puts StrictHostKeyChecking first when it turns checking off; play's
        // accept-new goes in the same place.
        let checking = match first(&["ansible_host_key_checking", "ansible_ssh_host_key_checking"])
        {
            Some(value) => Some(HostKeyChecking::parse(&value).ok_or_else(|| {
                format!("ansible_host_key_checking: '{value}' is not yes, no or accept-new")
            })?),
            None => settings.host_key_checking,
        };
        if let Some(mode @ (HostKeyChecking::Off | HostKeyChecking::AcceptNew)) = checking {
            options.apply(
                "StrictHostKeyChecking",
                &[mode.as_ssh_value()],
                "host_key_checking",
            )?;
        }

        if let Some(user) = &settings.remote_user {
            options.apply("User", &[user], "-u")?;
        }
        if let Some(key) = &settings.private_key {
            options.apply(
                "IdentityFile",
                &[&key.display().to_string()],
                "--private-key",
            )?;
        }
        if let Some(timeout) = settings.timeout {
            options.apply("ConnectTimeout", &[&timeout.to_string()], "--timeout")?;
        }
        if let Some(port) = first(&["ansible_port", "ansible_ssh_port"]) {
            options.apply("Port", &[&port], "ansible_port")?;
        }
        for name in ["ansible_ssh_private_key_file", "ansible_private_key_file"] {
            if let Some(key) = first(&[name]) {
                options.apply("IdentityFile", &[&key], name)?;
            }
        }
        if let Some(user) = first(&["ansible_user", "ansible_ssh_user"]) {
            options.apply("User", &[&user], "ansible_user")?;
        }
        if let Some(timeout) = first(&["ansible_timeout", "ansible_ssh_timeout"]) {
            options.apply("ConnectTimeout", &[&timeout], "ansible_timeout")?;
        }

        let mut config_file: Option<String> = None;
        for name in [
            "ansible_ssh_args",
            "ansible_ssh_common_args",
            "ansible_ssh_extra_args",
        ] {
            if let Some(text) = first(&[name]) {
                let parsed = parse_ssh_args(&text, name)?;
                for (keyword, args) in &parsed.options {
                    options.apply(keyword, args, name)?;
                }
                if parsed.config_file.is_some() {
                    config_file = parsed.config_file;
                }
            }
        }

        let config = load_config(config_file.as_deref(), settings)?;
        if let Some(config) = &config {
            for line in config.lines_for(&destination)? {
                options.apply(&line.keyword, &line.args, &line.origin)?;
            }
        }

        let password = first(&[
            "ansible_password",
            "ansible_ssh_pass",
            "ansible_ssh_password",
        ])
        .filter(|_| options.password_authentication != Some(false))
        .map(Secret::new);
        let command_timeout = match first(&["ansible_command_timeout"]) {
            Some(value) => Some(Duration::from_secs(parse_number(
                &value,
                "ansible_command_timeout",
            )?))
            .filter(|d| !d.is_zero()),
            None => None,
        };
        let mut resolved = options.resolve(inventory_name, &destination, settings)?;
        resolved.password = password;
        resolved.command_timeout = command_timeout;
        resolved.via = match options.proxy_jump.as_deref() {
            Some(chain) => jump_chain(chain, config.as_ref(), checking, settings, 0)?,
            None => None,
        };
        Ok(resolved)
    }
}

/// The config file OpenSSH would read: `-F file` (`-F none`: none), else `~/.ssh/config`.
fn load_config(
    config_file: Option<&str>,
    settings: &ControllerSettings,
) -> Result<Option<SshConfig>, String> {
    match config_file {
        Some("none") => Ok(None),
        Some(path) => SshConfig::load(
            Path::new(&expand_home(path, &settings.home)),
            &settings.home,
        )
        .map(Some),
        None => {
            let default = settings.home.join(".ssh/config");
            if default.is_file() {
                SshConfig::load(&default, &settings.home).map(Some)
            } else {
                Ok(None)
            }
        }
    }
}

/// The hosts of a `ProxyJump` list, linked so that the last is the one reached directly
/// before the target. Each jump host gets only what the config file says about it (plus the
/// user and port of its `user@host:port`), as the `ssh -W` that OpenSSH starts for it would;
/// play's own host_key_checking setting applies to it too.
fn jump_chain(
    chain: &str,
    config: Option<&SshConfig>,
    checking: Option<HostKeyChecking>,
    settings: &ControllerSettings,
    depth: usize,
) -> Result<Option<Box<ConnectOptions>>, String> {
    if chain.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if depth > MAX_JUMP_DEPTH {
        return Err(format!(
            "ProxyJump: more than {MAX_JUMP_DEPTH} jump hosts (does a jump host's ProxyJump lead back to itself?)"
        ));
    }
    let mut via: Option<Box<ConnectOptions>> = None;
    let hops: Vec<&str> = chain.split(',').map(str::trim).collect();
    for (position, hop) in hops.iter().enumerate() {
        let (user, host, port) = parse_jump_spec(hop)?;
        let mut options = SshOptions::default();
        if let Some(mode @ (HostKeyChecking::Off | HostKeyChecking::AcceptNew)) = checking {
            options.apply(
                "StrictHostKeyChecking",
                &[mode.as_ssh_value()],
                "host_key_checking",
            )?;
        }
        if let Some(user) = &user {
            options.apply("User", &[user], "ProxyJump")?;
        }
        if let Some(port) = port {
            options.apply("Port", &[&port.to_string()], "ProxyJump")?;
        }
        if let Some(timeout) = settings.timeout {
            options.apply("ConnectTimeout", &[&timeout.to_string()], "--timeout")?;
        }
        if let Some(config) = config {
            for line in config.lines_for(&host)? {
                options.apply(&line.keyword, &line.args, &line.origin)?;
            }
        }
        let mut resolved = options.resolve(&host, &host, settings)?;
        resolved.via = if position == 0 {
            // The first hop is reached the way its own config says (usually directly).
            match options.proxy_jump.as_deref() {
                Some(own) => jump_chain(own, config, checking, settings, depth + 1)?,
                None => None,
            }
        } else {
            via.take()
        };
        via = Some(Box::new(resolved));
    }
    Ok(via)
}

/// `[user@]host[:port]` or `ssh://[user@]host[:port]`.
fn parse_jump_spec(spec: &str) -> Result<(Option<String>, String, Option<u16>), String> {
    let text = spec.strip_prefix("ssh://").unwrap_or(spec);
    let (user, hostport) = match text.rsplit_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, text),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("ProxyJump '{spec}': missing ']'"))?;
        let port = after.strip_prefix(':');
        (host.to_string(), port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("ProxyJump '{spec}': no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("ProxyJump '{spec}': bad port '{p}'"))?,
        ),
        None => None,
    };
    Ok((user, host, port))
}

/// The ssh arguments found in `ansible_ssh_common_args` and friends.
#[derive(Debug, Default, PartialEq, Eq)]
struct SshArgs {
    /// (keyword, arguments) in command-line order.
    options: Vec<(String, Vec<String>)>,
    /// `-F file`.
    config_file: Option<String>,
}

/// Splits ssh arguments as a shell would (Ansible uses shlex) and reads the options:
/// `-o Key=Value`, `-o 'Key Value'`, `-oKey=Value`, `-F`, `-i`, `-p`, `-l`, `-J`, `-C`, `-4`,
/// `-6`, and flags without effect here (`-q`, `-v`, `-T`, `-x`, `-a`, `-n`, `-N`).
fn parse_ssh_args(text: &str, origin: &str) -> Result<SshArgs, String> {
    let words =
        shlex::split(text).ok_or_else(|| format!("{origin}: unbalanced quotes in '{text}'"))?;
    let mut parsed = SshArgs::default();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let Some(flags) = word.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!(
                "{origin}: '{word}' is not an ssh option (only options such as -o Key=Value belong here)"
            ));
        };
        for (index, flag) in flags.char_indices() {
            let option_keyword = match flag {
                'o' => Some(""),
                'F' => Some("-F"),
                'i' => Some("IdentityFile"),
                'p' => Some("Port"),
                'l' => Some("User"),
                'J' => Some("ProxyJump"),
                _ => None,
            };
            if let Some(keyword) = option_keyword {
                // The value is the rest of this word (`-p22`) or the next word (`-p 22`).
                let attached = &flags[index + flag.len_utf8()..];
                let value = if attached.is_empty() {
                    words
                        .next()
                        .ok_or_else(|| format!("{origin}: -{flag} needs a value"))?
                } else {
                    attached.to_string()
                };
                match keyword {
                    "" => match split_line(&value)
                        .map_err(|e| format!("{origin}: -o {value}: {e}"))?
                    {
                        Some((keyword, args)) => parsed.options.push((keyword, args)),
                        None => return Err(format!("{origin}: -o needs Key=Value")),
                    },
                    "-F" => parsed.config_file = Some(value),
                    keyword => parsed.options.push((keyword.to_string(), vec![value])),
                }
                break;
            }
            match flag {
                'C' => parsed
                    .options
                    .push(("Compression".into(), vec!["yes".into()])),
                '4' => parsed
                    .options
                    .push(("AddressFamily".into(), vec!["inet".into()])),
                '6' => parsed
                    .options
                    .push(("AddressFamily".into(), vec!["inet6".into()])),
                // Quiet/verbose, no tty, no X11, no agent forwarding, stdin from /dev/null,
                // no command: play's sessions are like that anyway.
                'q' | 'v' | 'T' | 'x' | 'a' | 'n' | 'N' => {}
                other => {
                    return Err(format!(
                        "{origin}: ssh option '-{other}' is not supported by play's ssh connection"
                    ))
                }
            }
        }
    }
    Ok(parsed)
}

/// Options as OpenSSH collects them: the first value of each wins; `IdentityFile` adds up.
#[derive(Debug, Default)]
struct SshOptions {
    host_name: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity_files: Vec<String>,
    identities_only: Option<bool>,
    proxy_jump: Option<String>,
    user_known_hosts: Option<Vec<String>>,
    global_known_hosts: Option<Vec<String>>,
    strict: Option<HostKeyChecking>,
    connect_timeout: Option<u64>,
    alive_interval: Option<u64>,
    alive_count_max: Option<u32>,
    compression: Option<bool>,
    address_family: Option<AddressFamily>,
    password_authentication: Option<bool>,
}

/// Options that change nothing for play's sessions, accepted so that common settings
/// (`ControlPersist` in Ansible's ssh_args, `ForwardAgent` in a user's config) don't stop a run.
/// Each is here for a reason: connection sharing (one session per host already), terminal and
/// forwarding features (no terminal, no forwarding), client logging, algorithm preferences
/// (libssh2 negotiates among what it supports), auth methods play does not offer anyway.
const WITHOUT_EFFECT: &[&str] = &[
    "addkeystoagent",
    "batchmode",
    "canonicaldomains",
    "canonicalizefallbacklocal",
    "canonicalizehostname",
    "canonicalizemaxdots",
    "canonicalizepermittedcnames",
    "casignaturealgorithms",
    "checkhostip",
    "ciphers",
    "clearallforwardings",
    "connectionattempts",
    "controlmaster",
    "controlpath",
    "controlpersist",
    "dynamicforward",
    "enableescapecommandline",
    "enablesshkeysign",
    "escapechar",
    "exitonforwardfailure",
    "fingerprinthash",
    "forkafterauthentication",
    "forwardagent",
    "forwardx11",
    "forwardx11timeout",
    "forwardx11trusted",
    "gatewayports",
    "gssapiauthentication",
    "gssapidelegatecredentials",
    "hashknownhosts",
    "hostbasedacceptedalgorithms",
    "hostbasedauthentication",
    "hostkeyalgorithms",
    "ignoreunknown",
    "ipqos",
    "kbdinteractiveauthentication",
    "challengeresponseauthentication",
    "kexalgorithms",
    "localforward",
    "loglevel",
    "logverbose",
    "macs",
    "nohostauthenticationforlocalhost",
    "numberofpasswordprompts",
    "obscurekeystroketiming",
    "permitlocalcommand",
    "permitremoteopen",
    "preferredauthentications",
    "protocol",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "pubkeyauthentication",
    "remoteforward",
    "requesttty",
    "sendenv",
    "sessiontype",
    "stdinnull",
    "streamlocalbindmask",
    "streamlocalbindunlink",
    "tcpkeepalive",
    "tunnel",
    "tunneldevice",
    "updatehostkeys",
    "usekeychain",
    "verifyhostkeydns",
    "visualhostkey",
    "xauthlocation",
];

impl SshOptions {
    /// Takes one option unless an earlier source set it. Understood: `HostName`, `Port`,
    /// `User`, `IdentityFile`, `IdentitiesOnly`, `ProxyJump`, `UserKnownHostsFile`,
    /// `GlobalKnownHostsFile`, `StrictHostKeyChecking` (yes/ask/accept-new/no),
    /// `ConnectTimeout`, `ServerAliveInterval`, `ServerAliveCountMax`, `Compression`,
    /// `AddressFamily`, `PasswordAuthentication`; those in [`WITHOUT_EFFECT`] are ignored.
    fn apply(
        &mut self,
        keyword: &str,
        args: &[impl AsRef<str>],
        origin: &str,
    ) -> Result<(), String> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let lower = keyword.to_ascii_lowercase();
        let one = || -> Result<&str, String> {
            match args.as_slice() {
                [value] => Ok(value),
                [] => Err(format!("{origin}: {keyword} needs a value")),
                _ => Err(format!(
                    "{origin}: {keyword} takes one value, got {}",
                    args.join(" ")
                )),
            }
        };
        let yes_no = |value: &str| -> Result<bool, String> {
            match value.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(true),
                "no" | "false" => Ok(false),
                _ => Err(format!(
                    "{origin}: {keyword} must be yes or no, not '{value}'"
                )),
            }
        };
        match lower.as_str() {
            "hostname" => set(&mut self.host_name, one()?.to_string()),
            "port" => set(&mut self.port, parse_port(one()?, origin)?),
            "user" => set(&mut self.user, one()?.to_string()),
            "identityfile" => self.identity_files.push(one()?.to_string()),
            "identitiesonly" => set(&mut self.identities_only, yes_no(one()?)?),
            "proxyjump" => set(&mut self.proxy_jump, one()?.to_string()),
            "userknownhostsfile" => {
                let files = args.iter().map(|s| s.to_string()).collect();
                set(&mut self.user_known_hosts, files)
            }
            "globalknownhostsfile" => {
                let files = args.iter().map(|s| s.to_string()).collect();
                set(&mut self.global_known_hosts, files)
            }
            "stricthostkeychecking" => {
                let value = one()?;
                let mode = HostKeyChecking::parse(value).ok_or_else(|| {
                    format!("{origin}: StrictHostKeyChecking must be yes, ask, accept-new or no, not '{value}'")
                })?;
                set(&mut self.strict, mode)
            }
            "connecttimeout" => {
                let seconds = parse_number(one()?, &format!("{origin}: ConnectTimeout"))?;
                set(&mut self.connect_timeout, seconds)
            }
            "serveraliveinterval" => {
                let seconds = parse_number(one()?, &format!("{origin}: ServerAliveInterval"))?;
                set(&mut self.alive_interval, seconds)
            }
            "serveralivecountmax" => {
                let count = parse_number(one()?, &format!("{origin}: ServerAliveCountMax"))?;
                let count = u32::try_from(count)
                    .map_err(|_| format!("{origin}: ServerAliveCountMax is too large"))?;
                set(&mut self.alive_count_max, count)
            }
            "compression" => set(&mut self.compression, yes_no(one()?)?),
            "passwordauthentication" => set(&mut self.password_authentication, yes_no(one()?)?),
            "addressfamily" => {
                let family = match one()?.to_ascii_lowercase().as_str() {
                    "any" => AddressFamily::Any,
                    "inet" => AddressFamily::Inet,
                    "inet6" => AddressFamily::Inet6,
                    other => {
                        return Err(format!(
                            "{origin}: AddressFamily must be any, inet or inet6, not '{other}'"
                        ))
                    }
                };
                set(&mut self.address_family, family)
            }
            other if WITHOUT_EFFECT.contains(&other) => {}
            _ => {
                return Err(format!(
                    "{origin}: ssh option '{keyword}' is not supported by play's ssh connection"
                ))
            }
        }
        Ok(())
    }

    /// The final options, OpenSSH's defaults filling what nobody set.
    fn resolve(
        &self,
        name: &str,
        destination: &str,
        settings: &ControllerSettings,
    ) -> Result<ConnectOptions, String> {
        let home = &settings.home;
        let port = self.port.unwrap_or(22);
        let user = self
            .user
            .clone()
            .unwrap_or_else(|| settings.local_user.clone());
        let tokens = Tokens {
            home,
            local_user: &settings.local_user,
            original_host: destination,
            host: destination,
            port,
            user: &user,
        };
        let host = match &self.host_name {
            Some(h) => tokens.expand(h)?,
            None => destination.to_string(),
        };
        let tokens = Tokens {
            host: &host,
            ..tokens
        };
        let mut identity_files = Vec::new();
        for file in &self.identity_files {
            if !file.eq_ignore_ascii_case("none") {
                identity_files.push(PathBuf::from(tokens.expand(file)?));
            }
        }
        if self.identity_files.is_empty() {
            // OpenSSH's default key names, those that exist.
            for default in ["id_rsa", "id_ecdsa", "id_ed25519"] {
                let path = home.join(".ssh").join(default);
                if path.is_file() {
                    identity_files.push(path);
                }
            }
        }
        let files =
            |list: &Option<Vec<String>>, defaults: &[PathBuf]| -> Result<Vec<PathBuf>, String> {
                match list {
                    Some(list) => list
                        .iter()
                        .filter(|f| !f.eq_ignore_ascii_case("none"))
                        .map(|f| tokens.expand(f).map(PathBuf::from))
                        .collect(),
                    None => Ok(defaults.to_vec()),
                }
            };
        let known_hosts_files = files(
            &self.user_known_hosts,
            &[
                home.join(".ssh/known_hosts"),
                home.join(".ssh/known_hosts2"),
            ],
        )?;
        let global_known_hosts_files = files(
            &self.global_known_hosts,
            &[
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts2"),
            ],
        )?;
        let keepalive = match self.alive_interval {
            Some(seconds) if seconds > 0 => Some(Keepalive {
                interval: Duration::from_secs(seconds),
                count_max: self.alive_count_max.unwrap_or(3).max(1),
            }),
            _ => None,
        };
        Ok(ConnectOptions {
            name: name.to_string(),
            host,
            port,
            user,
            identity_files,
            identities_only: self.identities_only.unwrap_or(false),
            password: None,
            known_hosts_files,
            global_known_hosts_files,
            host_key_checking: self.strict.unwrap_or(HostKeyChecking::Strict),
            connect_timeout: Duration::from_secs(
                self.connect_timeout
                    .filter(|&s| s > 0)
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            ),
            command_timeout: None,
            keepalive,
            compression: self.compression.unwrap_or(false),
            address_family: self.address_family.unwrap_or_default(),
            via: None,
        })
    }
}

/// First value wins.
fn set<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn parse_port(text: &str, origin: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{origin}: '{text}' is not a port number")),
    }
}

fn parse_number(text: &str, what: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{what}: '{text}' is not a number of seconds"))
}

/// OpenSSH's `%` tokens and `~` in paths and host names.
struct Tokens<'a> {
    home: &'a Path,
    local_user: &'a str,
    original_host: &'a str,
    host: &'a str,
    port: u16,
    user: &'a str,
}

impl Tokens<'_> {
    fn expand(&self, text: &str) -> Result<String, String> {
        let text = expand_home(text, self.home);
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('d') => out.push_str(&self.home.display().to_string()),
                Some('h') => out.push_str(self.host),
                Some('n') => out.push_str(self.original_host),
                Some('p') => out.push_str(&self.port.to_string()),
                Some('r') => out.push_str(self.user),
                Some('u') => out.push_str(self.local_user),
                Some(other) => {
                    return Err(format!(
                        "'%{other}' in '{text}' is not supported by play's ssh connection (supported: %% %d %h %n %p %r %u)"
                    ))
                }
                None => return Err(format!("'{text}' ends with a lone '%'")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(home: &Path) -> ControllerSettings {
        ControllerSettings {
            home: home.to_path_buf(),
            local_user: "me".into(),
            ..ControllerSettings::default()
        }
    }

    fn options_for(
        vars: &[(&str, &str)],
        settings: &ControllerSettings,
    ) -> Result<ConnectOptions, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConnectOptions::from_vars("web1", &|name| vars.get(name).cloned(), settings)
    }

    #[test]
    fn defaults_are_openssh_defaults() {
        let home = tempfile::tempdir().expect("tempdir");
        let o = options_for(&[], &settings(home.path())).expect("options");
        assert_eq!(
            (o.host.as_str(), o.port, o.user.as_str()),
            ("web1", 22, "me")
        );
        assert_eq!(o.host_key_checking, HostKeyChecking::Strict);
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        assert_eq!(
            o.known_hosts_files,
            [
                home.path().join(".ssh/known_hosts"),
                home.path().join(".ssh/known_hosts2")
            ]
        );
        assert!(o.identity_files.is_empty() && o.via.is_none() && o.keepalive.is_none());
    }

    #[test]
    fn ansible_variables_beat_ssh_args_which_beat_the_config_file() {
        let home = tempfile::tempdir().expect("tempdir");
        let config = home.path().join("cfg");
        std::fs::write(
            &config,
            "Host 10.0.0.*\n  User cfguser\n  Port 2200\n  IdentityFile ~/cfgkey\n  \
             ServerAliveInterval 7\n  StrictHostKeyChecking no\n  ConnectTimeout 99\n",
        )
        .expect("write");
        let common = format!(
            "-F {} -o Port=2201 -o 'User argsuser' -oUserKnownHostsFile=/kh -i /argkey -o ConnectTimeout=5",
            config.display()
        );
        let o = options_for(
            &[
                ("ansible_host", "10.0.0.5"),
                ("ansible_port", "2222"),
                ("ansible_user", "deploy"),
                ("ansible_ssh_private_key_file", "/varkey"),
                ("ansible_ssh_common_args", &common),
            ],
            &settings(home.path()),
        )
        .expect("options");
        assert_eq!(
            (o.host.as_str(), o.port, o.user.as_str()),
            ("10.0.0.5", 2222, "deploy")
        );
        assert_eq!(
            o.identity_files,
            [
                PathBuf::from("/varkey"),
                PathBuf::from("/argkey"),
                home.path().join("cfgkey")
            ]
        );
        assert_eq!(o.known_hosts_files, [PathBuf::from("/kh")]);
        assert_eq!(o.host_key_checking, HostKeyChecking::Off);
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        assert_eq!(
            o.keepalive,
            Some(Keepalive {
                interval: Duration::from_secs(7),
                count_max: 3
            })
        );
    }

    #[test]
    fn dash_u_beats_ansible_user_and_host_key_checking_setting_comes_first() {
        let home = tempfile::tempdir().expect("tempdir");
        let mut s = settings(home.path());
        s.remote_user = Some("cli".into());
        s.host_key_checking = Some(HostKeyChecking::AcceptNew);
        let o = options_for(
            &[
                ("ansible_user", "inv"),
                ("ansible_ssh_extra_args", "-o StrictHostKeyChecking=yes"),
            ],
            &s,
        )
        .expect("options");
        assert_eq!(o.user, "cli");
        assert_eq!(o.host_key_checking, HostKeyChecking::AcceptNew);
        // A host's own variable beats the play-wide setting.
        let o = options_for(&[("ansible_host_key_checking", "false")], &s).expect("options");
        assert_eq!(o.host_key_checking, HostKeyChecking::Off);
    }

    #[test]
    fn unsupported_options_are_errors_that_name_them() {
        let home = tempfile::tempdir().expect("tempdir");
        let s = settings(home.path());
        let err = options_for(
            &[("ansible_ssh_common_args", "-o ProxyCommand='nc %h %p'")],
            &s,
        )
        .expect_err("refused");
        assert!(
            err.contains("ProxyCommand") && err.contains("ansible_ssh_common_args"),
            "{err}"
        );
        let err = options_for(&[("ansible_ssh_extra_args", "-R 80:localhost:80")], &s)
            .expect_err("refused");
        assert!(err.contains("'-R'"), "{err}");
        // Options without effect for play are fine.
        options_for(
            &[(
                "ansible_ssh_args",
                "-C -o ControlMaster=auto -o ControlPersist=60s -q",
            )],
            &s,
        )
        .expect("accepted");
    }

    #[test]
    fn passwords_never_show() {
        let home = tempfile::tempdir().expect("tempdir");
        let o = options_for(&[("ansible_password", "hunter2")], &settings(home.path()))
            .expect("options");
        assert_eq!(o.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!format!("{o:?}").contains("hunter2"));
    }

    #[test]
    fn proxy_jump_chains_link_backwards_and_use_the_config_for_jump_hosts() {
        let home = tempfile::tempdir().expect("tempdir");
        let ssh_dir = home.path().join(".ssh");
        std::fs::create_dir_all(&ssh_dir).expect("mkdir");
        std::fs::write(
            ssh_dir.join("config"),
            "Host bastion1\n  HostName 192.0.2.1\n  User jumper\n\
             Host *\n  IdentityFile ~/.ssh/fleet\n",
        )
        .expect("write");
        let o = options_for(
            &[(
                "ansible_ssh_common_args",
                "-J bastion1,ops@[2001:db8::2]:2022",
            )],
            &settings(home.path()),
        )
        .expect("options");
        let second = o.via.as_deref().expect("second hop");
        assert_eq!(
            (second.host.as_str(), second.port, second.user.as_str()),
            ("2001:db8::2", 2022, "ops")
        );
        let first = second.via.as_deref().expect("first hop");
        assert_eq!(
            (first.host.as_str(), first.port, first.user.as_str()),
            ("192.0.2.1", 22, "jumper")
        );
        assert_eq!(first.identity_files, [ssh_dir.join("fleet")]);
        assert!(first.via.is_none());
    }

    #[test]
    fn tokens_expand_in_paths() {
        let home = tempfile::tempdir().expect("tempdir");
        let o = options_for(
            &[
                ("ansible_host", "db.example"),
                ("ansible_user", "ops"),
                (
                    "ansible_ssh_common_args",
                    "-o UserKnownHostsFile=~/kh-%h-%p-%r -o 'IdentityFile %d/k_%u'",
                ),
            ],
            &settings(home.path()),
        )
        .expect("options");
        let home_text = home.path().display().to_string();
        assert_eq!(
            o.known_hosts_files,
            [PathBuf::from(format!("{home_text}/kh-db.example-22-ops"))]
        );
        assert_eq!(
            o.identity_files,
            [PathBuf::from(format!("{home_text}/k_me"))]
        );
    }
}
