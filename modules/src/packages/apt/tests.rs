//! Tests of the `apt` module: arguments, Debian version order, Ansible's install decisions,
//! and what the module sends for given target outputs (a host that answers with fixed
//! outputs and keeps the scripts it was sent).

use super::*;
use crate::{FileAttrs, Host, HostError, Output};
use serde_json::json;

fn map(v: Value) -> Map {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn plan(v: Value, check: bool) -> Result<Plan, ModuleError> {
    let a: AptArgs = args::parse("apt", &map(v))?;
    Plan::from_args(a, check)
}

#[test]
fn debian_versions_are_ordered_as_dpkg_orders_them() {
    use Ordering::*;
    for (a, b, want) in [
        ("1.0", "1.1", Less),
        ("1.0~rc1", "1.0", Less),
        ("1:0.1", "2.0", Greater),
        ("1.0-1", "1.0-2", Less),
        ("1.0a", "1.0", Greater),
        ("2.0", "2.00", Equal),
        ("1.10", "1.9", Greater),
        ("5.2.15-2+b8", "5.2.15-2+b13", Less),
        ("1.0+dfsg-1", "1.0-1", Greater),
        ("0:1.0", "1.0", Equal),
    ] {
        assert_eq!(deb_version_cmp(a, b), want, "{a} vs {b}");
        assert_eq!(deb_version_cmp(b, a), want.reverse(), "{b} vs {a}");
    }
}

#[test]
fn specs_split_as_ansible_splits_them() {
    assert_eq!(
        Spec::parse("foo=1.0*"),
        Spec {
            name: "foo".into(),
            cmp: Some("=".into()),
            version: Some("1.0*".into())
        }
    );
    assert_eq!(Spec::parse("foo>=2").cmp.as_deref(), Some(">="));
    assert_eq!(Spec::parse("foo").cmp, None);
    assert!(Spec::parse("play-*").is_pattern());
    assert_eq!(Spec::parse("play-h*").prefix(), "play-h");
}

#[test]
fn arguments_are_checked_as_ansible_does() {
    let err = plan(json!({"name": "a", "deb": "/x.deb"}), false).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "parameters are mutually exclusive: deb|package|upgrade"
    );
    let err = plan(json!({"name": "a=1=2"}), false).expect_err("refused");
    assert_eq!(err.to_string(), "invalid package spec: a=1=2");
    let err = plan(json!({"deb": "/x.deb", "state": "absent"}), false).expect_err("refused");
    assert_eq!(err.to_string(), "deb only supports state=present");
    let err = plan(json!({"upgrade": "sometimes"}), false).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "value of upgrade must be one of: dist, full, no, safe, yes, got: sometimes"
    );
    let err = plan(json!({"name": ["*", "x"], "state": "latest"}), false).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "unable to install additional packages when upgrading all installed packages"
    );
    let p = plan(json!({"upgrade": true}), false).expect("parses");
    assert_eq!(p.action(), Action::Upgrade(Upgrade::Safe));
    let p = plan(json!({"cache_valid_time": 3600}), false).expect("parses");
    assert!(p.update);
    assert_eq!(p.action(), Action::CacheOnly);
    let p = plan(json!({"name": "*", "state": "latest"}), false).expect("parses");
    assert_eq!(p.action(), Action::Upgrade(Upgrade::Safe));
    let p = plan(
        json!({"pkg": "a", "dpkg_options": "force-confnew", "lock_timeout": 5}),
        false,
    )
    .expect("parses");
    assert_eq!(
        p.install_args("install"),
        vec![
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confnew",
            "-o",
            "DPkg::Lock::Timeout=5"
        ]
    );
}

const POLICY: &str = "play-hello:
  Installed: 1.0
  Candidate: 1.1
  Version table:
     1.1 500
        500 file:/srv/apt ./ Packages
 *** 1.0 100
        100 /var/lib/dpkg/status
play-dep:
  Installed: (none)
  Candidate: 1.0
  Version table:
     1.0 500
        500 file:/srv/apt ./ Packages
mail-transport-agent:
  Installed: (none)
  Candidate: (none)
  Version table:
";

#[test]
fn policy_output_is_read() {
    let p = parse_policy(POLICY);
    assert_eq!(
        p,
        vec![
            (
                "play-hello".to_string(),
                Some("1.1".to_string()),
                vec!["1.1".to_string(), "1.0".to_string()]
            ),
            (
                "play-dep".to_string(),
                Some("1.0".to_string()),
                vec!["1.0".to_string()]
            ),
            ("mail-transport-agent".to_string(), None, vec![]),
        ]
    );
}

