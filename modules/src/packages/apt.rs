//! The `apt` module (`ansible.builtin.apt`): install, upgrade, remove and purge Debian
//! packages, refresh the package lists, install `.deb` files, with `dpkg-query`,
//! `apt-cache`, `apt-mark` and `apt-get` on the target (no python3-apt, no Python).
//!
//! A task with package names costs one exec when nothing is to be done: it refreshes the
//! lists if asked, then reads each package's dpkg status and version (`dpkg-query -W`),
//! where needed the candidate versions (`apt-cache policy`, for `latest`, version specs and
//! packages not installed) and the auto-installed marks (`apt-mark showauto`). The
//! controller decides with Ansible's rules (`package_status` in Ansible's apt.py: fnmatch
//! version patterns, `>=`, Debian version order) and a second exec runs `apt-get`
//! (`--simulate` in check mode, and before a real run when `--diff` asks what changes).
//! `deb`, `upgrade`, `autoremove`, `autoclean` and `build-dep` run in one exec, as in
//! Ansible they are decided by apt itself.
//!
//! Deviations from Ansible, on purpose:
//! - A requested package that is installed but marked automatically installed is marked
//!   manual (as Ansible does) and the task reports that as a change (Ansible does it
//!   silently, even in runs that report no change).
//! - `clean` does not run in check mode (Ansible runs `apt-get clean` even then).
//! - `deb` is installed with `apt-get install ./file.deb`, which resolves its dependencies
//!   in the same transaction (Ansible installs them with apt-get, then the file with dpkg).
//! - The diff lists packages before and after (`name version`, from `apt-get --simulate`),
//!   where Ansible shows apt-get's own text (`prepared`).
//! - A virtual package name that an installed package provides is handed to apt-get on
//!   every run (Ansible resolves a virtual package with exactly one provider to it), so it
//!   reports a change each time.

use std::cmp::Ordering;

use serde::Deserialize;

use super::{check_names, list_diff, put_text, Ran, Report, PRELUDE};
use crate::{args, tools, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `apt`.
pub struct Apt;

#[derive(Debug, Deserialize)]
struct AptArgs {
    #[serde(alias = "name", alias = "pkg")]
    package: Option<Vec<String>>,
    state: Option<State>,
    #[serde(alias = "update-cache")]
    update_cache: Option<bool>,
    update_cache_retries: Option<u32>,
    update_cache_retry_max_delay: Option<u32>,
    cache_valid_time: Option<i64>,
    #[serde(default)]
    purge: bool,
    deb: Option<String>,
    #[serde(alias = "default-release")]
    default_release: Option<String>,
    #[serde(alias = "install-recommends")]
    install_recommends: Option<bool>,
    #[serde(default)]
    force: bool,
    upgrade: Option<Value>,
    dpkg_options: Option<String>,
    #[serde(default)]
    autoremove: bool,
    #[serde(default)]
    autoclean: bool,
    #[serde(default)]
    fail_on_autoremove: bool,
    policy_rc_d: Option<i64>,
    #[serde(default)]
    only_upgrade: bool,
    /// Accepted: apt-get is what runs anyway (no aptitude).
    #[allow(dead_code)]
    force_apt_get: Option<bool>,
    #[serde(default)]
    clean: bool,
    #[serde(default, alias = "allow-unauthenticated")]
    allow_unauthenticated: bool,
    #[serde(
        default,
        alias = "allow-downgrade",
        alias = "allow_downgrades",
        alias = "allow-downgrades"
    )]
    allow_downgrade: bool,
    #[serde(default)]
    allow_change_held_packages: bool,
    lock_timeout: Option<i64>,
    /// Accepted: there is no python3-apt to install.
    #[allow(dead_code)]
    auto_install_module_deps: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum State {
    #[serde(rename = "absent")]
    Absent,
    #[serde(rename = "build-dep")]
    BuildDep,
    #[serde(rename = "latest")]
    Latest,
    #[serde(rename = "present")]
    Present,
    #[serde(rename = "fixed")]
    Fixed,
}

/// `upgrade`'s modes, apt-get's command for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// `yes`/`safe` (aptitude's safe-upgrade when Ansible finds aptitude).
    Safe,
    /// `full`/`dist`.
    Dist,
}

const APT_GET_ZERO: &str = "\n0 upgraded, 0 newly installed, 0 to remove";
const STAMP: &str = "/var/lib/apt/periodic/update-success-stamp";

/// A package spec split as Ansible's `package_split` does: `name`, `=`/`>=`, version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    name: String,
    cmp: Option<String>,
    version: Option<String>,
}

impl Spec {
    fn parse(spec: &str) -> Spec {
        let at = spec.find('=');
        match at {
            Some(i) if i > 0 && spec.as_bytes()[i - 1] == b'>' => Spec {
                name: spec[..i - 1].to_string(),
                cmp: Some(">=".into()),
                version: Some(spec[i + 1..].to_string()),
            },
            Some(i) => Spec {
                name: spec[..i].to_string(),
                cmp: Some("=".into()),
                version: Some(spec[i + 1..].to_string()),
            },
            None => Spec {
                name: spec.to_string(),
                cmp: None,
                version: None,
            },
        }
    }
    fn is_pattern(&self) -> bool {
        self.name.contains(['*', '?', '[', ']', '!'])
    }
    /// The fixed start of a name pattern, for `apt-cache pkgnames`.
    fn prefix(&self) -> &str {
        let end = self
            .name
            .find(['*', '?', '[', ']', '!'])
            .unwrap_or(self.name.len());
        &self.name[..end]
    }
    fn with_name(&self, name: &str) -> Spec {
        Spec {
            name: name.to_string(),
            ..self.clone()
        }
    }
}

