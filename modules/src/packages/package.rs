//! The `package` module (`ansible.builtin.package`): the host's package manager module,
//! chosen by `use`, else by the `pkg_mgr` fact, else by looking at the target.
//!
//! As Ansible's action plugin does, every argument but `use` goes to the chosen module
//! unchanged (so `update_cache` reaches apt), and the result is that module's. Without
//! facts, one exec looks for the package manager programs Ansible's `pkg_mgr` fact knows,
//! and picks as that fact does (the last one found in Ansible's list, `apt` on Debian).
//! Only `apt` and `pacman` are implemented here: any other manager is an error naming it.

use super::apt::Apt;
use super::pacman::Pacman;
use crate::{Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `package`.
pub struct Package;

/// Programs and the `pkg_mgr` each means, in the order of Ansible's `PKG_MGRS` (the last
/// one present wins).
const MANAGERS: &[(&str, &str)] = &[
    ("/usr/bin/rpm-ostree", "atomic_container"),
    ("/usr/bin/yum", "dnf"),
    ("/usr/bin/dnf-3", "dnf"),
    ("/usr/bin/dnf5", "dnf5"),
    ("/usr/bin/apt-get", "apt"),
    ("/usr/bin/zypper", "zypper"),
    ("/usr/sbin/urpmi", "urpmi"),
    ("/usr/bin/pacman", "pacman"),
    ("/bin/opkg", "opkg"),
    ("/usr/pkg/bin/pkgin", "pkgin"),
    ("/opt/local/bin/pkgin", "pkgin"),
    ("/opt/tools/bin/pkgin", "pkgin"),
    ("/opt/local/bin/port", "macports"),
    ("/usr/local/bin/brew", "homebrew"),
    ("/opt/homebrew/bin/brew", "homebrew"),
    ("/sbin/apk", "apk"),
    ("/usr/sbin/pkg", "pkgng"),
    ("/usr/sbin/swlist", "swdepot"),
    ("/usr/bin/emerge", "portage"),
    ("/usr/sbin/pkgadd", "svr4pkg"),
    ("/usr/bin/pkg", "pkg5"),
    ("/usr/bin/xbps-install", "xbps"),
    ("/usr/local/sbin/pkg", "pkgng"),
    ("/usr/bin/swupd", "swupd"),
    ("/usr/sbin/sorcery", "sorcery"),
    ("/usr/bin/installp", "installp"),
];

/// Files that tell the distribution family where it decides the manager: Debian's is apt
/// whatever else is installed (a Debian host may carry pacman), Red Hat's is dnf.
const FAMILY_FILES: &[&str] = &["/etc/debian_version", "/etc/redhat-release"];

/// The `pkg_mgr` Ansible's fact would give for these existing paths.
fn pkg_mgr_from(existing: &[String]) -> Option<&'static str> {
    let has = |p: &str| existing.iter().any(|e| e == p);
    if has("/etc/debian_version") && has("/usr/bin/apt-get") {
        return Some("apt");
    }
    if has("/etc/redhat-release") && (has("/usr/bin/dnf") || has("/usr/bin/dnf-3")) {
        return Some("dnf");
    }
    MANAGERS
        .iter()
        .filter(|(path, _)| has(path))
        .map(|(_, mgr)| *mgr)
        .next_back()
}

/// The script that lists which of those paths exist.
fn probe_script() -> Script {
    let mut s = Script::new().raw("for p in");
    for (path, _) in MANAGERS {
        s = s.arg(path);
    }
    for path in FAMILY_FILES {
        s = s.arg(path);
    }
    s.arg("/usr/bin/dnf")
        .raw("; do [ -e \"$p\" ] && printf '%s\\n' \"$p\"; done; exit 0")
}

fn module_for(manager: &str) -> Result<&'static dyn Module, ModuleError> {
    match manager {
        "apt" => Ok(&Apt),
        "pacman" => Ok(&Pacman),
        other => Err(ModuleError::Failed(format!(
            "Could not find a matching action for the \"{other}\" package manager. \
             (play's package module drives apt and pacman.)"
        ))),
    }
}

