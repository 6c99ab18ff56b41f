//! Tests of the `pacman` module: arguments, the report-to-result mapping on fixed outputs,
//! and the whole script against a real pacman working on a throwaway root (skipped where
//! pacman, repo-add or root are missing).

use super::*;
use crate::local::LocalHost;
use crate::{Host, Value};
use serde_json::json;
use std::path::{Path, PathBuf};

fn map(v: Value) -> Map {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn plan(v: Value, check: bool) -> Result<Option<Plan>, ModuleError> {
    let a: PacmanArgs = args::parse("pacman", &map(v))?;
    Plan::from_args(a, check)
}

#[test]
fn arguments_are_checked_as_ansible_does() {
    let err = plan(json!({"state": "present"}), false).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "one of the following is required: name, update_cache, upgrade"
    );
    let err = plan(json!({"name": "a", "upgrade": true}), false).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "parameters are mutually exclusive: name|upgrade"
    );
    let err = plan(json!({"name": "a", "state": "gone"}), false).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "value of state must be one of: present, installed, latest, absent, removed, got: gone"
    );
    let err = plan(json!({"name": "a", "extra_args": "--x 'y"}), false).expect_err("refused");
    assert!(
        err.to_string().starts_with("extra_args: cannot split"),
        "{err}"
    );
    assert!(plan(json!({"update_cache": false}), false)
        .expect("parses")
        .is_none());
}

#[test]
fn names_aliases_and_comma_lists() {
    let p = plan(json!({"pkg": "a, b,c", "state": "removed"}), false)
        .expect("parses")
        .expect("something to do");
    assert_eq!(
        p.mode,
        Mode::Names {
            absent: true,
            latest: false,
            names: vec!["a".into(), "b".into(), "c".into()],
            files: vec![],
        }
    );
    let p = plan(
        json!({"package": ["x", "/tmp/y-1.0-1-any.pkg.tar.zst", "https://h/z-q-2-1-x86_64.pkg.tar.xz"], "state": "absent"}),
        false,
    )
    .expect("parses")
    .expect("something to do");
    assert_eq!(
        p.mode,
        Mode::Names {
            absent: true,
            latest: false,
            names: vec!["x".into(), "z-q".into()],
            files: vec!["/tmp/y-1.0-1-any.pkg.tar.zst".into()],
        }
    );
}

#[test]
fn package_files_are_told_from_names() {
    assert!(is_package_file("/root/foo-1.0-1-any.pkg.tar.zst"));
    assert!(is_package_file("foo-1.0-1-any.pkg.tar"));
    assert!(is_package_file("https://example.org/foo"));
    assert!(!is_package_file("foo"));
    assert!(!is_package_file("core/foo"));
    assert!(!is_package_file("foo.pkg.tarball"));
    assert_eq!(
        name_of_package_file("/x/python-foo-1.2.3-4-x86_64.pkg.tar.zst"),
        "python-foo"
    );
}

#[test]
fn the_script_quotes_every_value() {
    let p = plan(
        json!({"name": ["a b'$(touch /tmp/x)"], "extra_args": "--overwrite '/usr/lib/*'", "force": true, "state": "absent"}),
        false,
    )
    .expect("parses")
    .expect("something to do");
    let s = p.script().to_string();
    assert!(
        s.contains("set -- \"a b'\"'$(touch /tmp/x)'"),
        "names are quoted: {s}"
    );
    assert!(
        s.contains("op_remove () { pm -R --noconfirm --noprogressbar --overwrite '/usr/lib/*' --nodeps --nodeps \"$@\"; }"),
        "{s}"
    );
}

/// What the script prints for these sections: `(key, arg, body)`, as `sec` and `run` print them.
fn report(sections: &[(&str, &str, &str)]) -> Report {
    let mut text = String::new();
    for (key, arg, body) in sections {
        text.push_str(&format!("\n::play:: {key} {arg}\n{body}"));
    }
    Report::parse(&text)
}

fn names_plan(absent: bool, latest: bool, check: bool) -> Plan {
    plan(
        json!({"name": ["hello-b"], "state": if absent { "absent" } else if latest { "latest" } else { "present" }}),
        check,
    )
    .expect("parses")
    .expect("something to do")
}