fn state(installed: Option<&str>, candidate: Option<&str>, versions: &[&str]) -> PkgState {
    PkgState {
        dpkg_state: installed.map(|_| "installed".to_string()),
        installed_version: installed.map(str::to_string),
        known: candidate.is_some() || !versions.is_empty() || installed.is_some(),
        candidate: candidate.map(str::to_string),
        versions: versions.iter().map(|v| v.to_string()).collect(),
        auto: false,
    }
}

#[test]
fn install_decisions_follow_ansible() {
    let s = |t: &str| Spec::parse(t);
    let hello = state(Some("1.0"), Some("1.1"), &["1.1", "1.0"]);
    // present: installed is enough; latest: the candidate.
    assert_eq!(
        decide_install(&s("play-hello"), &hello, false, false),
        Ok(Install::Keep)
    );
    assert_eq!(
        decide_install(&s("play-hello"), &hello, true, false),
        Ok(Install::Install("play-hello=1.1".into()))
    );
    // Version specs: fnmatch patterns and >=.
    assert_eq!(
        decide_install(&s("play-hello=1.0"), &hello, false, false),
        Ok(Install::Keep)
    );
    assert_eq!(
        decide_install(&s("play-hello=1.1"), &hello, false, false),
        Ok(Install::Install("play-hello=1.1".into()))
    );
    assert_eq!(
        decide_install(&s("play-hello=1.*"), &hello, false, false),
        Ok(Install::Install("play-hello=1.*".into())),
        "Ansible's legacy wildcard case"
    );
    assert_eq!(
        decide_install(&s("play-hello>=1.1"), &hello, false, false),
        Ok(Install::Install("play-hello=1.1".into()))
    );
    assert_eq!(
        decide_install(&s("play-hello=2.0"), &hello, false, false),
        Err("no available installation candidate for play-hello=2.0".into())
    );
    let dep = state(None, Some("1.0"), &["1.0"]);
    assert_eq!(
        decide_install(&s("play-dep"), &dep, false, false),
        Ok(Install::Install("play-dep=1.0".into()))
    );
    assert_eq!(
        decide_install(&s("play-dep"), &dep, false, true),
        Ok(Install::Keep),
        "only_upgrade leaves what is not installed"
    );
    assert_eq!(
        decide_install(&s("no-such-pkg"), &PkgState::default(), false, false),
        Err("No package matching 'no-such-pkg' is available".into())
    );
    let virt = PkgState {
        known: true,
        ..PkgState::default()
    };
    assert_eq!(
        decide_install(&s("mail-transport-agent"), &virt, false, false),
        Ok(Install::Install("mail-transport-agent".into()))
    );
}

#[test]
fn removal_decisions() {
    let s = |t: &str| Spec::parse(t);
    let hello = state(Some("1.0"), Some("1.1"), &[]);
    assert!(decide_remove(&s("play-hello"), &hello, false));
    assert!(!decide_remove(&s("play-hello=2*"), &hello, false));
    let gone = PkgState {
        dpkg_state: Some("config-files".into()),
        ..PkgState::default()
    };
    assert!(!decide_remove(&s("play-hello"), &gone, false));
    assert!(decide_remove(&s("play-hello"), &gone, true));
    assert!(!decide_remove(&s("x"), &PkgState::default(), true));
}

#[test]
fn simulated_lines_make_the_diff() {
    let d = simulated_diff(
        "Inst play-dep (1.0 local [all])\nInst play-hello [1.0] (1.1 local [all])\nConf play-dep (1.0 local [all])\nRemv old [2.0]\n",
    );
    assert_eq!(d.before, "old 2.0\nplay-hello 1.0\n");
    assert_eq!(d.after, "play-dep 1.0\nplay-hello 1.1\n");
}

/// A host that answers each exec with the next fixed output and keeps the scripts.
struct Scripted {
    answers: Vec<String>,
    sent: Vec<String>,
}

impl Host for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
        self.sent.push(cmd.to_shell());
        let stdout = if self.answers.is_empty() {
            String::new()
        } else {
            self.answers.remove(0)
        };
        Ok(Output {
            status: 0,
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        })
    }
    fn put(&mut self, _: &[u8], _: &str, _: &FileAttrs) -> Result<(), HostError> {
        Ok(())
    }
    fn get(&mut self, _: &str) -> Result<Vec<u8>, HostError> {
        Ok(Vec::new())
    }
}

