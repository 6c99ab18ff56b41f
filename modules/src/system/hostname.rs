//! The `hostname` module: the host's name, now (the kernel's, "transient") and at boot (the
//! permanent one), as Ansible's `hostname.py` sets them.
//!
//! Strategies (`use`): `systemd`, also for `debian` as in Ansible, and by default on a host
//! systemd runs: `hostnamectl --static`/`--transient` read and set both names. `generic`,
//! the default elsewhere: `/etc/hostname` and the `hostname` command (or
//! `/proc/sys/kernel/hostname` without it). `alpine`: `/etc/hostname`, then
//! `hostname -F /etc/hostname`. One exec reads both names and what Python's
//! `socket.getfqdn()` would answer (see `FQDN`); one more sets what differs and reads the
//! FQDN again.
//!
//! Result as Ansible: `name`, `ansible_facts` (`ansible_hostname`, `ansible_nodename`,
//! `ansible_fqdn`, `ansible_domain`), and when changed a diff `hostname = OLD` /
//! `hostname = NEW`.
//!
//! Deviations, on purpose:
//! - Without systemd, Ansible picks a strategy per distribution (Debian's only writes
//!   `/etc/hostname`); here it is `generic`, which also sets the running name.
//! - `alpine` runs `hostname -F` after writing the file (Ansible runs it before, with the old
//!   name, so the running name lags one run behind).
//! - `freebsd`, `macos`, `openbsd`, `openrc`, `redhat`, `sles` and `solaris` are refused.

use serde::Deserialize;

use crate::files::common::{Records, PRELUDE};
use crate::services::systemd::CAPTURE;
use crate::{args, tools, Cmd, Ctx, FileDiff, Map, Module, ModuleError, Outcome, Script, Value};

/// `hostname`.
pub struct Hostname;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Use {
    Alpine,
    Debian,
    Freebsd,
    Generic,
    Macos,
    Macosx,
    Darwin,
    Openbsd,
    Openrc,
    Redhat,
    Sles,
    Solaris,
    Systemd,
}

#[derive(Debug, Deserialize)]
struct HostnameArgs {
    name: String,
    #[serde(rename = "use")]
    use_: Option<Use>,
}

/// How the names are read and set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Systemd,
    Generic,
    Alpine,
}

impl Strategy {
    fn from_word(word: &str) -> Option<Strategy> {
        match word {
            "systemd" => Some(Strategy::Systemd),
            "generic" => Some(Strategy::Generic),
            "alpine" => Some(Strategy::Alpine),
            _ => None,
        }
    }
}

/// `__fqdn`: records `fqdn`, what Python's `socket.getfqdn()` answers for the node name: its
/// address (`getaddrinfo`, as `getent ahosts`), that address's names (`gethostbyaddr`, as
/// `getent hosts ADDR`), the first of them with a dot, else the first; the node name when
/// either lookup finds nothing.
const FQDN: &str = r#"__fqdn() {
  __n=$(uname -n)
  if command -v getent >/dev/null 2>&1 && __a=$(getent ahosts "$__n" 2>/dev/null) && [ -n "$__a" ]; then
    __a=${__a%%[ 	]*}
    if __l=$(getent hosts "$__a" 2>/dev/null) && [ -n "$__l" ]; then
      __l=${__l%%"$__nl"*}; set -f; set -- $__l; set +f
      if [ $# -ge 2 ]; then shift; __n=$1; for __w do case $__w in *.*) __n=$__w; break;; esac; done; fi
    fi
  fi
  __kv fqdn "$__n"
}
"#;

/// Picks the strategy in `$s` (`auto`: systemd's when systemd runs the host).
const PICK: &str = r#"if [ "$s" = auto ]; then
  s=generic
  for __d in /run/systemd/system/ /dev/.run/systemd/ /dev/.systemd/; do if [ -d "$__d" ]; then s=systemd; break; fi; done
fi
__kv strategy "$s"
if [ "$s" = systemd ]; then
"#;

/// Reads both names, after [`PICK`] and the `hostnamectl` guard.
const READ: &str = r#"  __cap cur hostnamectl --transient status
  __cap perm hostnamectl --static status
else
  if [ -f /etc/hostname ]; then __kvc perm cat /etc/hostname; else __kv perm ''; fi
  __kv cur "$(uname -n)"
fi
__fqdn
"#;

/// The names as read, and what the strategy makes of them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Names {
    strategy: Strategy,
    current: String,
    permanent: String,
}

/// Ansible's failure for a command that did not work.
fn command_failed(r: &Records, key: &str) -> Option<String> {
    let rc: i32 = r.get(&format!("{key}.rc"))?.trim().parse().ok()?;
    (rc != 0).then(|| {
        format!(
            "Command failed rc={rc}, out={}, err={}",
            r.get(key).unwrap_or_default(),
            r.get(&format!("{key}.err")).unwrap_or_default()
        )
    })
}