#[test]
fn an_install_reports_packages_diff_and_output() {
    let r = report(&[
        ("installed", "", "\n"),
        ("explicit", "", "\n"),
        ("reasons", "", "\n"),
        ("plan", "0", "hello-c 1.0-1\nhello-b 1.0-1\n"),
        ("plan.err", "", ""),
        (
            "install",
            "0",
            "installing hello-c...\ninstalling hello-b...\n",
        ),
        ("install.err", "", ""),
    ]);
    let o = outcome(&names_plan(false, false, false), &r, true).expect("outcome");
    assert!(o.changed && !o.failed);
    assert_eq!(o.msg.as_deref(), Some("Installed 2 package(s)"));
    assert_eq!(o.result["packages"], json!(["hello-b", "hello-c"]));
    assert_eq!(
        o.result["stdout_lines"],
        json!(["installing hello-c...", "installing hello-b..."])
    );
    assert_eq!(o.diffs[0].before, "");
    assert_eq!(o.diffs[0].after, "hello-b-1.0-1\nhello-c-1.0-1\n");

    let o = outcome(&names_plan(false, false, true), &r, false).expect("outcome");
    assert_eq!(o.msg.as_deref(), Some("Would have installed 2 packages"));
    assert!(o.diffs.is_empty() && !o.result.contains_key("stdout"));
}

#[test]
fn converged_and_failing_installs() {
    let o = outcome(&names_plan(false, false, false), &report(&[]), true).expect("outcome");
    assert!(!o.changed);
    assert_eq!(o.msg.as_deref(), Some("package(s) already installed"));
    assert_eq!(o.result["packages"], json!([]));

    let r = report(&[
        ("installed", "", "\n"),
        ("explicit", "", "\n"),
        ("reasons", "", "\n"),
        ("plan", "1", ""),
        ("plan.err", "", "error: target not found: no-such-pkg\n"),
    ]);
    let o = outcome(&names_plan(false, false, false), &r, false).expect("outcome");
    assert!(o.failed);
    assert_eq!(
        o.msg.as_deref(),
        Some("Failed to list package(s) to install: error: target not found: no-such-pkg")
    );
    assert_eq!(o.result["rc"], json!(1));

    let o = outcome(
        &names_plan(false, false, false),
        &report(&[("locked", "/var/lib/pacman/db.lck", "")]),
        false,
    )
    .expect("outcome");
    assert_eq!(
        o.msg.as_deref(),
        Some("pacman's database is locked by /var/lib/pacman/db.lck: another pacman is running, or a crashed one left it; remove it if no pacman runs")
    );
}

#[test]
fn removals_and_upgrades() {
    let r = report(&[
        ("rplan", "0", "hello-b-1.0-1\n"),
        ("rplan.err", "", ""),
        ("remove", "0", "removing hello-b...\n"),
        ("remove.err", "", ""),
    ]);
    let o = outcome(&names_plan(true, false, false), &r, true).expect("outcome");
    assert_eq!(o.msg.as_deref(), Some("Removed 1 package(s)"));
    assert_eq!(o.result["packages"], json!(["hello-b-1.0-1"]));
    assert_eq!(
        (o.diffs[0].before.as_str(), o.diffs[0].after.as_str()),
        ("hello-b-1.0-1\n", "")
    );
    let o = outcome(&names_plan(true, false, false), &report(&[]), true).expect("outcome");
    assert_eq!(
        (o.changed, o.msg.as_deref()),
        (false, Some("package(s) already absent"))
    );

    let up = plan(json!({"upgrade": true}), true)
        .expect("parses")
        .expect("something");
    let r = report(&[
        ("qu", "0", "a 1.0-1 -> 1.1-1\nb 2-1 -> 3-1 [ignored]\n"),
        ("qu.err", "", ""),
    ]);
    let o = outcome(&up, &r, true).expect("outcome");
    assert_eq!(
        (o.changed, o.msg.as_deref()),
        (true, Some("1 packages would have been upgraded"))
    );
    assert_eq!(
        (o.diffs[0].before.as_str(), o.diffs[0].after.as_str()),
        ("a-1.0-1\n", "a-1.1-1\n")
    );
    let r = report(&[("qu", "1", ""), ("qu.err", "", "")]);
    let o = outcome(&up, &r, true).expect("outcome");
    assert_eq!(
        (o.changed, o.msg.as_deref()),
        (false, Some("Nothing to upgrade"))
    );
}

#[test]
fn a_cache_refresh_is_a_change_only_when_a_database_changed() {
    let p = plan(json!({"update_cache": true}), false)
        .expect("parses")
        .expect("something");
    let same = report(&[
        ("sync", "0", ":: Synchronizing package databases...\n"),
        ("sync.err", "", ""),
        ("cache", "same", ""),
    ]);
    let o = outcome(&p, &same, false).expect("outcome");
    assert_eq!(
        (o.changed, o.msg.as_deref()),
        (false, Some("Updated package db"))
    );
    assert_eq!(o.result["cache_updated"], json!(false));
    let changed = report(&[
        ("sync", "0", ""),
        ("sync.err", "", ""),
        ("cache", "changed", ""),
    ]);
    let o = outcome(&p, &changed, false).expect("outcome");
    assert_eq!(
        (o.changed, &o.result["cache_updated"]),
        (true, &json!(true))
    );

    let chk = plan(json!({"update_cache": true}), true)
        .expect("parses")
        .expect("something");
    let o = outcome(&chk, &report(&[("cache", "unknown", "")]), false).expect("outcome");
    assert_eq!(
        (o.changed, o.msg.as_deref()),
        (true, Some("Would have updated the package db"))
    );
    let o = outcome(&chk, &same, false).expect("outcome");
    assert!(!o.changed);

    let failed = report(&[
        ("sync", "1", ""),
        ("sync.err", "", "error: failed retrieving file 'x.db'\n"),
    ]);
    let o = outcome(&p, &failed, false).expect("outcome");
    assert_eq!(
        o.msg.as_deref(),
        Some("could not update package db: error: failed retrieving file 'x.db'")
    );
}