/// Debian's version order (dpkg's `verrevcmp` on epoch, upstream version and revision).
pub(crate) fn deb_version_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) && !e.is_empty() => {
                (e.parse().unwrap_or(0), r)
            }
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((up, rev)) => (epoch, up, rev),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => i32::from(c),
            Some(c) => i32::from(c) + 256,
        }
    }
    fn verrevcmp(a: &str, b: &str) -> Ordering {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let mut first_diff = 0;
            while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit())
            {
                let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
                let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
                if ac != bc {
                    return ac.cmp(&bc);
                }
                i += 1;
                j += 1;
            }
            while i < a.len() && a[i] == b'0' {
                i += 1;
            }
            while j < b.len() && b[j] == b'0' {
                j += 1;
            }
            while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
                if first_diff == 0 {
                    first_diff = i32::from(a[i]) - i32::from(b[j]);
                }
                i += 1;
                j += 1;
            }
            if i < a.len() && a[i].is_ascii_digit() {
                return Ordering::Greater;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                return Ordering::Less;
            }
            if first_diff != 0 {
                return first_diff.cmp(&0);
            }
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

/// Python's `fnmatch.fnmatch` on a version (case-sensitive on POSIX).
fn fnmatch(text: &str, pattern: &str) -> bool {
    match globset::Glob::new(pattern) {
        Ok(g) => g.compile_matcher().is_match(text),
        Err(_) => text == pattern,
    }
}

/// What the target knows of one package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PkgState {
    /// dpkg's `${Status}`'s last word (`installed`, `config-files`, ...); `None`: unknown to dpkg.
    dpkg_state: Option<String>,
    installed_version: Option<String>,
    /// Listed by `apt-cache policy` at all (a virtual package is, with no versions).
    known: bool,
    candidate: Option<String>,
    versions: Vec<String>,
    auto: bool,
}

impl PkgState {
    fn installed(&self) -> bool {
        self.dpkg_state.as_deref() == Some("installed")
    }
    /// Files left on disk (a removed package's configuration): `purge` has work to do.
    fn has_files(&self) -> bool {
        matches!(self.dpkg_state.as_deref(), Some(s) if s != "not-installed")
    }
}

/// dpkg-query's `${Package}\t${Status}\t${Version}` lines.
fn parse_dpkg(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, status, version) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            let state = status.split_whitespace().last().unwrap_or("").to_string();
            Some((name.to_string(), state, version.to_string()))
        })
        .collect()
}

/// `apt-cache policy` blocks: name, candidate (`None` for `(none)`) and the version table.
fn parse_policy(text: &str) -> Vec<(String, Option<String>, Vec<String>)> {
    let mut out: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            if let Some(name) = line.strip_suffix(':') {
                out.push((name.to_string(), None, Vec::new()));
            }
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(c) = trimmed.strip_prefix("Candidate:") {
            let c = c.trim();
            cur.1 = (c != "(none)" && !c.is_empty()).then(|| c.to_string());
        } else if line.starts_with(" *** ") || indent == 5 {
            let t = trimmed.trim_start_matches("*** ");
            let words: Vec<&str> = t.split_whitespace().collect();
            if let [version, prio] = words.as_slice() {
                if prio.parse::<i64>().is_ok() {
                    cur.2.push(version.to_string());
                }
            }
        }
    }
    out
}

/// The decision for one package, as Ansible's `install()` makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Install {
    /// Nothing to do.
    Keep,
    /// Hand this to `apt-get install` (`name`, `name=version`).
    Install(String),
}

/// `package_status` and the choice in `install()` of Ansible's apt.py, for one spec.
fn decide_install(
    spec: &Spec,
    st: &PkgState,
    upgrade: bool,
    only_upgrade: bool,
) -> Result<Install, String> {
    let installed = st.installed();
    if !installed && !st.known {
        return Err(format!("No package matching '{}' is available", spec.name));
    }
    let cmp = spec.cmp.as_deref();
    let ver = spec.version.as_deref().unwrap_or("");
    // A virtual package: no versions of its own, apt picks a provider.
    let virtual_pkg = !installed && st.candidate.is_none() && st.versions.is_empty();
    let best: Option<String> = if cmp == Some("=") {
        st.versions
            .iter()
            .filter(|v| fnmatch(v, ver))
            .max_by(|a, b| deb_version_cmp(a, b))
            .cloned()
    } else {
        st.candidate.clone()
    };
    let (installed_version, installable): (bool, Option<String>) = if installed {
        let cur = st.installed_version.clone().unwrap_or_default();
        match cmp {
            Some("=") => (
                fnmatch(&cur, ver),
                best.filter(|b| *b != cur && fnmatch(b, ver)),
            ),
            Some(_) => (
                deb_version_cmp(&cur, ver) != Ordering::Less,
                best.filter(|b| *b != cur && deb_version_cmp(b, ver) != Ordering::Less),
            ),
            None => (true, best.filter(|b| *b != cur)),
        }
    } else {
        (false, best)
    };
    if !installed && only_upgrade {
        return Ok(Install::Keep);
    }
    if !installed_version && installable.is_none() && !virtual_pkg {
        let full = match (cmp, &spec.version) {
            (Some(c), Some(v)) => format!("{}{c}{v}", spec.name),
            _ => spec.name.clone(),
        };
        return Err(format!("no available installation candidate for {full}"));
    }
    let wanted = (!installed && !only_upgrade) || upgrade || !installed_version;
    if virtual_pkg && wanted {
        return Ok(Install::Install(match &spec.version {
            Some(v) => format!("{}={v}", spec.name),
            None => spec.name.clone(),
        }));
    }
    match installable {
        Some(v) if wanted => Ok(Install::Install(format!("{}={v}", spec.name))),
        Some(_) if installed_version && cmp == Some("=") => Ok(Install::Install(format!(
            "{}={}",
            spec.name,
            spec.version.clone().unwrap_or_default()
        ))),
        _ => Ok(Install::Keep),
    }
}

/// Whether `spec` is to be removed: installed in a matching version, or (with `purge`)
/// files are left.
fn decide_remove(spec: &Spec, st: &PkgState, purge: bool) -> bool {
    let version_ok = if !st.installed() {
        false
    } else {
        let cur = st.installed_version.as_deref().unwrap_or("");
        match (spec.cmp.as_deref(), spec.version.as_deref()) {
            (Some("="), Some(v)) => fnmatch(cur, v),
            (Some(_), Some(v)) => deb_version_cmp(cur, v) != Ordering::Less,
            _ => true,
        }
    };
    version_ok || (purge && st.has_files())
}