fn sections(list: &[(&str, &str, &str)]) -> String {
    list.iter()
        .map(|(k, a, b)| format!("\n::play:: {k} {a}\n{b}"))
        .collect()
}

fn scripted(args: Value, check: bool, answers: Vec<String>) -> (Outcome, Vec<String>) {
    let mut host = Scripted {
        answers,
        sent: Vec::new(),
    };
    let facts = Map::new();
    let mut ctx = Ctx {
        host: &mut host,
        check,
        diff: true,
        facts: &facts,
    };
    let o = Apt.run(&mut ctx, &map(args)).expect("runs");
    (o, host.sent)
}

#[test]
fn a_converged_package_costs_one_exec() {
    let probe = sections(&[
        ("mtime", "1700000000", ""),
        ("dpkg", "", "play-hello\tinstall ok installed\t1.0\n\n"),
        ("auto", "", ""),
    ]);
    let (o, sent) = scripted(json!({"name": "play-hello"}), false, vec![probe]);
    assert_eq!(sent.len(), 1);
    assert!(!o.changed && !o.failed, "{o:?}");
    assert_eq!(o.result["cache_updated"], json!(false));
    assert_eq!(o.result["cache_update_time"], json!(1700000000));
    assert!(sent[0].contains("set -- play-hello \n"), "{}", sent[0]);
}

#[test]
fn what_the_probe_found_decides_what_apt_get_gets() {
    let probe = sections(&[
        ("cache", "ran 100 200", ""),
        ("mtime", "200", ""),
        (
            "dpkg",
            "",
            "play-hello\tinstall ok installed\t1.0\nplay-dep\tdeinstall ok config-files\t1.0\n",
        ),
        ("policy", "", POLICY),
        ("auto", "", "play-hello\n"),
    ]);
    let act = sections(&[
        (
            "sim",
            "0",
            "Inst play-hello [1.0] (1.1 local [all])\nInst play-dep (1.0 local [all])\n",
        ),
        ("sim.err", "", ""),
        ("action", "0", "Setting up play-dep (1.0) ...\n"),
        ("action.err", "", ""),
    ]);
    let (o, sent) = scripted(
        json!({"name": ["play-hello", "play-dep"], "state": "latest", "update_cache": true, "install_recommends": false}),
        false,
        vec![probe, act],
    );
    assert_eq!(sent.len(), 2);
    assert!(o.changed && !o.failed, "{o:?}");
    assert!(
        sent[1].contains("set -- 'play-hello=1.1' 'play-dep=1.0' \n"),
        "{}",
        sent[1]
    );
    assert!(
        sent[1].contains(
            "op() { ao apt-get -y -q -o 'Dpkg::Options::=--force-confdef' -o 'Dpkg::Options::=--force-confold' -o 'DPkg::Lock::Timeout=60' -o 'APT::Install-Recommends=no' \"$@\"; }"
        ),
        "{}",
        sent[1]
    );
    assert!(sent[1].contains("mk=''"), "nothing to mark: {}", sent[1]);
    assert_eq!(o.result["cache_updated"], json!(true));
    assert_eq!(o.result["cache_update_time"], json!(200));
    assert_eq!(
        o.result["stdout_lines"],
        json!(["Setting up play-dep (1.0) ..."])
    );
    assert_eq!(o.diffs[0].after, "play-dep 1.0\nplay-hello 1.1\n");
}

#[test]
fn check_modes_copy_of_the_lists_is_used_then_removed() {
    let probe = sections(&[
        ("cache", "would 1", ""),
        ("tmplists", "/tmp/play-apt-lists.x1", ""),
        ("mtime", "1", ""),
        ("dpkg", "", "\n"),
        ("policy", "", POLICY),
    ]);
    let (o, sent) = scripted(
        json!({"name": "play-dep", "update_cache": true}),
        true,
        vec![probe, String::new()],
    );
    assert!(o.changed, "{o:?}");
    assert_eq!(sent.len(), 2, "the second script removes the copy");
    assert!(sent[1].contains("L=/tmp/play-apt-lists.x1"), "{}", sent[1]);
    assert!(sent[1].contains("rmx=$L"), "{}", sent[1]);

    let probe = sections(&[
        ("cache", "would 1", ""),
        ("tmplists", "/tmp/play-apt-lists.x2", ""),
        ("mtime", "1", ""),
        ("dpkg", "", "play-dep\tinstall ok installed\t1.0\n"),
    ]);
    let (o, sent) = scripted(
        json!({"name": "play-dep", "update_cache": true}),
        true,
        vec![probe],
    );
    // As in Ansible, a refresh alone is no change when packages are named.
    assert!(
        !o.changed && o.result["cache_updated"] == json!(true),
        "{o:?}"
    );
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1], "rm -rf -- /tmp/play-apt-lists.x2");
}

