//! The `pacman` module (`community.general.pacman`): install, upgrade and remove packages,
//! refresh the sync databases, upgrade the system, with pacman on the target.
//!
//! One script per task reads the state and, unless in check mode, acts: `pacman -Q` for
//! what is installed, `-Sg`/`-Qg` to expand groups, `-Qu` for what `latest` would upgrade;
//! when something is to be done, `--print-format` dry runs (`-S`, `-U`, `-R`) name exactly
//! the packages that change (dependencies included), which is what `packages` and the diff
//! report, and then the real command runs. A converged host costs one exec with one or two
//! pacman processes.
//!
//! Deviations from community.general.pacman, on purpose:
//! - `update_cache` is changed only when a sync database's content changed (checksums of
//!   the sync `*.db` files before and after `pacman -Sy`). Older versions of the module
//!   always reported a refresh as a change (ansible/ansible#57283); community.general 4.6.0
//!   (PR #4337) compares `pacman -Sl` listings before and after, but still reports a change
//!   in check mode, and always with `force`. Here check mode refreshes copies of the sync
//!   databases in a temporary `--dbpath` (the local database linked read-only, the log sent
//!   to `/dev/null`), so it says whether the refresh would change anything, and `latest`
//!   decisions in check mode see the refreshed databases as a real run would. Where that
//!   refresh cannot run (pacman refuses `-Sy` to a non-root user), check mode reports the
//!   refresh as a change, as Ansible does. With `force` (`-Syy`) a re-download of the same
//!   databases is no change either.
//! - A lock file (`db.lck`) is reported with its path and what to do before anything is
//!   tried, in check mode too (the real run would fail). It is never removed.
//! - A group that is installed locally but no longer in a sync database is still expanded
//!   for `state=absent` (`-Qg`); Ansible only expands sync groups.
//! - Failure messages add pacman's own `error:` lines to Ansible's wording.

use serde::Deserialize;

use super::{check_names, list_diff, pacman_lock_message, put_text, Ran, Report, PRELUDE};
use crate::{args, tools, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `pacman`.
pub struct Pacman;

#[derive(Debug, Deserialize)]
struct PacmanArgs {
    #[serde(alias = "pkg", alias = "package")]
    name: Option<Vec<String>>,
    state: Option<State>,
    #[serde(alias = "update-cache")]
    update_cache: Option<bool>,
    upgrade: Option<bool>,
    extra_args: Option<String>,
    update_cache_extra_args: Option<String>,
    upgrade_extra_args: Option<String>,
    reason: Option<Reason>,
    reason_for: Option<ReasonFor>,
    #[serde(default)]
    remove_nosave: bool,
    #[serde(default)]
    force: bool,
    executable: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Present,
    Installed,
    Latest,
    Absent,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Reason {
    Dependency,
    Explicit,
}

impl Reason {
    fn word(self) -> &'static str {
        match self {
            Reason::Dependency => "dependency",
            Reason::Explicit => "explicit",
        }
    }
    /// pacman's flag for it (`-D --asdeps`).
    fn flag(self) -> &'static str {
        match self {
            Reason::Dependency => "asdeps",
            Reason::Explicit => "asexplicit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReasonFor {
    All,
    New,
}

/// What the task asks for, once arguments are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// `update_cache` alone.
    Cache,
    /// `upgrade: true`.
    Upgrade,
    /// `name`: repository names (`foo`, `repo/foo`, groups) and package files or URLs.
    Names {
        absent: bool,
        latest: bool,
        names: Vec<String>,
        files: Vec<String>,
    },
}

/// The plan the script carries out, everything the controller decided from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    executable: String,
    check: bool,
    update_cache: bool,
    force: bool,
    mode: Mode,
    reason: Option<Reason>,
    reason_all: bool,
    remove_nosave: bool,
    extra: Vec<String>,
    update_cache_extra: Vec<String>,
    upgrade_extra: Vec<String>,
}