fn read_names(r: &Records) -> Result<Names, String> {
    let strategy = r
        .get("strategy")
        .and_then(Strategy::from_word)
        .ok_or("hostname: the probe did not run")?;
    if strategy == Strategy::Systemd {
        for key in ["cur", "perm"] {
            if let Some(msg) = command_failed(r, key) {
                return Err(msg);
            }
        }
    }
    let permanent = r.get("perm").unwrap_or_default().trim().to_string();
    // Ansible's file strategies read the running name from the file too.
    let current = match strategy {
        Strategy::Alpine => permanent.clone(),
        _ => r.get("cur").unwrap_or_default().trim().to_string(),
    };
    Ok(Names {
        strategy,
        current,
        permanent,
    })
}

/// The commands that make both names `name`, in Ansible's order; empty when nothing differs.
fn change_script(names: &Names, name: &str) -> Option<Script> {
    let current = names.current != name;
    let permanent = names.permanent != name;
    if !current && !permanent {
        return None;
    }
    let mut s = Script::new().set("n", name).raw("\n");
    match names.strategy {
        Strategy::Systemd => {
            // The permanent name first, as Ansible (NetworkManager objects otherwise).
            if permanent {
                s = s.raw(
                    "__cap setperm hostnamectl --pretty --static set-hostname \"$n\" || exit 1\n",
                );
            }
            if current {
                s = s.raw("__cap setcur hostnamectl --transient set-hostname \"$n\" || exit 1\n");
            }
        }
        Strategy::Generic => {
            if current {
                s = s.raw(
                    "if command -v hostname >/dev/null 2>&1; then __cap setcur hostname \"$n\" || exit 1\n\
                     else __cap setcur sh -c 'printf %s \"$1\" >/proc/sys/kernel/hostname' sh \"$n\" || exit 1; fi\n",
                );
            }
            if permanent {
                s = s.raw("__cap setfile sh -c 'printf \"%s\\n\" \"$1\" >/etc/hostname' sh \"$n\" || exit 1\n");
            }
        }
        Strategy::Alpine => {
            s = s.raw(
                "__cap setfile sh -c 'printf \"%s\\n\" \"$1\" >/etc/hostname' sh \"$n\" || exit 1\n\
                 __cap setcur hostname -F /etc/hostname || exit 1\n",
            );
        }
    }
    Some(s.raw("__fqdn\n"))
}

/// The failure of a change step, in Ansible's words.
fn change_failure(r: &Records) -> Option<String> {
    for key in ["setperm", "setcur"] {
        if let Some(msg) = command_failed(r, key) {
            return Some(msg);
        }
    }
    let rc: i32 = r.get("setfile.rc")?.trim().parse().ok()?;
    (rc != 0).then(|| {
        format!(
            "failed to update hostname: {}",
            r.get("setfile.err").unwrap_or_default().trim()
        )
    })
}

/// Ansible's `ansible_facts` for the new name and the FQDN the host resolves.
fn facts(name: &str, fqdn: &str) -> Value {
    let domain = fqdn.split('.').skip(1).collect::<Vec<_>>().join(".");
    serde_json::json!({
        "ansible_hostname": name.split('.').next().unwrap_or(name),
        "ansible_nodename": name,
        "ansible_fqdn": fqdn,
        "ansible_domain": domain,
    })
}