/// A pacman working on a root of its own: a repository `[playtest]` of built packages, and
/// an executable wrapper pointing pacman at the sandbox's configuration.
struct Sandbox {
    dir: tempfile::TempDir,
    /// Publications so far: each dates the repository a minute later than the last, as
    /// pacman fetches a `file://` database only when it is newer (by the second).
    published: std::cell::Cell<i64>,
}

fn sh(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Sandbox {
    /// `None` (the test is skipped) without pacman, repo-add, bsdtar or root.
    fn new() -> Option<Sandbox> {
        if !sh("command -v pacman && command -v repo-add && command -v bsdtar && [ \"$(id -u)\" = 0 ] >/dev/null 2>&1")
        {
            eprintln!("skipped: needs root, pacman, repo-add and bsdtar");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        for sub in [
            "root/var/lib/pacman",
            "root/var/cache/pacman/pkg",
            "repo",
            "hooks",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let conf = format!(
            "[options]\nRootDir = {d}/root\nDBPath = {d}/root/var/lib/pacman/\n\
             CacheDir = {d}/root/var/cache/pacman/pkg/\nLogFile = {d}/root/pacman.log\n\
             HookDir = {d}/hooks/\nGPGDir = {d}/gnupg/\nArchitecture = auto\nSigLevel = Never\n\
             [playtest]\nSigLevel = Never\nServer = file://{d}/repo\n"
        );
        std::fs::write(dir.path().join("pacman.conf"), conf).expect("conf");
        // Written by a child process: a file this (multi-threaded) process had open for
        // writing could be inherited by another test's fork and make exec fail (ETXTBSY).
        assert!(sh(&format!(
            "printf '#!/bin/sh\\nexec pacman --config {d}/pacman.conf \"$@\"\\n' >{d}/pacman && chmod 755 {d}/pacman"
        )));
        let sb = Sandbox {
            dir,
            published: std::cell::Cell::new(0),
        };
        sb.publish("hello-a", "1.0", None);
        sb.publish("hello-c", "1.0", None);
        sb.publish("hello-b", "1.0", Some("hello-c"));
        Some(sb)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn exe(&self) -> PathBuf {
        self.path().join("pacman")
    }

    /// Build `name-version-1-any.pkg.tar.xz` and add it to the repository.
    fn publish(&self, name: &str, version: &str, depends: Option<&str>) {
        let work = self.path().join(format!("build-{name}-{version}"));
        std::fs::create_dir_all(work.join("usr/share").join(name)).expect("mkdir");
        std::fs::write(work.join("usr/share").join(name).join("README"), name).expect("file");
        let mut info = format!(
            "pkgname = {name}\npkgbase = {name}\npkgver = {version}-1\npkgdesc = test\n\
             builddate = 1700000000\npackager = test\nsize = 4\narch = any\n"
        );
        if let Some(d) = depends {
            info.push_str(&format!("depend = {d}\n"));
        }
        std::fs::write(work.join(".PKGINFO"), info).expect("pkginfo");
        let pkg = self
            .path()
            .join(format!("repo/{name}-{version}-1-any.pkg.tar.xz"));
        self.published.set(self.published.get() + 1);
        assert!(sh(&format!(
            "cd {} && bsdtar -cJf {} .PKGINFO usr && repo-add -q {r}/playtest.db.tar.gz {} >/dev/null 2>&1 \
             && touch -d @{} {r}/playtest.db.tar.gz",
            work.display(),
            pkg.display(),
            pkg.display(),
            1_700_000_000 + 60 * self.published.get(),
            r = self.path().join("repo").display(),
        )));
    }

    fn pacman(&self, args: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} {args}", self.exe().display()))
            .output()
            .expect("pacman");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run(&self, mut args: Value, check: bool) -> Outcome {
        args["executable"] = json!(self.exe().display().to_string());
        let facts = Map::new();
        let mut host = LocalHost::new("localhost");
        let mut ctx = Ctx {
            host: &mut host as &mut dyn Host,
            check,
            diff: true,
            facts: &facts,
        };
        Pacman.run(&mut ctx, &map(args)).expect("module runs")
    }

    /// Check run (nothing may change), real run (changed), second run (ok).
    fn converge(&self, args: Value) -> (Outcome, Outcome) {
        let before = self.pacman("-Q");
        let check = self.run(args.clone(), true);
        assert!(check.changed && !check.failed, "check: {check:?}");
        assert_eq!(self.pacman("-Q"), before, "check mode changed the packages");
        let first = self.run(args.clone(), false);
        assert!(first.changed && !first.failed, "first: {first:?}");
        assert_eq!(
            check.result.get("packages"),
            first.result.get("packages"),
            "check predicted other packages"
        );
        let second = self.run(args, false);
        assert!(!second.changed && !second.failed, "second: {second:?}");
        (check, first)
    }
}

#[test]
fn a_real_pacman_installs_upgrades_and_removes() {
    let Some(sb) = Sandbox::new() else { return };
    let (check, first) = sb.converge(json!({"name": "hello-b", "update_cache": true}));
    assert_eq!(check.result["cache_updated"], json!(true));
    assert_eq!(first.result["packages"], json!(["hello-b", "hello-c"]));
    assert_eq!(
        first.msg.as_deref(),
        Some("Updated package db\nInstalled 2 package(s)")
    );
    assert_eq!(sb.pacman("-Q"), "hello-b 1.0-1\nhello-c 1.0-1\n");
    assert_eq!(sb.pacman("-Qqd"), "hello-c\n");

    // Nothing new in the repository: refreshing changes nothing.
    let o = sb.run(json!({"update_cache": true}), true);
    assert!(!o.changed, "{o:?}");
    let o = sb.run(json!({"update_cache": true}), false);
    assert!(!o.changed, "{o:?}");

    sb.publish("hello-c", "1.1", None);
    let (check, _) = sb
        .converge(json!({"name": ["hello-b", "hello-c"], "state": "latest", "update_cache": true}));
    assert_eq!(check.result["packages"], json!(["hello-c"]));
    assert_eq!(check.diffs[0].before, "hello-c-1.0-1-dependency\n");
    assert_eq!(check.diffs[0].after, "hello-c-1.1-1-dependency\n");
    assert_eq!(sb.pacman("-Q hello-c"), "hello-c 1.1-1\n");

    sb.converge(json!({"name": "hello-c", "reason": "explicit", "reason_for": "all"}));
    assert_eq!(sb.pacman("-Qqe"), "hello-b\nhello-c\n");

    let (_, first) = sb.converge(json!({"name": "hello-b", "state": "absent"}));
    assert_eq!(first.msg.as_deref(), Some("Removed 1 package(s)"));
    assert_eq!(sb.pacman("-Qq"), "hello-c\n");

    let o = sb.run(json!({"name": ["hello-a", "no-such-pkg"]}), true);
    assert!(o.failed);
    assert_eq!(
        o.msg.as_deref(),
        Some("Failed to list package(s) to install: error: target not found: no-such-pkg")
    );

    // Had the shell seen this name as code, pacman would name something else.
    let hostile = "a b'$(id)`id`;\"x";
    let o = sb.run(json!({"name": hostile}), false);
    assert_eq!(
        o.msg,
        Some(format!(
            "Failed to list package(s) to install: error: target not found: {hostile}"
        ))
    );

    std::fs::write(sb.path().join("root/var/lib/pacman/db.lck"), "").expect("lock");
    let o = sb.run(json!({"name": "hello-a"}), false);
    let lock = sb.path().join("root/var/lib/pacman/db.lck");
    assert_eq!(
        o.msg,
        Some(pacman_lock_message(&lock.display().to_string())),
        "{o:?}"
    );
    assert!(lock.exists(), "the lock file is left alone");
    // Converged tasks need no lock.
    let o = sb.run(json!({"name": "hello-c"}), false);
    assert!(!o.failed && !o.changed, "{o:?}");
}

#[test]
fn a_real_pacman_installs_files_and_upgrades_the_system() {
    let Some(sb) = Sandbox::new() else { return };
    let file = sb.path().join("repo/hello-a-1.0-1-any.pkg.tar.xz");
    let (_, first) = sb.converge(json!({"name": [file.display().to_string()]}));
    assert_eq!(first.result["packages"], json!(["hello-a"]));
    assert_eq!(sb.pacman("-Q"), "hello-a 1.0-1\n");
    sb.converge(json!({"name": [file.display().to_string()], "state": "absent"}));
    assert_eq!(sb.pacman("-Q"), "");

    sb.run(json!({"name": "hello-a", "update_cache": true}), false);
    sb.publish("hello-a", "1.1", None);
    let (check, _) = sb.converge(json!({"upgrade": true, "update_cache": true}));
    assert_eq!(check.result["packages"], json!(["hello-a"]));
    assert_eq!(sb.pacman("-Q"), "hello-a 1.1-1\n");
}