/// The script after the prelude and the plan's variables and `op_*` functions.
///
/// Sections it prints: `missing` (no such executable), `sync`/`cache` (the refresh and
/// whether it changed the databases: `same`, `changed`, `unknown`), `locked PATH`, `qu`
/// (upgrade mode's `-Qu`), `installed` and `explicit` (state before a change), `plan`,
/// `fplan`, `rplan` (dry runs), `install`, `finstall`, `reason`, `remove`, `upgrade`.
const SCRIPT: &str = r#"
command -v "$P" >/dev/null 2>&1 || { sec missing "$P"; exit 0; }
T=
dbp=
lockf=
pm() { if [ -n "$T" ]; then "$P" --dbpath "$T" "$@"; else "$P" "$@"; fi; }
paths() {
  [ -n "$lockf" ] && return 0
  for l in $("$P" -T -v 2>/dev/null); do
    case $l in 'DB Path'*) dbp=${l#*: };; 'Lock File'*) lockf=${l#*: };; esac
  done
  [ -n "$dbp" ] || dbp=/var/lib/pacman/
  case $dbp in */) ;; *) dbp=$dbp/;; esac
  [ -n "$lockf" ] || lockf=${dbp}db.lck
}
locked() { paths; if [ -e "$lockf" ]; then sec locked "$lockf"; exit 0; fi; }
sums() { set +f; cat "$1"sync/*.db 2>/dev/null | cksum; }
if [ -n "$uc" ]; then
  locked
  s0=$(sums "$dbp")
  if [ -n "$chk" ]; then
    tmpd || exit 1
    mkdir "$W/db" "$W/db/sync" && ln -s "${dbp}local" "$W/db/local" || exit 1
    set +f
    for f in "$dbp"sync/*.db; do [ -e "$f" ] && cp -p "$f" "$W/db/sync/"; done
    set -f
    T=$W/db
    if run sync op_sync --logfile /dev/null; then
      if [ "$s0" = "$(sums "$T/")" ]; then sec cache same; else sec cache changed; fi
    else
      T=
      sec cache unknown
    fi
  else
    run sync op_sync || exit 0
    if [ "$s0" = "$(sums "$dbp")" ]; then sec cache same; else sec cache changed; fi
  fi
fi
case $mode in
cache) exit 0 ;;
upgrade)
  run qu pm -Qu; r=$?
  [ "$r" -gt 1 ] && exit 0
  n=
  for l in $(cat "$W/o"); do case $l in *'[ignored]'*) ;; *' -> '*) n=1;; esac; done
  [ -n "$n" ] || exit 0
  locked
  [ -n "$chk" ] && exit 0
  run upgrade op_upgrade
  exit 0 ;;
esac
q=
for n; do q=$q$NL${n##*/}; done
if [ -n "$absent" ]; then
  for f in $fl; do
    x=$(pm -Qqp -- "$f" 2>/dev/null) && q=$q$NL$x && set -- "$@" "$x"
  done
  [ -n "$q" ] || exit 0
  iq=$(pm -Q -- $q 2>/dev/null)
  rm=
  for n; do
    b=${n##*/}
    case "$NL$iq" in *"$NL$b "*) rm=$rm$NL$b; continue;; esac
    m=$(pm -Qgq -- "$n" 2>/dev/null) && rm=$rm$NL$m
  done
  [ -n "$rm" ] || exit 0
  locked
  run rplan op_remove_plan -- $rm || exit 0
  [ -n "$chk" ] && exit 0
  run remove op_remove -- $rm
  exit 0
fi
iq=
[ -n "$q" ] && iq=$(pm -Q -- $q 2>/dev/null)
tg=
inst=
gm=
for n; do
  b=${n##*/}
  case "$NL$iq" in *"$NL$b "*) inst=$inst$NL$b; continue;; esac
  if m=$(pm -Sgq -- "$n" 2>/dev/null) && [ -n "$m" ]; then gm=$gm$NL$m; else tg=$tg$NL$n; fi
done
if [ -n "$gm" ]; then
  mq=$(pm -Q -- $gm 2>/dev/null)
  iq=$iq$NL$mq
  for m in $gm; do
    case "$NL$mq" in *"$NL$m "*) inst=$inst$NL$m;; *) tg=$tg$NL$m;; esac
  done
fi
new=$tg
if [ -n "$latest" ] && [ -n "$inst" ]; then
  for l in $(pm -Qu -- $inst 2>/dev/null); do
    case $l in *'[ignored]'*) ;; *' -> '*) tg=$tg$NL${l%% *};; esac
  done