impl Module for Hostname {
    fn name(&self) -> &'static str {
        "hostname"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<HostnameArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: HostnameArgs = args::parse("hostname", raw)?;
        let strategy = match a.use_ {
            None => "auto",
            Some(Use::Systemd | Use::Debian) => "systemd",
            Some(Use::Generic) => "generic",
            Some(Use::Alpine) => "alpine",
            Some(other) => {
                return Ok(Outcome::failed(format!(
                "hostname: use={} is not supported here (systemd, debian, generic and alpine are)",
                format!("{other:?}").to_ascii_lowercase()
            )))
            }
        };
        let name = a.name;
        let probe = Script::new()
            .raw(PRELUDE)
            .raw(CAPTURE)
            .raw(FQDN)
            .set("s", strategy)
            .raw("\n")
            .raw(PICK)
            .need("hostnamectl")
            .raw(READ);
        let out = ctx.host.exec(&Cmd::script(probe))?;
        tools::missing_tool(&out)?;
        let r = Records::parse(&out.stdout);
        let names = match read_names(&r) {
            Ok(n) => n,
            Err(msg) => return Ok(Outcome::failed(msg)),
        };
        if names.strategy == Strategy::Systemd && name.len() > 64 {
            return Ok(Outcome::failed(
                "name cannot be longer than 64 characters on systemd servers, try a shorter name",
            ));
        }
        let mut fqdn = r.get("fqdn").unwrap_or_default().to_string();
        let change = change_script(&names, &name);
        if let (Some(change), false) = (&change, ctx.check) {
            let script = Script::new()
                .raw(PRELUDE)
                .raw(CAPTURE)
                .raw(FQDN)
                .then(change.clone());
            let out = ctx.host.exec(&Cmd::script(script))?;
            let r = Records::parse(&out.stdout);
            if let Some(msg) = change_failure(&r) {
                return Ok(Outcome::failed(msg));
            }
            match r.get("fqdn") {
                Some(f) => fqdn = f.to_string(),
                None => {
                    return Ok(Outcome::failed(format!(
                        "hostname: the change script stopped (rc={}): {}",
                        out.status,
                        out.stderr_str().trim()
                    )))
                }
            }
        }
        let mut outcome = Outcome::changed(change.is_some())
            .with("name", name.as_str())
            .with("ansible_facts", facts(&name, &fqdn));
        if change.is_some() {
            let before = if name != names.current {
                &names.current
            } else {
                &names.permanent
            };
            outcome.diffs.push(FileDiff {
                before: format!("hostname = {before}\n"),
                after: format!("hostname = {name}\n"),
                ..FileDiff::default()
            });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::scripted::{records, ScriptedHost};

    fn probe(strategy: &str, cur: &str, perm: &str, fqdn: &str) -> Vec<u8> {
        records(&[
            ("strategy", strategy),
            ("cur.rc", "0"),
            ("cur", cur),
            ("cur.err", ""),
            ("perm.rc", "0"),
            ("perm", perm),
            ("perm.err", ""),
            ("fqdn", fqdn),
        ])
    }

    #[test]
    fn a_converged_host_costs_one_exec() {
        let mut host =
            ScriptedHost::new().reply(&probe("systemd", "web1", "web1", "web1.lan"), "", 0);
        let out = host
            .run(
                &Hostname,
                serde_json::json!({"name": "web1"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert!(!out.changed);
        assert_eq!(host.commands.len(), 1);
        assert_eq!(
            out.result["ansible_facts"],
            serde_json::json!({"ansible_hostname": "web1", "ansible_nodename": "web1",
                "ansible_fqdn": "web1.lan", "ansible_domain": "lan"})
        );
        assert!(out.diffs.is_empty());
    }

    #[test]
    fn systemd_sets_the_permanent_name_then_the_running_one() {
        let mut host = ScriptedHost::new()
            .reply(&probe("systemd", "old", "old", "old"), "", 0)
            .reply(
                &records(&[
                    ("setperm.rc", "0"),
                    ("setcur.rc", "0"),
                    ("fqdn", "new.example.com"),
                ]),
                "",
                0,
            );
        let out = host
            .run(
                &Hostname,
                serde_json::json!({"name": "new.example.com"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert!(out.changed);
        let script = &host.commands[1];
        let perm = script.find("--static set-hostname").expect("permanent");
        let cur = script.find("--transient set-hostname").expect("transient");
        assert!(perm < cur, "{script}");
        assert!(script.contains("n=new.example.com"), "{script}");
        assert_eq!(out.diffs[0].before, "hostname = old\n");
        assert_eq!(out.diffs[0].after, "hostname = new.example.com\n");
        assert_eq!(out.result["ansible_facts"]["ansible_hostname"], "new");
        assert_eq!(out.result["ansible_facts"]["ansible_domain"], "example.com");
    }

    #[test]
    fn check_mode_only_reads() {
        let mut host = ScriptedHost::new().reply(&probe("generic", "old", "", "old"), "", 0);
        let out = host
            .run(
                &Hostname,
                serde_json::json!({"name": "it's $(new)"}),
                true,
                &Map::new(),
            )
            .expect("runs");
        assert!(out.changed);
        assert_eq!(host.commands.len(), 1);
        assert_eq!(out.diffs[0].before, "hostname = old\n");
    }

    #[test]
    fn hostnamectl_failures_use_ansibles_words() {
        let mut host = ScriptedHost::new().reply(
            &records(&[
                ("strategy", "systemd"),
                ("cur.rc", "1"),
                ("cur", ""),
                ("cur.err", "Failed to connect to bus"),
            ]),
            "",
            0,
        );
        let out = host
            .run(
                &Hostname,
                serde_json::json!({"name": "x"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert_eq!(
            out.msg.as_deref(),
            Some("Command failed rc=1, out=, err=Failed to connect to bus")
        );
    }

    #[test]
    fn unsupported_strategies_are_refused() {
        let mut host = ScriptedHost::new();
        let out = host
            .run(
                &Hostname,
                serde_json::json!({"name": "x", "use": "freebsd"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert!(out.failed);
        let err = host
            .run(
                &Hostname,
                serde_json::json!({"name": "x", "use": "nope"}),
                false,
                &Map::new(),
            )
            .expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("value of use must be one of: alpine, debian"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod local_tests {
    use super::*;
    use crate::local::LocalHost;

    /// The probe script on this machine's shell, in check mode (it only reads).
    #[test]
    fn the_probe_reads_this_machine() {
        let current = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        let current = current.trim();
        let mut host = LocalHost::new("localhost");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: true,
            diff: true,
            facts: &facts,
        };
        let args = serde_json::json!({"name": current, "use": "generic"});
        let Value::Object(args) = args else { panic!() };
        let out = Hostname.run(&mut ctx, &args).expect("runs");
        assert!(!out.failed, "{out:?}");
        assert_eq!(out.result["ansible_facts"]["ansible_nodename"], current);
        assert!(
            out.result["ansible_facts"]["ansible_fqdn"]
                .as_str()
                .is_some_and(|f| !f.is_empty()),
            "{out:?}"
        );
    }
}