#[test]
fn a_missing_package_fails_before_apt_get_runs() {
    let probe = sections(&[("mtime", "1", ""), ("dpkg", "", "\n"), ("policy", "", "")]);
    let (o, sent) = scripted(json!({"name": "no-such-pkg"}), false, vec![probe]);
    assert_eq!(sent.len(), 1);
    assert!(o.failed);
    assert_eq!(
        o.msg.as_deref(),
        Some("No package matching 'no-such-pkg' is available")
    );
}

#[test]
fn an_automatic_package_asked_for_is_marked_manual() {
    let probe = sections(&[
        ("mtime", "1", ""),
        ("dpkg", "", "play-dep\tinstall ok installed\t1.0\n"),
        ("auto", "", "play-dep\n"),
    ]);
    let act = sections(&[("mark", "0", "play-dep set to manually installed.\n")]);
    let (o, sent) = scripted(json!({"name": "play-dep"}), false, vec![probe, act]);
    assert!(o.changed, "{o:?}");
    assert!(sent[1].contains("mk=play-dep"), "{}", sent[1]);
    assert!(sent[1].contains("set -- \n"), "{}", sent[1]);
}

#[test]
fn patterns_expand_to_the_names_found() {
    let probe = sections(&[
        ("match", "play-*", "play-dep\nplay-hello\n"),
        ("mtime", "1", ""),
        (
            "dpkg",
            "",
            "play-dep\tinstall ok installed\t1.0\nplay-hello\tinstall ok installed\t1.0\n",
        ),
    ]);
    let (o, sent) = scripted(
        json!({"name": "play-*", "state": "absent", "purge": true}),
        true,
        vec![probe, String::new()],
    );
    assert!(sent[0].contains("match 'play-*' play- \n"), "{}", sent[0]);
    assert!(
        sent[1].contains("set -- play-dep play-hello \n"),
        "{}",
        sent[1]
    );
    assert!(sent[1].contains("--purge"), "{}", sent[1]);
    assert!(o.changed);
    assert!(
        !o.result.contains_key("cache_updated"),
        "remove has no cache keys"
    );

    let probe = sections(&[("match", "zz*", ""), ("mtime", "1", "")]);
    let (o, _) = scripted(json!({"name": "zz*"}), false, vec![probe]);
    assert_eq!(
        o.msg.as_deref(),
        Some("No package(s) matching 'zz*' available")
    );
}

#[test]
fn a_failing_apt_get_is_reported_with_its_command() {
    let probe = sections(&[
        ("mtime", "1", ""),
        ("dpkg", "", "\n"),
        ("policy", "", POLICY),
    ]);
    let act = sections(&[
        ("action", "100", ""),
        (
            "action.err",
            "",
            "E: Sub-process /usr/bin/dpkg returned an error code (1)\n",
        ),
    ]);
    let (o, _) = scripted(json!({"name": "play-dep"}), false, vec![probe, act]);
    assert!(o.failed);
    assert_eq!(
        o.msg.as_deref(),
        Some("'apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=60 install play-dep=1.0' failed: E: Sub-process /usr/bin/dpkg returned an error code (1)")
    );
    assert_eq!(o.result["rc"], json!(100));
}

#[test]
fn the_scripts_are_valid_shell() {
    for args in [
        json!({"name": ["a", "b=1", "c*"], "update_cache": true, "policy_rc_d": 101}),
        json!({"name": "a", "state": "absent"}),
        json!({"deb": "/srv/x.deb,https://h/y.deb"}),
        json!({"upgrade": "dist"}),
        json!({"autoremove": true}),
        json!({"name": "a", "state": "build-dep"}),
        json!({"clean": true}),
    ] {
        let p = plan(args.clone(), false).expect("parses");
        for script in [
            p.probe_script(),
            p.act_script(&["x".into()], &["y".into()], true, Some("/tmp/l")),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(script.to_string())
                .output()
                .expect("sh");
            assert!(
                out.status.success(),
                "{args}: {}\n{script}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