fi
ex=
rn=
if [ -n "$rs" ]; then
  [ -n "$inst" ] && ex=$(pm -Qqe -- $inst 2>/dev/null)
  for n in $new; do rn=$rn$NL${n##*/}; done
  if [ -n "$rall" ]; then
    for b in $inst; do
      if has "$b" "$ex"; then c=asexplicit; else c=asdeps; fi
      [ "$c" = "$rs" ] || rn=$rn$NL$b
    done
  fi
fi
fp=
if [ -n "$fl" ]; then
  run fplan op_file_plan -- $fl || exit 0
  while read -r l; do
    case $l in *'loading packages'*|*'there is nothing to do'*|'') ;; *) fp=1;; esac
  done <"$W/o"
fi
[ -z "$tg" ] && [ -z "$fp" ] && [ -z "$rn" ] && exit 0
locked
[ -z "$rs" ] && [ -n "$inst" ] && ex=$(pm -Qqe -- $inst 2>/dev/null)
sec installed; printf '%s\n' "$iq"
sec explicit; printf '%s\n' "$ex"
sec reasons; printf '%s\n' "$rn"
if [ -n "$tg" ]; then run plan op_install_plan -- $tg || exit 0; fi
[ -n "$chk" ] && exit 0
if [ -n "$tg" ]; then run install op_install -- $tg || exit 0; fi
if [ -n "$fp" ]; then run finstall op_file_install -- $fl || exit 0; fi
if [ -n "$rn" ]; then run reason pm --noconfirm -D "--$rs" -- $rn || exit 0; fi
exit 0
"#;

