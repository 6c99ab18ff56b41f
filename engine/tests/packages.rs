//! End-to-end tests of the package modules (`pacman`, `apt`, `package`): the real `play`
//! binary over SSH against a booted Debian host (`testbed::SystemdHost`) that carries both apt
//! and pacman, each with a local test repository. Every converging playbook runs in
//! `--check --diff` (the host must not change: checked over SSH), then for real (changed),
//! then again (nothing changed).
//!
//! Needs root, systemd-nspawn and debootstrap, as scripts/test-all provides.

use std::path::{Path, PathBuf};

use testbed::SystemdHost;

mod common;
use common::{converge, recap, run_play, text};

fn boot() -> SystemdHost {
    assert!(
        testbed::systemd_available(),
        "the package tests need root, systemd-nspawn (package systemd-container) and \
         debootstrap: run them as scripts/test-all does"
    );
    SystemdHost::boot().unwrap_or_else(|error| panic!("the systemd host boots: {error}"))
}

/// `command` run as root on `host`: its status and its output (stdout then stderr).
fn ssh(host: &SystemdHost, command: &str) -> (bool, String) {
    let out = host.ssh(command);
    let mut all = text(&out.stdout);
    all.push_str(&text(&out.stderr));
    (out.status.success(), all)
}

/// `command` on `host`, which must succeed; its stdout.
fn ssh_ok(host: &SystemdHost, command: &str) -> String {
    let out = host.ssh(command);
    assert!(
        out.status.success(),
        "`{command}` failed on {}:\n{}{}",
        host.name,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A working directory with the host's inventory (group `machines`).
struct Site {
    dir: tempfile::TempDir,
    inventory: PathBuf,
}

impl Site {
    fn new(host: &SystemdHost) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = host.write_inventory(dir.path(), "machines");
        Site { dir, inventory }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` as a play on `machines` with `tasks` (YAML, indented by four spaces).
    fn playbook(&self, name: &str, facts: bool, tasks: &str) -> String {
        let text = format!(
            "- hosts: machines\n  gather_facts: {facts}\n  tasks:\n{tasks}",
            facts = if facts { "true" } else { "false" }
        );
        std::fs::write(self.path().join(name), text).expect("playbook");
        name.to_string()
    }

    fn run(&self, playbook: &str, extra: &[&str]) -> (String, i32) {
        let mut args = vec!["-i", self.inventory.to_str().expect("utf-8"), playbook];
        args.extend_from_slice(extra);
        run_play(self.path(), &args)
    }

    fn converge(&self, host: &SystemdHost, playbook: &str, after_check: impl FnOnce()) -> Runs {
        let c = converge(
            self.path(),
            &self.inventory,
            playbook,
            &host.name,
            after_check,
        );
        Runs {
            check: c.check,
            first: c.first,
        }
    }
}

struct Runs {
    check: String,
    first: String,
}

/// The installed version of a pacman package, or `None`.
fn pacman_version(host: &SystemdHost, name: &str) -> Option<String> {
    let (ok, out) = ssh(host, &format!("pacman -Q {name}"));
    ok.then(|| out.split_whitespace().nth(1).unwrap_or("").to_string())
}

/// dpkg's status and version of a package (`install ok installed 1.0`), or `None`.
fn dpkg_status(host: &SystemdHost, name: &str) -> Option<String> {
    let (ok, out) = ssh(
        host,
        &format!("dpkg-query -W -f='${{Status}} ${{Version}}' {name} 2>/dev/null"),
    );
    ok.then(|| out.trim().to_string())
}

/// What pacman's state looks like: installed packages and the sync databases.
fn pacman_state(host: &SystemdHost) -> String {
    ssh_ok(
        host,
        "pacman -Q; ls -l --time-style=+%s /var/lib/pacman/sync 2>&1; \
         cat /var/lib/pacman/sync/*.db 2>/dev/null | cksum; ls /var/lib/pacman",
    )
}

/// What apt's state looks like: installed packages and the lists.
fn apt_state(host: &SystemdHost) -> String {
    ssh_ok(
        host,
        "dpkg-query -W -f='${Package} ${Status} ${Version}\\n'; \
         stat -c '%Y %n' /var/lib/apt/lists; ls -l --time-style=+%s /var/lib/apt/lists; \
         apt-mark showauto; ls /tmp",
    )
}

/// Makes the apt lists look a day old and empty, as on a host nobody refreshed.
fn stale_apt_lists(host: &SystemdHost) {
    ssh_ok(
        host,
        "rm -rf /var/lib/apt/lists/* /var/lib/apt/periodic/update-success-stamp; \
         touch -d '2000-01-01 00:00' /var/lib/apt/lists",
    );
}

#[test]
fn pacman_installs_a_package_with_its_dependency() {
    let host = boot();
    let site = Site::new(&host);
    let book = site.playbook(
        "site.yml",
        false,
        "    - community.general.pacman:\n\
         \x20       name: hello-b\n\
         \x20       update_cache: true\n\
         \x20     register: r\n\
         \x20   - assert:\n\
         \x20       that:\n\
         \x20         - r.packages == ['hello-b', 'hello-c']\n\
         \x20         - r.cache_updated\n\
         \x20     when: r.changed\n",
    );
    let before = pacman_state(&host);
    let runs = site.converge(&host, &book, || {
        assert_eq!(
            pacman_state(&host),
            before,
            "check mode changed pacman's state"
        );
    });
    for out in [&runs.check, &runs.first] {
        assert!(
            out.contains("+hello-b-1.0-1\n+hello-c-1.0-1\n"),
            "diff lists what is installed:\n{out}"
        );
    }
    assert_eq!(pacman_version(&host, "hello-b").as_deref(), Some("1.0-1"));
    assert_eq!(pacman_version(&host, "hello-c").as_deref(), Some("1.0-1"));
    assert_eq!(ssh_ok(&host, "pacman -Qqd"), "hello-c\n", "a dependency");
    assert_eq!(ssh_ok(&host, "pacman -Qqe"), "hello-b\n", "asked for");
}

#[test]
fn pacman_removes_a_package() {
    let host = boot();
    ssh_ok(&host, "pacman -Sy --noconfirm hello-b");
    let site = Site::new(&host);
    let book = site.playbook(
        "site.yml",
        false,
        "    - pacman:\n\
         \x20       name: hello-b\n\
         \x20       state: absent\n",
    );
    let runs = site.converge(&host, &book, || {
        assert_eq!(pacman_version(&host, "hello-b").as_deref(), Some("1.0-1"));
    });
    assert!(runs.first.contains("-hello-b-1.0-1\n"), "{}", runs.first);
    assert_eq!(pacman_version(&host, "hello-b"), None);
    assert_eq!(
        pacman_version(&host, "hello-c").as_deref(),
        Some("1.0-1"),
        "not recursive unless asked (extra_args: --recursive)"
    );
}

#[test]
fn pacman_refreshing_is_a_change_only_when_the_repository_changed() {
    let host = boot();
    let site = Site::new(&host);
    let book = site.playbook(
        "site.yml",
        false,
        "    - community.general.pacman:\n\
         \x20       update_cache: true\n",
    );
    // A fresh host has no sync database yet: the first refresh is a change, the next not.
    let before = pacman_state(&host);
    site.converge(&host, &book, || {
        assert_eq!(
            pacman_state(&host),
            before,
            "check mode changed pacman's state"
        );
    });
    host.publish_pacman("hello-a", "1.1").expect("publish");
    let before = pacman_state(&host);
    site.converge(&host, &book, || {
        assert_eq!(
            pacman_state(&host),
            before,
            "check mode changed pacman's state"
        );
    });
}

#[test]
fn pacman_latest_installs_a_newer_version_once() {
    let host = boot();
    ssh_ok(&host, "pacman -Sy --noconfirm hello-a");
    host.publish_pacman("hello-a", "1.1").expect("publish");
    let site = Site::new(&host);
    let book = site.playbook(
        "site.yml",
        false,
        "    - community.general.pacman:\n\
         \x20       name: hello-a\n\
         \x20       state: latest\n\
         \x20       update_cache: true\n",
    );
    let runs = site.converge(&host, &book, || {
        assert_eq!(pacman_version(&host, "hello-a").as_deref(), Some("1.0-1"));
    });
    assert!(
        runs.check
            .contains("-hello-a-1.0-1-explicit\n+hello-a-1.1-1-explicit\n"),
        "check mode saw the refreshed database:\n{}",
        runs.check
    );
    assert_eq!(pacman_version(&host, "hello-a").as_deref(), Some("1.1-1"));
}

#[test]
fn pacman_names_a_missing_package_and_a_stale_lock() {
    let host = boot();
    let site = Site::new(&host);
    let missing = site.playbook(
        "missing.yml",
        false,
        "    - community.general.pacman:\n\
         \x20       name: [hello-a, no-such-pkg]\n\
         \x20       update_cache: true\n",
    );
    for extra in [&["--check"][..], &[]] {
        let (out, code) = site.run(&missing, extra);
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains("error: target not found: no-such-pkg"),
            "pacman's own words:\n{out}"
        );
        assert_eq!(recap(&out, &host.name).failed, 1, "{out}");
    }
    assert_eq!(pacman_version(&host, "hello-a"), None, "nothing installed");

    let bad = site.playbook(
        "bad.yml",
        false,
        "    - community.general.pacman:\n\
         \x20       name: hello-a\n\
         \x20       state: gone\n",
    );
    let (out, code) = site.run(&bad, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(
            "value of state must be one of: present, installed, latest, absent, removed, got: gone"
        ),
        "{out}"
    );

    ssh_ok(&host, "touch /var/lib/pacman/db.lck");
    let locked = site.playbook(
        "locked.yml",
        false,
        "    - community.general.pacman:\n\
         \x20       name: hello-a\n",
    );
    for extra in [&["--check"][..], &[]] {
        let (out, code) = site.run(&locked, extra);
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains(
                "pacman's database is locked by /var/lib/pacman/db.lck: another pacman is \
                 running, or a crashed one left it; remove it if no pacman runs"
            ),
            "{out}"
        );
    }
    ssh_ok(&host, "test -e /var/lib/pacman/db.lck");
    assert_eq!(pacman_version(&host, "hello-a"), None);
}

#[test]
fn apt_installs_and_removes_packages() {
    let host = boot();
    stale_apt_lists(&host);
    let site = Site::new(&host);
    let install = site.playbook(
        "install.yml",
        false,
        "    - ansible.builtin.apt:\n\
         \x20       name: play-needs-dep\n\
         \x20       update_cache: true\n\
         \x20       cache_valid_time: 3600\n\
         \x20     register: r\n\
         \x20   - assert:\n\
         \x20       that: r.cache_updated\n\
         \x20     when: r.changed\n",
    );
    let before = apt_state(&host);
    let runs = site.converge(&host, &install, || {
        assert_eq!(apt_state(&host), before, "check mode changed apt's state");
    });
    assert!(
        runs.check.contains("+play-dep 1.0\n+play-needs-dep 1.0\n"),
        "check mode refreshed a copy of the lists and saw the packages:\n{}",
        runs.check
    );
    assert_eq!(
        dpkg_status(&host, "play-needs-dep").as_deref(),
        Some("install ok installed 1.0")
    );
    assert_eq!(
        dpkg_status(&host, "play-dep").as_deref(),
        Some("install ok installed 1.0")
    );
    assert_eq!(ssh_ok(&host, "apt-mark showauto"), "play-dep\n");

    let remove = site.playbook(
        "remove.yml",
        false,
        "    - apt:\n\
         \x20       name: play-needs-dep\n\
         \x20       state: absent\n",
    );
    let before = apt_state(&host);
    let runs = site.converge(&host, &remove, || {
        assert_eq!(apt_state(&host), before, "check mode changed apt's state");
    });
    assert!(
        runs.first.contains("-play-needs-dep 1.0\n"),
        "{}",
        runs.first
    );
    assert_eq!(dpkg_status(&host, "play-needs-dep"), None);
    assert_eq!(
        dpkg_status(&host, "play-dep").as_deref(),
        Some("install ok installed 1.0"),
        "autoremove was not asked for"
    );
}

#[test]
fn apt_purges_what_a_removal_left() {
    let host = boot();
    // A package with a configuration file, removed but not purged.
    ssh_ok(
        &host,
        "d=$(mktemp -d) && mkdir -p $d/DEBIAN $d/etc && \
         printf 'Package: play-conf\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@t.invalid>\\nDescription: a conffile\\n' >$d/DEBIAN/control && \
         echo /etc/play-conf.conf >$d/DEBIAN/conffiles && echo setting >$d/etc/play-conf.conf && \
         dpkg-deb -b $d /root/play-conf.deb >/dev/null && dpkg -i /root/play-conf.deb >/dev/null && dpkg -r play-conf >/dev/null",
    );
    assert_eq!(
        dpkg_status(&host, "play-conf").as_deref(),
        Some("deinstall ok config-files 1.0")
    );
    let site = Site::new(&host);
    let plain = site.playbook(
        "plain.yml",
        false,
        "    - apt:\n\
         \x20       name: play-conf\n\
         \x20       state: absent\n",
    );
    let (out, code) = site.run(&plain, &[]);
    assert_eq!((code, recap(&out, &host.name).changed), (0, 0), "{out}");

    let purge = site.playbook(
        "purge.yml",
        false,
        "    - apt:\n\
         \x20       name: play-conf\n\
         \x20       state: absent\n\
         \x20       purge: true\n",
    );
    site.converge(&host, &purge, || {
        assert_eq!(
            dpkg_status(&host, "play-conf").as_deref(),
            Some("deinstall ok config-files 1.0")
        );
    });
    assert_eq!(dpkg_status(&host, "play-conf"), None);
    ssh_ok(&host, "test ! -e /etc/play-conf.conf");
}

#[test]
fn apt_refreshes_lists_older_than_cache_valid_time() {
    let host = boot();
    stale_apt_lists(&host);
    let site = Site::new(&host);
    let book = site.playbook(
        "site.yml",
        false,
        "    - apt:\n\
         \x20       update_cache: true\n\
         \x20       cache_valid_time: 3600\n",
    );
    site.converge(&host, &book, || {
        assert_eq!(
            ssh_ok(
                &host,
                "stat -c %Y /var/lib/apt/lists; ls /var/lib/apt/lists"
            ),
            "946684800\n",
            "check mode refreshed the lists"
        );
    });
    ssh_ok(&host, "test -e /var/lib/apt/lists/_srv_apt_._Packages");
}

#[test]
fn apt_latest_installs_a_newer_version_once() {
    let host = boot();
    ssh_ok(
        &host,
        "apt-get update -q && apt-get install -y -q play-hello",
    );
    host.publish_apt("play-hello", "1.1").expect("publish");
    let site = Site::new(&host);
    let book = site.playbook(
        "site.yml",
        false,
        "    - apt:\n\
         \x20       name: play-hello\n\
         \x20       state: latest\n\
         \x20       update_cache: true\n",
    );
    let runs = site.converge(&host, &book, || {
        assert_eq!(
            dpkg_status(&host, "play-hello").as_deref(),
            Some("install ok installed 1.0")
        );
    });
    assert!(
        runs.check.contains("-play-hello 1.0\n+play-hello 1.1\n"),
        "{}",
        runs.check
    );
    assert_eq!(
        dpkg_status(&host, "play-hello").as_deref(),
        Some("install ok installed 1.1")
    );
}

#[test]
fn apt_installs_a_deb_file_and_names_missing_packages() {
    let host = boot();
    ssh_ok(&host, "apt-get update -q");
    let site = Site::new(&host);
    let book = site.playbook(
        "site.yml",
        false,
        "    - apt:\n\
         \x20       deb: /srv/debs/play-local_1.0_all.deb\n",
    );
    site.converge(&host, &book, || {
        assert_eq!(dpkg_status(&host, "play-local"), None);
    });
    assert_eq!(
        dpkg_status(&host, "play-local").as_deref(),
        Some("install ok installed 1.0")
    );

    // A name with quotes, spaces and command substitutions is a name, not shell code.
    let missing = site.playbook(
        "missing.yml",
        false,
        "    - apt:\n\
         \x20       name:\n\
         \x20         - no-such-pkg\n",
    );
    let (out, code) = site.run(&missing, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("No package matching 'no-such-pkg' is available"),
        "{out}"
    );
    let hostile = site.playbook(
        "hostile.yml",
        false,
        "    - apt:\n\
         \x20       name: \"a b'$(touch /tmp/pwned)`touch /tmp/pwned`\"\n",
    );
    let (out, code) = site.run(&hostile, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(
            "No package matching 'a b'$(touch /tmp/pwned)`touch /tmp/pwned`' is available"
        ),
        "{out}"
    );
    ssh_ok(&host, "test ! -e /tmp/pwned");

    let bad = site.playbook(
        "bad.yml",
        false,
        "    - apt:\n\
         \x20       name: play-hello\n\
         \x20       deb: /srv/debs/play-local_1.0_all.deb\n",
    );
    let (out, code) = site.run(&bad, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("parameters are mutually exclusive: deb|package|upgrade"),
        "{out}"
    );
}

#[test]
fn package_picks_apt_from_facts_or_the_target_and_pacman_when_asked() {
    let host = boot();
    ssh_ok(&host, "apt-get update -q && pacman -Sy");
    let site = Site::new(&host);
    let facts = site.playbook(
        "facts.yml",
        true,
        "    - package:\n\
         \x20       name: play-hello\n\
         \x20       state: present\n\
         \x20   - ansible.builtin.package:\n\
         \x20       name: hello-a\n\
         \x20       state: present\n\
         \x20       use: pacman\n",
    );
    site.converge(&host, &facts, || {
        assert_eq!(dpkg_status(&host, "play-hello"), None);
        assert_eq!(pacman_version(&host, "hello-a"), None);
    });
    assert_eq!(
        dpkg_status(&host, "play-hello").as_deref(),
        Some("install ok installed 1.0")
    );
    assert_eq!(pacman_version(&host, "hello-a").as_deref(), Some("1.0-1"));

    // No facts: the target is looked at (a Debian host with pacman too is an apt host).
    let probe = site.playbook(
        "probe.yml",
        false,
        "    - package:\n\
         \x20       name: play-dep\n\
         \x20       state: present\n",
    );
    site.converge(&host, &probe, || {
        assert_eq!(dpkg_status(&host, "play-dep"), None);
    });
    assert_eq!(
        dpkg_status(&host, "play-dep").as_deref(),
        Some("install ok installed 1.0")
    );

    let other = site.playbook(
        "other.yml",
        false,
        "    - package:\n\
         \x20       name: httpd\n\
         \x20       state: present\n\
         \x20       use: dnf\n",
    );
    let (out, code) = site.run(&other, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("Could not find a matching action for the \"dnf\" package manager."),
        "{out}"
    );
}