/// `use`, and every argument apt or pacman takes (the chosen module checks its own).
fn arg_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = vec!["use"];
        names.extend(Apt.arg_names());
        names.extend(Pacman.arg_names());
        names.sort_unstable();
        names.dedup();
        names
    })
}

impl Module for Package {
    fn name(&self) -> &'static str {
        "package"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        arg_names()
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        for required in ["name", "state"] {
            if !args.contains_key(required) {
                return Err(ModuleError::Args(format!(
                    "missing required arguments: {required}"
                )));
            }
        }
        let mut passed = args.clone();
        let wanted = match passed.remove("use") {
            None | Some(Value::Null) => "auto".to_string(),
            Some(v) => crate::args::ansible_str(&v).ok_or_else(|| {
                ModuleError::Args(
                    "argument 'use' is of type dict and we were unable to convert to str".into(),
                )
            })?,
        };
        let manager = if wanted != "auto" {
            wanted
        } else if let Some(m) = ctx
            .facts
            .get("pkg_mgr")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty() && *m != "unknown")
        {
            m.to_string()
        } else {
            let out = ctx.host.exec(&Cmd::script(probe_script()))?;
            let existing: Vec<String> = out.stdout_str().lines().map(str::to_string).collect();
            match pkg_mgr_from(&existing) {
                Some(m) => m.to_string(),
                None => {
                    return Err(ModuleError::Failed(
                        "Could not detect which package manager to use. Try gathering facts \
                         or setting the \"use\" option."
                            .into(),
                    ))
                }
            }
        };
        module_for(&manager)?.run(ctx, &passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use serde_json::json;

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_manager_is_chosen_as_ansibles_fact_chooses_it() {
        assert_eq!(
            pkg_mgr_from(&paths(&[
                "/usr/bin/apt-get",
                "/usr/bin/pacman",
                "/etc/debian_version"
            ])),
            Some("apt")
        );
        assert_eq!(
            pkg_mgr_from(&paths(&["/usr/bin/apt-get", "/usr/bin/pacman"])),
            Some("pacman")
        );
        assert_eq!(pkg_mgr_from(&paths(&["/sbin/apk"])), Some("apk"));
        assert_eq!(pkg_mgr_from(&[]), None);
    }

    fn run(args: serde_json::Value, facts: serde_json::Value) -> Result<Outcome, ModuleError> {
        let (serde_json::Value::Object(a), serde_json::Value::Object(f)) = (args, facts) else {
            panic!("objects")
        };
        let mut host = LocalHost::new("localhost");
        let mut ctx = Ctx {
            host: &mut host,
            check: true,
            diff: false,
            facts: &f,
        };
        Package.run(&mut ctx, &a)
    }

    #[test]
    fn other_managers_and_missing_arguments_are_errors() {
        let err = run(
            json!({"name": "x", "state": "present"}),
            json!({"pkg_mgr": "dnf"}),
        )
        .expect_err("dnf");
        assert_eq!(
            err.to_string(),
            "Could not find a matching action for the \"dnf\" package manager. \
             (play's package module drives apt and pacman.)"
        );
        let err = run(
            json!({"name": "x", "state": "present", "use": "zypper"}),
            json!({"pkg_mgr": "apt"}),
        )
        .expect_err("zypper");
        assert!(err.to_string().contains("\"zypper\""), "{err}");
        let err = run(json!({"name": "x"}), json!({})).expect_err("state");
        assert_eq!(err.to_string(), "missing required arguments: state");
    }

    #[test]
    fn the_probe_lists_what_exists() {
        let mut host = LocalHost::new("localhost");
        let out = crate::Host::exec(&mut host, &Cmd::script(probe_script())).expect("runs");
        assert!(out.success());
        for line in out.stdout_str().lines() {
            assert!(std::path::Path::new(line).exists(), "{line}");
        }
    }
}