/// Whether a name is a package file or URL (installed with `pacman -U`), not a repository name.
fn is_package_file(name: &str) -> bool {
    if name.contains("://") {
        return true;
    }
    let Some(i) = name.find(".pkg.tar") else {
        return false;
    };
    let rest = &name[i + ".pkg.tar".len()..];
    rest.is_empty()
        || (rest.starts_with('.')
            && rest.len() > 1
            && rest[1..].chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The package name in a package file's name (`dir/foo-bar-1.0-1-x86_64.pkg.tar.zst` is
/// `foo-bar`): name, version, release and architecture are joined by dashes, and only the
/// name may contain one.
fn name_of_package_file(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    let stem = base.find(".pkg.tar").map_or(base, |i| &base[..i]);
    let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
    if parts.len() == 4 {
        parts[3].to_string()
    } else {
        stem.to_string()
    }
}

fn split_extra(what: &str, text: Option<&str>) -> Result<Vec<String>, ModuleError> {
    let text = text.unwrap_or("");
    shlex::split(text).ok_or_else(|| {
        ModuleError::Args(format!(
            "{what}: cannot split {} into arguments (unbalanced quotes?)",
            crate::pyfmt::str_repr(text)
        ))
    })
}

impl Plan {
    /// `None`: nothing is asked (`update_cache: false` alone).
    fn from_args(a: PacmanArgs, check: bool) -> Result<Option<Plan>, ModuleError> {
        let names: Vec<String> = a
            .name
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
        check_names(&names)?;
        let update_cache = a.update_cache.unwrap_or(false);
        if names.is_empty() && a.upgrade.is_none() && a.update_cache.is_none() {
            return Err(ModuleError::Args(
                "one of the following is required: name, update_cache, upgrade".into(),
            ));
        }
        if !names.is_empty() && a.upgrade.is_some() {
            return Err(ModuleError::Args(
                "parameters are mutually exclusive: name|upgrade".into(),
            ));
        }
        let state = a.state.unwrap_or(State::Present);
        let mode = if a.upgrade == Some(true) {
            Mode::Upgrade
        } else if !names.is_empty() {
            let absent = matches!(state, State::Absent | State::Removed);
            let (files, mut repo): (Vec<String>, Vec<String>) =
                names.into_iter().partition(|n| is_package_file(n));
            let mut files_kept = Vec::new();
            for f in files {
                // A URL cannot be asked what it holds without downloading it: its file name says.
                if absent && f.contains("://") {
                    repo.push(name_of_package_file(&f));
                } else {
                    files_kept.push(f);
                }
            }
            Mode::Names {
                absent,
                latest: state == State::Latest,
                names: repo,
                files: files_kept,
            }
        } else if update_cache {
            Mode::Cache
        } else {
            // `upgrade: false` or `update_cache: false` alone: nothing to do.
            return Ok(None);
        };
        Ok(Some(Plan {
            executable: a
                .executable
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "pacman".into()),
            check,
            update_cache,
            force: a.force,
            mode,
            reason: a.reason,
            reason_all: a.reason_for == Some(ReasonFor::All),
            remove_nosave: a.remove_nosave,
            extra: split_extra("extra_args", a.extra_args.as_deref())?,
            update_cache_extra: split_extra(
                "update_cache_extra_args",
                a.update_cache_extra_args.as_deref(),
            )?,
            upgrade_extra: split_extra("upgrade_extra_args", a.upgrade_extra_args.as_deref())?,
        }))
    }

    fn script(&self) -> Script {
        let mut s = Script::new();
        if self.executable == "pacman" {
            s = s.need("pacman");
        }
        s = s.raw(PRELUDE).set("P", &self.executable).raw("\n");
        let flag = |on: bool| if on { "1" } else { "" };
        s = s
            .set("chk", flag(self.check))
            .raw("\n")
            .set("uc", flag(self.update_cache))
            .raw("\n");
        let (mode, absent, latest, names, files): (&str, bool, bool, &[String], &[String]) =
            match &self.mode {
                Mode::Cache => ("cache", false, false, &[], &[]),
                Mode::Upgrade => ("upgrade", false, false, &[], &[]),
                Mode::Names {
                    absent,
                    latest,
                    names,
                    files,
                } => ("names", *absent, *latest, names, files),
            };
        s = s
            .set("mode", mode)
            .raw("\n")
            .set("absent", flag(absent))
            .raw("\n")
            .set("latest", flag(latest))
            .raw("\n")
            .set("rs", self.reason.map_or("", Reason::flag))
            .raw("\n")
            .set("rall", flag(self.reason_all))
            .raw("\n")
            .set("fl", files.join("\n"))
            .raw("\nset --")
            .cmd(names)
            .raw("\n");

        // The pacman commands, with the arguments Ansible's module gives them.
        s = s.raw("op_sync() { pm -Sy --noprogressbar");
        s = s.cmd(&self.update_cache_extra);
        if self.force {
            s = s.raw("--refresh");
        }
        s = s.raw("\"$@\"; }\n");
        for (func, op, fmt) in [
            ("op_install_plan", "-S", true),
            ("op_install", "-S", false),
            ("op_file_plan", "-U", true),
            ("op_file_install", "-U", false),
        ] {
            s = s
                .raw(func)
                .raw("() { pm --noconfirm --noprogressbar --needed")
                .cmd(&self.extra)
                .raw(op);
            if fmt {
                s = s.raw("--print-format '%n %v'");
            }
            s = s.raw("\"$@\"; }\n");
        }
        for (func, plan) in [("op_remove_plan", true), ("op_remove", false)] {
            s = s
                .raw(func)
                .raw("() { pm -R --noconfirm --noprogressbar")
                .cmd(&self.extra);
            if self.force {
                s = s.raw("--nodeps --nodeps");
            }
            if plan {
                s = s.raw("--print-format '%n-%v'");
            } else if self.remove_nosave {
                s = s.raw("--nosave");
            }
            s = s.raw("\"$@\"; }\n");
        }
        s = s
            .raw("op_upgrade() { pm -Su --quiet --noconfirm")
            .cmd(&self.upgrade_extra)
            .raw("\"$@\"; }\n");
        s.raw(SCRIPT)
    }
}

/// What the task did (or would do), being assembled as Ansible's module does: messages,
/// stdout and stderr of the commands that changed something, joined by newlines.
#[derive(Default)]
struct Exit {
    changed: bool,
    msgs: Vec<String>,
    stdouts: Vec<String>,
    stderrs: Vec<String>,
    result: Map,
    diff: Option<crate::FileDiff>,
}

impl Exit {
    fn info(&mut self, msg: &str, ran: Option<&Ran>) {
        if !msg.is_empty() {
            self.msgs.push(msg.to_string());
        }
        if let Some(r) = ran {
            if !r.stdout.is_empty() {
                self.stdouts.push(r.stdout.clone());
            }
            if !r.stderr.is_empty() {
                self.stderrs.push(r.stderr.clone());
            }
        }
    }

    fn finish(mut self, failed: bool, diff: bool) -> Outcome {
        let mut result = std::mem::take(&mut self.result);
        if !self.stdouts.is_empty() {
            put_text(&mut result, "stdout", &self.stdouts.join("\n"));
        }
        if !self.stderrs.is_empty() {
            put_text(&mut result, "stderr", &self.stderrs.join("\n"));
        }
        Outcome {
            changed: self.changed && !failed,
            failed,
            skipped: false,
            msg: Some(self.msgs.join("\n")),
            result,
            diffs: if diff {
                self.diff.into_iter().collect()
            } else {
                Vec::new()
            },
        }
    }

    /// A failure: `msg` (with pacman's own error lines) and the failed command's output.
    fn fail(mut self, msg: &str, ran: Option<&Ran>) -> Outcome {
        let text = match ran.map(Ran::errors) {
            Some(e) if !e.is_empty() => format!("{msg}: {e}"),
            _ => msg.to_string(),
        };
        self.info(&text, ran);
        if let Some(r) = ran {
            self.result.insert("rc".into(), Value::from(r.status));
        }
        self.finish(true, false)
    }
}

/// `name version` lines (pacman's `--print-format '%n %v'`, `-Q`), without the chatter
/// `-U` prints around them (`loading packages...`, `there is nothing to do`).
fn names_of(lines: &str) -> Vec<(String, String)> {
    lines
        .lines()
        .filter(|l| !l.contains("loading packages") && !l.contains("there is nothing to do"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some(n), Some(v), None) => Some((n.to_string(), v.to_string())),
                _ => None,
            }
        })
        .collect()
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Turn the script's report into the task's result.
fn outcome(plan: &Plan, report: &Report, diff: bool) -> Result<Outcome, ModuleError> {
    if let Some(s) = report.get("missing") {
        return Err(ModuleError::Failed(tools::missing_message(&s.arg)));
    }
    if let Some(s) = report.get("locked") {
        return Ok(Outcome::failed(pacman_lock_message(&s.arg)));
    }
    let mut exit = Exit::default();
    if plan.update_cache {
        let sync = report.ran("sync");
        let cache = report.get("cache").map(|s| s.arg.as_str());
        if plan.check {
            let updated = cache != Some("same");
            exit.result.insert("cache_updated".into(), updated.into());
            if updated {
                exit.changed = true;
                exit.info("Would have updated the package db", None);
            } else {
                exit.info("Package db is up to date", None);
            }
        } else {
            match &sync {
                Some(r) if r.ok() => {
                    let updated = cache == Some("changed");
                    exit.result.insert("cache_updated".into(), updated.into());
                    exit.changed |= updated;
                    exit.info("Updated package db", Some(r));
                }
                Some(r) if lock_failure(r) => {
                    return Ok(Outcome::failed(pacman_lock_message(&lock_path(r))));
                }
                other => {
                    return Ok(exit.fail("could not update package db", other.as_ref()));
                }
            }
        }
    }
    match &plan.mode {
        Mode::Cache => Ok(exit.finish(false, diff)),
        Mode::Upgrade => upgrade_outcome(plan, report, exit, diff),
        Mode::Names { absent: true, .. } => remove_outcome(plan, report, exit, diff),
        Mode::Names { .. } => install_outcome(plan, report, exit, diff),
    }
}