/// Everything decided from the arguments before anything runs.
#[derive(Debug, Clone)]
struct Plan {
    check: bool,
    state: State,
    specs: Vec<Spec>,
    deb: Vec<String>,
    upgrade: Option<Upgrade>,
    update: bool,
    cache_valid_time: i64,
    retries: u32,
    max_delay: u32,
    clean: bool,
    purge: bool,
    autoremove: bool,
    autoclean: bool,
    only_upgrade: bool,
    policy_rc_d: Option<i64>,
    /// Options every apt-get call gets: `-o Dpkg::Options::=--force-confdef`, ..., the lock timeout.
    dpkg: Vec<String>,
    force: bool,
    fail_on_autoremove: bool,
    default_release: Option<String>,
    install_recommends: Option<bool>,
    allow_unauthenticated: bool,
    allow_downgrade: bool,
    allow_change_held_packages: bool,
}

impl Plan {
    fn from_args(a: AptArgs, check: bool) -> Result<Plan, ModuleError> {
        let given = [a.deb.is_some(), a.package.is_some(), a.upgrade.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(ModuleError::Args(
                "parameters are mutually exclusive: deb|package|upgrade".into(),
            ));
        }
        let upgrade = match &a.upgrade {
            None | Some(Value::Null) => None,
            Some(v) => {
                let word = match v {
                    Value::Bool(true) => "yes".to_string(),
                    Value::Bool(false) => "no".to_string(),
                    other => args::ansible_str(other).unwrap_or_default(),
                };
                match word.as_str() {
                    "no" => None,
                    "yes" | "safe" => Some(Upgrade::Safe),
                    "dist" | "full" => Some(Upgrade::Dist),
                    _ => {
                        return Err(ModuleError::Args(format!(
                        "value of upgrade must be one of: dist, full, no, safe, yes, got: {word}"
                    )))
                    }
                }
            }
        };
        let raw: Vec<String> = a.package.unwrap_or_default();
        check_names(&raw)?;
        let state = a.state.unwrap_or(State::Present);
        let all_installed = raw.iter().any(|p| p == "*");
        let names: Vec<String> = raw
            .iter()
            .filter(|p| p.as_str() != "*")
            .map(|p| p.trim().to_string())
            .collect();
        let mut upgrade = upgrade;
        if state == State::Latest && all_installed {
            if !names.is_empty() {
                return Err(ModuleError::Failed(
                    "unable to install additional packages when upgrading all installed packages"
                        .into(),
                ));
            }
            upgrade = Some(Upgrade::Safe);
        }
        if let Some(bad) = names.iter().find(|p| p.matches('=').count() > 1) {
            return Err(ModuleError::Failed(format!("invalid package spec: {bad}")));
        }
        let deb: Vec<String> = a
            .deb
            .as_deref()
            .map(|d| {
                d.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        check_names(&deb)?;
        if !deb.is_empty() && state != State::Present {
            return Err(ModuleError::Failed(
                "deb only supports state=present".into(),
            ));
        }
        let mut dpkg = Vec::new();
        for opt in a
            .dpkg_options
            .as_deref()
            .unwrap_or("force-confdef,force-confold")
            .split(',')
        {
            dpkg.push("-o".to_string());
            dpkg.push(format!("Dpkg::Options::=--{}", opt.trim()));
        }
        dpkg.push("-o".into());
        dpkg.push(format!(
            "DPkg::Lock::Timeout={}",
            a.lock_timeout.unwrap_or(60)
        ));
        let cache_valid_time = a.cache_valid_time.unwrap_or(0);
        Ok(Plan {
            check,
            state,
            specs: names.iter().map(|n| Spec::parse(n)).collect(),
            deb,
            upgrade,
            update: a.update_cache.unwrap_or(false) || cache_valid_time != 0,
            cache_valid_time,
            retries: a.update_cache_retries.unwrap_or(5).max(1),
            max_delay: a.update_cache_retry_max_delay.unwrap_or(12),
            clean: a.clean,
            purge: a.purge,
            autoremove: a.autoremove,
            autoclean: a.autoclean,
            only_upgrade: a.only_upgrade,
            policy_rc_d: a.policy_rc_d,
            dpkg,
            force: a.force,
            fail_on_autoremove: a.fail_on_autoremove,
            default_release: a.default_release.filter(|r| !r.is_empty()),
            install_recommends: a.install_recommends,
            allow_unauthenticated: a.allow_unauthenticated,
            allow_downgrade: a.allow_downgrade,
            allow_change_held_packages: a.allow_change_held_packages,
        })
    }

    /// What happens after the cache step, in Ansible's order.
    fn action(&self) -> Action {
        if let Some(u) = self.upgrade {
            Action::Upgrade(u)
        } else if !self.deb.is_empty() {
            Action::Deb
        } else if self.specs.is_empty() && self.autoclean {
            Action::Cleanup("autoclean")
        } else if self.specs.is_empty() && self.autoremove {
            Action::Cleanup("autoremove")
        } else if self.specs.is_empty() && (self.update || self.clean) {
            Action::CacheOnly
        } else if self.state == State::BuildDep {
            Action::BuildDep
        } else {
            Action::Packages
        }
    }

    /// apt-get's arguments for installing (`install`, `build-dep`), as Ansible's `install()`.
    fn install_args(&self, verb: &str) -> Vec<String> {
        let mut v = vec!["-y".to_string(), "-q".to_string()];
        v.extend(self.dpkg.iter().cloned());
        if self.only_upgrade {
            v.push("--only-upgrade".into());
        }
        if self.state == State::Fixed {
            v.push("--fix-broken".into());
        }
        if self.force {
            v.push("--force-yes".into());
        }
        if self.autoremove && verb == "install" {
            v.push("--auto-remove".into());
        }
        if self.fail_on_autoremove {
            v.push("--no-remove".into());
        }
        if let Some(r) = &self.default_release {
            v.push("-t".into());
            v.push(r.clone());
        }
        match self.install_recommends {
            Some(false) => v.extend(["-o".into(), "APT::Install-Recommends=no".into()]),
            Some(true) => v.extend(["-o".into(), "APT::Install-Recommends=yes".into()]),
            None => {}
        }
        if self.allow_unauthenticated {
            v.push("--allow-unauthenticated".into());
        }
        if self.allow_downgrade {
            v.push("--allow-downgrades".into());
        }
        if self.allow_change_held_packages {
            v.push("--allow-change-held-packages".into());
        }
        v
    }

    /// apt-get's arguments for `remove`.
    fn remove_args(&self) -> Vec<String> {
        let mut v = vec!["-q".to_string(), "-y".to_string()];
        v.extend(self.dpkg.iter().cloned());
        if self.purge {
            v.push("--purge".into());
        }
        if self.force {
            v.push("--force-yes".into());
        }
        if self.autoremove {
            v.push("--auto-remove".into());
        }
        if self.allow_change_held_packages {
            v.push("--allow-change-held-packages".into());
        }
        v
    }

    /// apt-get's arguments for `upgrade`/`dist-upgrade`, as Ansible's `upgrade()`.
    fn upgrade_args(&self, u: Upgrade) -> Vec<String> {
        let mut v = vec!["-y".to_string(), "-q".to_string()];
        v.extend(self.dpkg.iter().cloned());
        if self.force {
            v.push("--force-yes".into());
        }
        if self.fail_on_autoremove {
            v.push("--no-remove".into());
        }
        if self.allow_unauthenticated {
            v.push("--allow-unauthenticated".into());
        }
        if self.allow_downgrade {
            v.push("--allow-downgrades".into());
        }
        if let Some(r) = &self.default_release {
            v.push("-t".into());
            v.push(r.clone());
        }
        match u {
            Upgrade::Dist => v.push("dist-upgrade".into()),
            Upgrade::Safe => {
                v.push("upgrade".into());
                v.push("--with-new-pkgs".into());
            }
        }
        if self.autoremove {
            v.push("--auto-remove".into());
        }
        v
    }

    fn cleanup_args(&self, op: &str) -> Vec<String> {
        let mut v = vec!["-y".to_string(), "-q".to_string()];
        v.extend(self.dpkg.iter().cloned());
        if self.purge {
            v.push("--purge".into());
        }
        if self.force {
            v.push("--force-yes".into());
        }
        v.push(op.into());
        v
    }

    /// The start of every script: tools, helpers, apt's environment, `policy-rc.d` helpers.
    fn prelude(&self) -> Script {
        let s = Script::new()
            .need("apt-get")
            .need("dpkg-query")
            .raw(PRELUDE)
            .raw(
                "DEBIAN_FRONTEND=noninteractive; DEBIAN_PRIORITY=critical; LANG=C; LANGUAGE=C\n\
                 export DEBIAN_FRONTEND DEBIAN_PRIORITY LANG LANGUAGE\n",
            )
            .set("chk", if self.check { "1" } else { "" })
            .raw("\n")
            .set(
                "prc",
                self.policy_rc_d.map(|p| p.to_string()).unwrap_or_default(),
            )
            .raw(POLICY_RC_D);
        s.set("stamp", STAMP).raw(LISTS)
    }

    /// The first script: clean, refresh the lists, then either the whole action (`deb`,
    /// `upgrade`, cleanups, `build-dep`) or the state of the named packages.
    fn probe_script(&self) -> Script {
        let mut s = self.prelude();
        if self.clean {
            s = s.raw("if [ -z \"$chk\" ]; then run clean apt-get clean || exit 0; fi\n");
        }
        if self.update {
            let keep = self.check && self.action() == Action::Packages;
            s = s
                .set("keep", if keep { "1" } else { "" })
                .raw(";")
                .set("cvt", self.cache_valid_time.to_string())
                .raw(";")
                .set("tries", self.retries.to_string())
                .raw(";")
                .set("maxd", self.max_delay.to_string())
                .raw(CACHE);
        }
        let action = self.action();
        s = match action {
            Action::CacheOnly => s,
            Action::Upgrade(u) => s
                .raw("op() { ao apt-get")
                .cmd(&self.upgrade_args(u))
                .raw("\"$@\"; }\n")
                .raw(SINGLE_ACTION),
            Action::Cleanup(op) => s
                .raw("op() { ao apt-get")
                .cmd(&self.cleanup_args(op))
                .raw("\"$@\"; }\n")
                .raw(SINGLE_ACTION),
            Action::BuildDep => {
                let specs: Vec<String> = self.specs.iter().map(spec_text).collect();
                s.raw("op() { ao apt-get")
                    .cmd(&self.install_args("build-dep"))
                    .raw("build-dep \"$@\"; }\nset --")
                    .cmd(&specs)
                    .raw("\n")
                    .raw(SINGLE_ACTION_ARGS)
            }
            Action::Deb => {
                let mut s = s
                    .raw("op() { ao apt-get")
                    .cmd(&self.install_args("install"))
                    .raw("install \"$@\"; }\n")
                    .set("debs", self.deb.join("\n"))
                    .raw("\n");
                if self.deb.iter().any(|d| d.contains("://")) {
                    s = s.raw(FETCH);
                }
                s.raw(DEB)
            }
            Action::Packages => {
                let mut s = s.raw(MATCH).raw("set --");
                for spec in self.specs.iter().filter(|sp| !sp.is_pattern()) {
                    s = s.arg(&spec.name);
                }
                s = s.raw("\n");
                for spec in self.specs.iter().filter(|sp| sp.is_pattern()) {
                    s = s.raw("match").arg(&spec.name).arg(spec.prefix()).raw("\n");
                }
                let policy = if self.state == State::Absent {
                    ""
                } else if self.state == State::Latest
                    || self.specs.iter().any(|sp| sp.cmp.is_some())
                {
                    "always"
                } else {
                    "missing"
                };
                s.set("pol", policy)
                    .raw("\n")
                    .set("auto", if self.state == State::Absent { "" } else { "1" })
                    .raw(PACKAGES)
            }
        };
        s
    }

    /// The second script: apt-get for the decided packages.
    fn act_script(
        &self,
        specs: &[String],
        mark: &[String],
        diff: bool,
        lists: Option<&str>,
    ) -> Script {
        let remove = self.state == State::Absent;
        let args = if remove {
            self.remove_args()
        } else {
            self.install_args("install")
        };
        let verb = if remove { "remove" } else { "install" };
        self.prelude()
            .raw("op() { ao apt-get")
            .cmd(&args)
            .raw("\"$@\"; }\n")
            .set("verb", verb)
            .raw("\n")
            .set("mk", mark.join("\n"))
            .raw("\n")
            .set("sim", if diff || self.check { "1" } else { "" })
            .raw("\n")
            .set("L", lists.unwrap_or(""))
            .raw("\nrmx=$L\nset --")
            .cmd(specs)
            .raw(ACT)
    }
}

fn spec_text(s: &Spec) -> String {
    match (&s.cmp, &s.version) {
        (Some(c), Some(v)) => format!("{}{c}{v}", s.name),
        _ => s.name.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    CacheOnly,
    Upgrade(Upgrade),
    Deb,
    Cleanup(&'static str),
    BuildDep,
    Packages,
}

/// `mt`: the lists' time as Ansible reads it (the update stamp's mtime, else the lists
/// directory's). `ao CMD ARGS`: an apt command reading the lists in `$L` when set (check
/// mode's refreshed copy; the binary caches then stay in memory) instead of the system's.
const LISTS: &str = r#"
mt() {
  if [ -e "$stamp" ]; then stat -c %Y "$stamp"
  elif [ -e /var/lib/apt/lists ]; then stat -c %Y /var/lib/apt/lists
  else echo 0; fi
}
L=
ao() {
  c=$1; shift
  if [ -n "$L" ]; then
    "$c" -o "Dir::State::Lists=$L" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= "$@"
  else
    "$c" "$@"
  fi
}
"#;

/// `policy-rc.d` for `policy_rc_d`: `prc_on` puts one in place that exits with `$prc`
/// (the existing one kept aside), `prc_off` restores.
const POLICY_RC_D: &str = r#"
prc_on() {
  [ -n "$prc" ] && [ -z "$chk" ] || return 0
  tmpd || return 1
  [ -e /usr/sbin/policy-rc.d ] && mv /usr/sbin/policy-rc.d "$W/policy-rc.d"
  printf '#!/bin/sh\nexit %s\n' "$prc" >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
}
prc_off() {
  [ -n "$prc" ] && [ -z "$chk" ] || return 0
  if [ -e "$W/policy-rc.d" ]; then mv "$W/policy-rc.d" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
}
"#;

/// Refresh the lists when older than `$cvt` seconds: `cache fresh T`, `cache would T`
/// (check mode), `cache ran T0 T1`, or `update` (the last failed try) and `updatefail`.
/// In check mode with `$keep`, a copy of the lists is refreshed instead, in `$L`
/// (`tmplists L`): the package decisions and the second script's simulation then see what
/// a real run would see; that script removes it.
const CACHE: &str = r#"
t0=$(mt)
now=$(date +%s)
if [ $((t0 + cvt)) -ge "$now" ]; then
  sec cache "fresh $t0"
elif [ -n "$chk" ]; then
  sec cache "would $t0"
  if [ -n "$keep" ]; then
    L=$(mktemp -d /tmp/play-apt-lists.XXXXXX) || exit 1
    if chmod 755 "$L" && cp -a /var/lib/apt/lists/. "$L"/ && rm -f "$L/lock" && run update ao apt-get -q update; then
      sec tmplists "$L"
    else
      rmx=$L; L=
    fi
  fi
else
  i=0; d=1
  until run update apt-get update -q; do
    i=$((i + 1))
    if [ "$i" -ge "$tries" ]; then sec updatefail "$tries"; exit 0; fi
    sleep "$d"; d=$((d * 2)); [ "$d" -gt "$maxd" ] && d=$maxd
  done
  sec cache "ran $t0 $(mt)"
fi
"#;

/// One apt-get run decides and acts (`--simulate` in check mode): `action`.
const SINGLE_ACTION: &str = r#"
if [ -n "$chk" ]; then run action op -s; else prc_on; run action op; prc_off; fi
exit 0
"#;

/// As [`SINGLE_ACTION`], with the positional arguments (`build-dep`'s packages).
const SINGLE_ACTION_ARGS: &str = r#"
if [ -n "$chk" ]; then run action op -s -- "$@"; else prc_on; run action op -- "$@"; prc_off; fi
exit 0
"#;

/// `fetch URL`: download into `$W` with curl or wget, print the file's path.
const FETCH: &str = r#"
fetch() {
  tmpd || return 1
  d=$(mktemp -d "$W/deb.XXXXXX") || return 1
  b=${1##*/}; b=${b%%\?*}; [ -n "$b" ] || b=package.deb
  if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$d/$b" -- "$1" || return 1
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$d/$b" -- "$1" || return 1
  else echo "neither curl nor wget on the target to download $1" >&2; return 1; fi
  printf '%s\n' "$d/$b"
}
"#;

/// `deb`: each file's name and version (`dpkg-deb -f`) against what dpkg has; the files
/// whose version differs are installed by apt-get with their dependencies. A leading `~/`
/// is the connecting user's home, as Ansible expands a `path` argument.
const DEB: &str = r#"
ins=
for f in $debs; do
  case $f in
  *://*)
    tmpd || exit 1
    if ! g=$(fetch "$f" 2>"$W/fe"); then sec nofetch "$f"; cat "$W/fe"; exit 0; fi
    f=$g ;;
  esac
  case $f in '~') f=$HOME;; '~/'*) f=$HOME/${f#??};; esac
  if [ ! -r "$f" ]; then sec nodeb "$f"; exit 0; fi
  if ! info=$(dpkg-deb -f -- "$f" Package Version 2>&1); then sec debbad "$f"; printf '%s\n' "$info"; exit 0; fi
  p=; v=
  for l in $info; do case $l in 'Package: '*) p=${l#Package: };; 'Version: '*) v=${l#Version: };; esac; done
  iv=
  st=$(dpkg-query -W -f='${Status}\t${Version}' -- "$p" 2>/dev/null)
  case $st in *' installed	'*) iv=${st#*	};; esac
  if [ -n "$iv" ] && dpkg --compare-versions "$iv" eq "$v"; then sec debsame "$p $v"; continue; fi
  sec deb "$p $v $iv"
  case $f in /*|./*|../*) ;; *) f=./$f;; esac
  ins=$ins$NL$f
done
[ -n "$ins" ] || exit 0
if [ -n "$chk" ]; then run action op -s -- $ins; exit 0; fi
prc_on; run action op -- $ins; prc_off
exit 0
"#;

/// `match PATTERN PREFIX`: the package names apt knows that start with PREFIX and match
/// PATTERN (multiarch names only when PATTERN names an architecture), printed as section
/// `match PATTERN` and added to `$pl`.
const MATCH: &str = r#"
pl=
match() {
  sec match "$1"
  for n in $(ao apt-cache pkgnames -- "$2" 2>/dev/null); do
    case $n in *:*) case $1 in *:*) ;; *) continue;; esac;; esac
    case $n in $1) printf '%s\n' "$n"; pl=$pl$NL$n;; esac
  done
}
"#;

/// The state of the named packages (the positional arguments and `$pl`): `mtime` (the
/// lists' time, reported with every install), `dpkg`, `policy` (when `$pol` is `always`, or
/// `missing` and some name is not installed) and `auto` (with `$auto`).
const PACKAGES: &str = r#"
for n in $pl; do set -- "$@" "$n"; done
sec mtime "$(mt)"
[ $# -gt 0 ] || exit 0
dq=$(dpkg-query -W -f='${Package}\t${Status}\t${Version}\n' -- "$@" 2>/dev/null)
sec dpkg; printf '%s\n' "$dq"
c=0
for l in $dq; do case $l in *' installed	'*) c=$((c + 1));; esac; done
if [ "$pol" = always ] || { [ "$pol" = missing ] && [ "$c" -lt $# ]; }; then
  sec policy; ao apt-cache policy -- "$@" 2>/dev/null
fi
if [ -n "$auto" ] && [ "$c" -gt 0 ]; then sec auto; apt-mark showauto -- "$@" 2>/dev/null; fi
exit 0
"#;

/// The second exec: `sim` (apt-get `--simulate`, for check mode and diffs), the real
/// `action`, and `mark` (`apt-mark manual` for requested packages marked automatic).
const ACT: &str = r#"
if [ $# -gt 0 ] && [ -n "$sim" ]; then run sim op -s "$verb" -- "$@" || exit 0; fi
[ -n "$chk" ] && exit 0
prc_on
if [ $# -gt 0 ]; then run action op "$verb" -- "$@" || { prc_off; exit 0; }; fi
prc_off
if [ -n "$mk" ]; then run mark apt-mark manual -- $mk; fi
exit 0
"#;

/// `name version` lines before and after, from apt-get's `--simulate` lines
/// (`Inst name [old] (new ...)`, `Remv name [old]`, `Purg name [old]`).
fn simulated_diff(sim: &str) -> crate::FileDiff {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for line in sim.lines() {
        let mut words = line.split_whitespace();
        let (Some(op), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        if !matches!(op, "Inst" | "Remv" | "Purg") {
            continue;
        }
        let rest: Vec<&str> = words.collect();
        let old = rest
            .first()
            .filter(|w| w.starts_with('['))
            .map(|w| w.trim_matches(['[', ']']).to_string());
        if let Some(old) = &old {
            before.push(format!("{name} {old}"));
        }
        if op == "Inst" {
            let new = rest
                .iter()
                .find(|w| w.starts_with('('))
                .map(|w| w.trim_start_matches('('));
            if let Some(new) = new {
                after.push(format!("{name} {new}"));
            }
        }
    }
    list_diff(before, after)
}

/// A failed apt-get run, worded as Ansible words it: `'<command>' failed: <stderr>`.
fn failed_run(command: &str, r: &Ran) -> Outcome {
    let mut o = Outcome::failed(format!("'{command}' failed: {}", r.stderr.trim_end()));
    put_text(&mut o.result, "stdout", &r.stdout);
    put_text(&mut o.result, "stderr", &r.stderr);
    o.result.insert("rc".into(), Value::from(r.status));
    o
}

fn command_text(verb_args: &[String], extra: &[&str]) -> String {
    let mut parts = vec!["apt-get"];
    parts.extend(verb_args.iter().map(String::as_str));
    parts.extend(extra);
    parts.join(" ")
}

/// The cache step's result keys (`cache_updated`, `cache_update_time`), or its failure.
struct CacheStep {
    updated: bool,
    time: i64,
}

fn cache_step(report: &Report) -> Result<Option<CacheStep>, Box<Outcome>> {
    if let Some(s) = report.get("updatefail") {
        let err = report.ran("update").map(|r| r.errors()).unwrap_or_default();
        let err = if err.is_empty() {
            "unknown reason".to_string()
        } else {
            err
        };
        let mut o = Outcome::failed(format!(
            "Failed to update apt cache after {} retries: {err}",
            s.arg
        ));
        if let Some(r) = report.ran("update") {
            put_text(&mut o.result, "stdout", &r.stdout);
            put_text(&mut o.result, "stderr", &r.stderr);
        }
        return Err(Box::new(o));
    }
    let Some(c) = report.get("cache") else {
        return Ok(report.get("mtime").map(|m| CacheStep {
            updated: false,
            time: m.arg.parse().unwrap_or(0),
        }));
    };
    let w: Vec<&str> = c.arg.split_whitespace().collect();
    let num = |i: usize| w.get(i).and_then(|t| t.parse().ok()).unwrap_or(0);
    let step = match w.first().copied() {
        Some("ran") => CacheStep {
            updated: num(1) != num(2),
            time: num(2),
        },
        Some("would") => CacheStep {
            updated: true,
            time: num(1),
        },
        _ => CacheStep {
            updated: false,
            time: num(1),
        },
    };
    Ok(Some(step))
}

impl Module for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<AptArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: AptArgs = args::parse("apt", args)?;
        let plan = Plan::from_args(a, ctx.check)?;
        let out = ctx.host.exec(&Cmd::script(plan.probe_script()))?;
        tools::missing_tool(&out)?;
        let report = Report::parse(&out.stdout_str());
        if !out.success() && report.sections.is_empty() {
            return Err(ModuleError::Failed(format!(
                "apt could not run on the target: {}",
                out.stderr_str().trim()
            )));
        }
        // Check mode's refreshed copy of the lists: the second script removes it; when
        // there is none, it is removed here.
        let lists = report
            .get("tmplists")
            .map(|s| s.arg.clone())
            .filter(|l| !l.is_empty());
        let mut lists_used = false;
        let result = finish(&plan, ctx, &report, lists.as_deref(), &mut lists_used);
        if let (Some(l), false) = (&lists, lists_used) {
            ctx.host
                .exec(&Cmd::script(Script::new().raw("rm -rf --").arg(l)))?;
        }
        result
    }
}

/// Everything after the first script: the result of a one-exec action, or the decisions
/// for the named packages and the second script that carries them out.
fn finish(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    report: &Report,
    lists: Option<&str>,
    lists_used: &mut bool,
) -> Result<Outcome, ModuleError> {
    if let Some(r) = report.ran("clean") {
        if !r.ok() {
            return Ok(Outcome::failed("apt-get clean failed")
                .with("stdout", r.stdout.clone())
                .with("rc", r.status));
        }
    }
    let cache = match cache_step(report) {
        Ok(c) => c,
        Err(failed) => return Ok(*failed),
    };
    if let Some(o) = one_exec_outcome(plan, ctx, report, &cache) {
        return Ok(o);
    }
    let (todo, mark) = match decisions(plan, report) {
        Ok(d) => d,
        Err(msg) => {
            let mut o = Outcome::failed(msg);
            add_cache(&mut o, &cache);
            return Ok(o);
        }
    };
    let remove = plan.state == State::Absent;
    if todo.is_empty() && mark.is_empty() {
        let mut o = Outcome::ok();
        if !remove {
            add_cache(&mut o, &cache);
        }
        return Ok(o);
    }
    *lists_used = true;
    let out = ctx
        .host
        .exec(&Cmd::script(plan.act_script(&todo, &mark, ctx.diff, lists)))?;
    let mut o = act_outcome(plan, ctx, &out, &todo, &mark)?;
    if !remove && !o.failed {
        add_cache(&mut o, &cache);
    }
    Ok(o)
}

/// The result of an action the first script carried out whole (`upgrade`, `deb`, the
/// cleanups, `build-dep`, a cache refresh or `clean` alone); `None` for named packages.
fn one_exec_outcome(
    plan: &Plan,
    ctx: &Ctx<'_>,
    report: &Report,
    cache: &Option<CacheStep>,
) -> Option<Outcome> {
    let o = match plan.action() {
        Action::CacheOnly => {
            if plan.update {
                let (updated, time) = cache.as_ref().map_or((false, 0), |c| (c.updated, c.time));
                return Some(
                    Outcome::changed(updated)
                        .with("cache_updated", updated)
                        .with("cache_update_time", time),
                );
            }
            // `clean` alone.
            let mut o = Outcome::changed(true);
            let text = report.ran("clean").map(|r| r.stdout).unwrap_or_default();
            o.msg = Some(text.clone());
            put_text(&mut o.result, "stdout", &text);
            o
        }
        Action::Upgrade(u) => single_outcome(
            report,
            &plan.upgrade_args(u),
            ctx,
            |r| !r.stdout.contains(APT_GET_ZERO),
            true,
        ),
        Action::Cleanup(op) => {
            let args = plan.cleanup_args(op);
            let needle = if op == "autoremove" {
                "The following packages will be REMOVED"
            } else {
                "Del "
            };
            single_outcome(report, &args, ctx, |r| r.stdout.contains(needle), false)
        }
        Action::BuildDep => {
            let mut args = plan.install_args("build-dep");
            args.push("build-dep".into());
            let mut o = single_outcome(
                report,
                &args,
                ctx,
                |r| !r.stdout.contains(APT_GET_ZERO),
                false,
            );
            if !o.failed {
                add_cache(&mut o, cache);
            }
            o
        }
        Action::Deb => deb_outcome(plan, report, ctx),
        Action::Packages => return None,
    };
    Some(o)
}

/// What apt-get is to install or remove (`name`, `name=version`) and which installed
/// packages to mark manual, from what the first script found; or Ansible's message for
/// a package that cannot be had.
fn decisions(plan: &Plan, report: &Report) -> Result<(Vec<String>, Vec<String>), String> {
    // Which names the patterns found.
    let mut specs: Vec<Spec> = Vec::new();
    for spec in &plan.specs {
        if spec.is_pattern() {
            let found = report
                .sections
                .iter()
                .find(|s| s.key == "match" && s.arg == spec.name)
                .map(|s| nonempty_lines(&s.body))
                .unwrap_or_default();
            if found.is_empty() {
                return Err(format!("No package(s) matching '{}' available", spec.name));
            }
            specs.extend(found.iter().map(|n| spec.with_name(n)));
        } else {
            specs.push(spec.clone());
        }
    }
    let states = package_states(report);
    let state_of = |name: &str| -> PkgState {
        states
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    let remove = plan.state == State::Absent;
    let mut todo: Vec<String> = Vec::new();
    let mut mark: Vec<String> = Vec::new();
    for spec in &specs {
        let st = state_of(&spec.name);
        if remove {
            if decide_remove(spec, &st, plan.purge) {
                todo.push(spec_text(spec));
            }
            continue;
        }
        match decide_install(spec, &st, plan.state == State::Latest, plan.only_upgrade)? {
            Install::Install(s) => todo.push(s),
            Install::Keep => {
                if st.installed() && st.auto && !mark.contains(&spec.name) {
                    mark.push(spec.name.clone());
                }
            }
        }
    }
    Ok((todo, mark))
}

/// The result of the second script: what apt-get did (or simulated), or how it failed.
fn act_outcome(
    plan: &Plan,
    ctx: &Ctx<'_>,
    out: &crate::Output,
    todo: &[String],
    mark: &[String],
) -> Result<Outcome, ModuleError> {
    let remove = plan.state == State::Absent;
    let acted = Report::parse(&out.stdout_str());
    let verb_args = if remove {
        plan.remove_args()
    } else {
        plan.install_args("install")
    };
    let verb = if remove { "remove" } else { "install" };
    let mut o = Outcome::changed(true);
    if let Some(sim) = acted.ran("sim") {
        if !sim.ok() {
            let mut args = verb_args.clone();
            args.push("-s".into());
            args.push(verb.into());
            return Ok(failed_run(&command_text(&args, &todo_refs(todo)), &sim));
        }
        if ctx.diff {
            o.diffs.push(simulated_diff(&sim.stdout));
        }
        if ctx.check {
            put_text(&mut o.result, "stdout", &sim.stdout);
            put_text(&mut o.result, "stderr", &sim.stderr);
        }
    }
    if !ctx.check {
        if let Some(r) = acted.ran("action") {
            if !r.ok() {
                let mut args = verb_args.clone();
                args.push(verb.into());
                let cmd = command_text(&args, &todo_refs(todo));
                if remove {
                    let mut f = failed_run(&cmd, &r);
                    f.msg = Some(format!(
                        "'apt-get remove {}' failed: {}",
                        todo.join(" "),
                        r.stderr.trim_end()
                    ));
                    return Ok(f);
                }
                return Ok(failed_run(&cmd, &r));
            }
            put_text(&mut o.result, "stdout", &r.stdout);
            put_text(&mut o.result, "stderr", &r.stderr);
        } else if !todo.is_empty() {
            return Err(ModuleError::Failed(format!(
                "apt-get did not run on the target: {}",
                out.stderr_str().trim()
            )));
        }
        if let Some(r) = acted.ran("mark") {
            if !r.ok() {
                return Ok(failed_run(
                    &format!("apt-mark manual {}", mark.join(" ")),
                    &r,
                ));
            }
        }
    }
    Ok(o)
}

fn nonempty_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn todo_refs(todo: &[String]) -> Vec<&str> {
    todo.iter().map(String::as_str).collect()
}

fn add_cache(o: &mut Outcome, cache: &Option<CacheStep>) {
    let (updated, time) = cache.as_ref().map_or((false, 0), |c| (c.updated, c.time));
    o.result.insert("cache_updated".into(), updated.into());
    o.result.insert("cache_update_time".into(), time.into());
}

/// Every named package's state from the `dpkg`, `policy` and `auto` sections.
fn package_states(report: &Report) -> Vec<(String, PkgState)> {
    let mut states: Vec<(String, PkgState)> = Vec::new();
    let entry = |states: &mut Vec<(String, PkgState)>, name: &str| -> usize {
        match states.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                states.push((name.to_string(), PkgState::default()));
                states.len() - 1
            }
        }
    };
    if let Some(d) = report.get("dpkg") {
        for (name, state, version) in parse_dpkg(&d.body) {
            let i = entry(&mut states, &name);
            let st = &mut states[i].1;
            st.dpkg_state = Some(state);
            if !version.is_empty() {
                st.installed_version = Some(version);
            }
        }
    }
    if let Some(p) = report.get("policy") {
        for (name, candidate, versions) in parse_policy(&p.body) {
            let i = entry(&mut states, &name);
            let st = &mut states[i].1;
            st.known = true;
            st.candidate = candidate;
            st.versions = versions;
        }
    }
    if let Some(a) = report.get("auto") {
        for name in a.body.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let i = entry(&mut states, name);
            states[i].1.auto = true;
        }
    }
    states
}

/// `upgrade`, the cleanups and `build-dep`: apt-get's own run decides; `msg_is_out` makes
/// the output the message too (as Ansible's `upgrade()` does).
fn single_outcome(
    report: &Report,
    args: &[String],
    ctx: &Ctx<'_>,
    changed: impl Fn(&Ran) -> bool,
    msg_is_out: bool,
) -> Outcome {
    let Some(r) = report.ran("action") else {
        return Outcome::failed("apt-get did not run on the target");
    };
    if !r.ok() {
        let mut a = args.to_vec();
        if ctx.check {
            a.push("-s".into());
        }
        return failed_run(&command_text(&a, &[]), &r);
    }
    let mut o = Outcome::changed(changed(&r));
    if msg_is_out {
        o.msg = Some(r.stdout.clone());
    }
    put_text(&mut o.result, "stdout", &r.stdout);
    put_text(&mut o.result, "stderr", &r.stderr);
    if ctx.diff && o.changed {
        o.diffs.push(simulated_diff(&r.stdout));
    }
    o
}

fn deb_outcome(plan: &Plan, report: &Report, ctx: &Ctx<'_>) -> Outcome {
    if let Some(s) = report.get("nofetch") {
        return Outcome::failed(format!("Failure downloading {}, {}", s.arg, s.body.trim()));
    }
    if let Some(s) = report.get("nodeb") {
        return Outcome::failed(format!(
            "Unable to install package: E:Could not open file {} - open (2: No such file or directory)",
            s.arg
        ));
    }
    if let Some(s) = report.get("debbad") {
        return Outcome::failed(format!("dpkg --field {} failed", s.arg))
            .with("stdout", s.body.clone());
    }
    let Some(r) = report.ran("action") else {
        // Every file's version is installed already.
        let mut o = Outcome::ok();
        put_text(&mut o.result, "stdout", "");
        put_text(&mut o.result, "stderr", "");
        return o;
    };
    if !r.ok() {
        let mut args = plan.install_args("install");
        args.push("install".into());
        let files: Vec<&str> = plan.deb.iter().map(String::as_str).collect();
        return failed_run(&command_text(&args, &files), &r);
    }
    let mut o = Outcome::changed(true);
    put_text(&mut o.result, "stdout", &r.stdout);
    put_text(&mut o.result, "stderr", &r.stderr);
    if ctx.diff {
        if ctx.check {
            o.diffs.push(simulated_diff(&r.stdout));
        } else {
            // The real run prints no Inst lines: the versions come from the files and dpkg.
            let mut before = Vec::new();
            let mut after = Vec::new();
            for s in report.sections.iter().filter(|s| s.key == "deb") {
                let w: Vec<&str> = s.arg.split_whitespace().collect();
                if let [name, new, rest @ ..] = w.as_slice() {
                    after.push(format!("{name} {new}"));
                    if let Some(old) = rest.first() {
                        before.push(format!("{name} {old}"));
                    }
                }
            }
            o.diffs.push(list_diff(before, after));
        }
    }
    o
}

#[cfg(test)]
mod tests;