/// A real run that pacman refused because of its lock (a race with another pacman).
fn lock_failure(r: &Ran) -> bool {
    r.status != 0 && r.stderr.contains("unable to lock database")
}

fn lock_path(r: &Ran) -> String {
    r.stderr
        .split_whitespace()
        .find(|w| w.ends_with("db.lck"))
        .unwrap_or("/var/lib/pacman/db.lck")
        .to_string()
}

/// A real command's failure: the lock message when pacman found its lock taken.
fn act_failure(exit: Exit, msg: &str, r: &Ran) -> Outcome {
    if lock_failure(r) {
        Outcome::failed(pacman_lock_message(&lock_path(r)))
    } else {
        exit.fail(msg, Some(r))
    }
}

fn upgrade_outcome(
    plan: &Plan,
    report: &Report,
    mut exit: Exit,
    diff: bool,
) -> Result<Outcome, ModuleError> {
    let Some(qu) = report.ran("qu") else {
        return Err(ModuleError::Failed(
            "pacman did not report its upgradable packages".into(),
        ));
    };
    if qu.status > 1 || (qu.status == 1 && !qu.stdout.trim().is_empty()) {
        return Ok(exit.fail(
            "Couldn't get list of packages available for upgrade",
            Some(&qu),
        ));
    }
    let mut upgradable: Vec<(String, String, String)> = Vec::new();
    for line in qu.stdout.lines() {
        if line.contains("[ignored]") {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if let [name, current, "->", latest] = w.as_slice() {
            upgradable.push((name.to_string(), current.to_string(), latest.to_string()));
        }
    }
    if upgradable.is_empty() {
        exit.result
            .insert("packages".into(), Value::Array(Vec::new()));
        exit.info("Nothing to upgrade", None);
        return Ok(exit.finish(false, diff));
    }
    exit.changed = true;
    exit.diff = Some(list_diff(
        upgradable
            .iter()
            .map(|(n, c, _)| format!("{n}-{c}"))
            .collect(),
        upgradable
            .iter()
            .map(|(n, _, l)| format!("{n}-{l}"))
            .collect(),
    ));
    let names: Vec<Value> = upgradable
        .iter()
        .map(|(n, _, _)| Value::from(n.as_str()))
        .collect();
    exit.result.insert("packages".into(), Value::Array(names));
    if plan.check {
        exit.info(
            &format!("{} packages would have been upgraded", upgradable.len()),
            None,
        );
        return Ok(exit.finish(false, diff));
    }
    match report.ran("upgrade") {
        Some(r) if r.ok() => {
            exit.info("System upgraded", Some(&r));
            Ok(exit.finish(false, diff))
        }
        Some(r) => Ok(act_failure(exit, "Could not upgrade", &r)),
        None => Ok(exit.fail("Could not upgrade", None)),
    }
}

fn remove_outcome(
    plan: &Plan,
    report: &Report,
    mut exit: Exit,
    diff: bool,
) -> Result<Outcome, ModuleError> {
    let Some(rplan) = report.ran("rplan") else {
        exit.result
            .insert("packages".into(), Value::Array(Vec::new()));
        exit.info("package(s) already absent", None);
        return Ok(exit.finish(false, diff));
    };
    if !rplan.ok() {
        return Ok(exit.fail("failed to list package(s) to remove", Some(&rplan)));
    }
    let removed = lines_of(&rplan.stdout);
    exit.changed = true;
    exit.diff = Some(list_diff(removed.clone(), Vec::new()));
    let names: Vec<Value> = removed.iter().map(|n| Value::from(n.as_str())).collect();
    exit.result.insert("packages".into(), Value::Array(names));
    if plan.check {
        exit.info(
            &format!("Would have removed {} packages", removed.len()),
            None,
        );
        return Ok(exit.finish(false, diff));
    }
    match report.ran("remove") {
        Some(r) if r.ok() => {
            exit.info(&format!("Removed {} package(s)", removed.len()), Some(&r));
            Ok(exit.finish(false, diff))
        }
        Some(r) => Ok(act_failure(exit, "failed to remove package(s)", &r)),
        None => Ok(exit.fail("failed to remove package(s)", None)),
    }
}

fn install_outcome(
    plan: &Plan,
    report: &Report,
    mut exit: Exit,
    diff: bool,
) -> Result<Outcome, ModuleError> {
    // Dry runs first: what would be installed, and whether the names exist at all.
    let mut to_install: Vec<(String, String)> = Vec::new();
    for key in ["plan", "fplan"] {
        if let Some(r) = report.ran(key) {
            if !r.ok() {
                return Ok(exit.fail("Failed to list package(s) to install", Some(&r)));
            }
            to_install.extend(names_of(&r.stdout));
        }
    }
    let Some(installed) = report.get("installed") else {
        exit.result
            .insert("packages".into(), Value::Array(Vec::new()));
        exit.info("package(s) already installed", None);
        return Ok(exit.finish(false, diff));
    };
    let installed = names_of(&installed.body);
    let explicit = lines_of(report.get("explicit").map_or("", |s| &s.body));
    let set_reason = lines_of(report.get("reasons").map_or("", |s| &s.body));
    let reason_of = |name: &str| -> Option<&'static str> {
        installed.iter().find(|(n, _)| n == name).map(|_| {
            if explicit.iter().any(|e| e == name) {
                "explicit"
            } else {
                "dependency"
            }
        })
    };
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut installed_names: Vec<String> = Vec::new();
    for (name, version) in &to_install {
        if installed_names.contains(name) {
            continue;
        }
        if let Some((_, old)) = installed.iter().find(|(n, _)| n == name) {
            before.push(format!(
                "{name}-{old}-{}",
                reason_of(name).unwrap_or("dependency")
            ));
        }
        match (
            plan.reason.filter(|_| set_reason.contains(name)),
            reason_of(name),
        ) {
            (Some(r), _) => after.push(format!("{name}-{version}-{}", r.word())),
            (None, Some(r)) => after.push(format!("{name}-{version}-{r}")),
            (None, None) => after.push(format!("{name}-{version}")),
        }
        installed_names.push(name.clone());
    }
    let mut changed_reason: Vec<String> = Vec::new();
    for name in &set_reason {
        if !installed_names.contains(name) && !changed_reason.contains(name) {
            if let (Some(r), Some((_, v))) =
                (plan.reason, installed.iter().find(|(n, _)| n == name))
            {
                before.push(format!(
                    "{name}-{v}-{}",
                    reason_of(name).unwrap_or("dependency")
                ));
                after.push(format!("{name}-{v}-{}", r.word()));
            }
            changed_reason.push(name.clone());
        }
    }
    if installed_names.is_empty() && changed_reason.is_empty() {
        exit.result
            .insert("packages".into(), Value::Array(Vec::new()));
        exit.info("package(s) already installed", None);
        return Ok(exit.finish(false, diff));
    }
    exit.changed = true;
    exit.diff = Some(list_diff(before, after));
    let mut packages: Vec<String> = installed_names
        .iter()
        .chain(changed_reason.iter())
        .cloned()
        .collect();
    packages.sort();
    let count = packages.len();
    exit.result.insert(
        "packages".into(),
        Value::Array(packages.into_iter().map(Value::from).collect()),
    );
    if plan.check {
        exit.info(&format!("Would have installed {count} packages"), None);
        return Ok(exit.finish(false, diff));
    }
    let mut acted = false;
    for key in ["install", "finstall", "reason"] {
        if let Some(r) = report.ran(key) {
            acted = true;
            if !r.ok() {
                return Ok(act_failure(exit, "Failed to install package(s)", &r));
            }
            exit.info("", Some(&r));
        }
    }
    if !acted {
        return Ok(exit.fail("Failed to install package(s)", None));
    }
    exit.info(&format!("Installed {count} package(s)"), None);
    Ok(exit.finish(false, diff))
}

impl Module for Pacman {
    fn name(&self) -> &'static str {
        "pacman"
    }
    fn collections(&self) -> &'static [&'static str] {
        &["community.general"]
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<PacmanArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: PacmanArgs = args::parse("pacman", args)?;
        let Some(plan) = Plan::from_args(a, ctx.check)? else {
            return Ok(Outcome::ok().with_msg(""));
        };
        let out = ctx.host.exec(&Cmd::script(plan.script()))?;
        tools::missing_tool(&out)?;
        let report = Report::parse(&out.stdout_str());
        if !out.success() && report.sections.is_empty() {
            return Err(ModuleError::Failed(format!(
                "pacman could not run on the target: {}",
                out.stderr_str().trim()
            )));
        }
        outcome(&plan, &report, ctx.diff)
    }
}

#[cfg(test)]
mod tests;
