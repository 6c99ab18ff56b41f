//! End to end: `user`, `group`, `authorized_key` and `cron` run by the real `play` binary over
//! SSH against a booted Debian with systemd (`testbed::SystemdHost`); every playbook is run in
//! `--check --diff` (verified to change nothing), for real (changed) and again (unchanged).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread;

use common::{converge, recap, run_play, text};
use testbed::SystemdHost;

/// A SHA-512 crypt hash (of "play"); the tests look for its tail in play's output.
const HASH: &str = "$6$Cz1ssKM1sZ0M4n0S$WGYQzkNL.mlo1azWazYD5ch.R7ZQU.VOVmvZTMMzMIENY4OsKPo/f59ZdgF0asNFfDnmG7lUsBj8N3A6mxu/N0";
const HASH_TAIL: &str = "WGYQzkNL.mlo1azWazYD5ch";
/// Another hash (of "play2").
const HASH2: &str = "$6$3tjl1D5PQRV0pSHO$3DOSPEPqyyIfAE5xDfsHjmC9RMnRpgHnBmdIdK6nm3Q.rXvVmxv/Jr1aWJtAINrsveF6N7y1DtzD00NRTKLRf.";
const HASH2_TAIL: &str = "3DOSPEPqyyIfAE5xDfsHjmC9";

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2WAtzYBk3hkb3ZzcFLE8THs9S1I5OrtvCnQkNmI9S alice@laptop";
const KEY_B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7mKxB5JyT0GfS3FEcLmkzPjXcq9aMd2oIZ2m8qzY5h2WkQ3T0S1b8rFQkbY1o2V9f0Nn3tK8cLwQ2m1Xk2c3V4b5N6m7L8k9J0h1G2f3D4s5A6z7X8c9V0b1N2m3Q4w5E6r7T8y9U0i1O2p3== bob@desk";
const KEY_OLD: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOldOldOldOldOldOldOldOldOldOldOldOldOldOldOld old@box";

fn boot() -> SystemdHost {
    SystemdHost::boot().expect(
        "the systemd test host boots (run the tests as root with systemd-nspawn and debootstrap)",
    )
}

/// A working directory with an inventory for `host`.
struct Work {
    dir: tempfile::TempDir,
    inventory: PathBuf,
}

impl Work {
    fn new(host: &SystemdHost) -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = host.write_inventory(dir.path(), "targets");
        Work { dir, inventory }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn write(&self, name: &str, content: &str) {
        std::fs::write(self.path().join(name), content).expect("write playbook");
    }
    fn play(&self, args: &[&str]) -> (String, i32) {
        let inv = self.inventory.to_str().expect("utf-8");
        let mut all = vec!["-i", inv];
        all.extend_from_slice(args);
        run_play(self.path(), &all)
    }
    fn converge(
        &self,
        host: &SystemdHost,
        playbook: &str,
        after_check: impl FnOnce(),
    ) -> common::Converged {
        converge(
            self.path(),
            &self.inventory,
            playbook,
            &host.name,
            after_check,
        )
    }
}

/// What `sh -c command` printed on the host (stdout), asserting it succeeded.
fn sh(host: &SystemdHost, command: &str) -> String {
    let out = host.ssh(command);
    assert!(
        out.status.success(),
        "`{command}` failed on the host: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Whether `sh -c command` succeeded on the host.
fn ok(host: &SystemdHost, command: &str) -> bool {
    host.ssh(command).status.success()
}

fn play_header() -> &'static str {
    "- hosts: targets\n  gather_facts: false\n  tasks:\n"
}

#[test]
fn groups_and_users_are_created_modified_and_removed() {
    let host = boot();
    let work = Work::new(&host);

    // Groups: one with a gid, one system group.
    work.write(
        "groups.yml",
        &format!(
            "{}    - group: {{name: devs, gid: 3001}}\n    - ansible.builtin.group: {{name: ops, system: true}}\n",
            play_header()
        ),
    );
    work.converge(&host, "groups.yml", || {
        assert!(!ok(&host, "getent group devs"), "check mode created devs");
    });
    assert_eq!(sh(&host, "getent group devs").trim(), "devs:x:3001:");
    let ops_gid: u32 = sh(&host, "getent group ops | cut -d: -f3")
        .trim()
        .parse()
        .expect("gid");
    assert!(ops_gid < 1000, "ops is no system group: {ops_gid}");

    // A user with groups, shell, home (whose parent does not exist), comment and a hash.
    work.write(
        "user.yml",
        &format!(
            "{}    - user:\n        name: alice\n        uid: 1500\n        groups: [devs, ops]\n        shell: /bin/bash\n        home: /srv/people/alice\n        comment: \"Alice $(id) 'q'\"\n        password: '{HASH}'\n",
            play_header()
        ),
    );
    let runs = work.converge(&host, "user.yml", || {
        assert!(
            !ok(&host, "getent passwd alice"),
            "check mode created alice"
        );
    });
    for out in [&runs.check, &runs.first, &runs.second] {
        assert!(
            !out.contains(HASH_TAIL),
            "the hash shows in play's output:\n{out}"
        );
    }
    assert_eq!(
        sh(&host, "getent passwd alice").trim(),
        "alice:x:1500:1500:Alice $(id) 'q':/srv/people/alice:/bin/bash"
    );
    assert_eq!(sh(&host, "getent shadow alice | cut -d: -f2").trim(), HASH);
    let groups = sh(&host, "id -Gn alice");
    assert!(
        groups.contains("devs") && groups.contains("ops"),
        "{groups}"
    );
    assert_eq!(
        sh(&host, "stat -c '%U %a' /srv/people/alice").trim(),
        "alice 755"
    );
    assert!(
        ok(&host, "test -f /srv/people/alice/.bashrc"),
        "no skeleton in the home"
    );
    // Converged, verbose: still no hash, even where commands are shown.
    let (out, code) = work.play(&["user.yml", "-vvv"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(recap(&out, &host.name).changed, 0, "{out}");
    assert!(!out.contains(HASH_TAIL), "the hash shows with -vvv:\n{out}");
    assert!(out.contains("NOT_LOGGING_PASSWORD"), "{out}");

    // Modified: another shell, one more group appended, a new hash, locked.
    work.write(
        "modify.yml",
        &format!(
            "{}    - user: {{name: alice, shell: /bin/sh, groups: [users], append: true, password: '{HASH2}', password_lock: true, comment: Alice}}\n",
            play_header()
        ),
    );
    let runs = work.converge(&host, "modify.yml", || {
        assert_eq!(sh(&host, "getent shadow alice | cut -d: -f2").trim(), HASH);
        assert!(sh(&host, "getent passwd alice").ends_with(":/bin/bash\n"));
    });
    for out in [&runs.check, &runs.first, &runs.second] {
        assert!(
            !out.contains(HASH2_TAIL),
            "the hash shows in play's output:\n{out}"
        );
    }
    assert_eq!(
        sh(&host, "getent passwd alice").trim(),
        "alice:x:1500:1500:Alice:/srv/people/alice:/bin/sh"
    );
    assert_eq!(
        sh(&host, "getent shadow alice | cut -d: -f2").trim(),
        format!("!{HASH2}")
    );
    let groups = sh(&host, "id -Gn alice");
    assert!(
        groups.contains("devs") && groups.contains("ops") && groups.contains("users"),
        "{groups}"
    );

    // A password change with every command shown: still no hash.
    work.write(
        "password.yml",
        &format!(
            "{}    - user: {{name: alice, password: '{HASH}'}}\n",
            play_header()
        ),
    );
    let (out, code) = work.play(&["password.yml", "-vvv"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(recap(&out, &host.name).changed, 1, "{out}");
    assert!(
        !out.contains(HASH_TAIL) && !out.contains(HASH2_TAIL),
        "a hash shows with -vvv:\n{out}"
    );
    assert_eq!(sh(&host, "getent shadow alice | cut -d: -f2").trim(), HASH);

    // Removed, home and all; then its groups.
    work.write(
        "remove.yml",
        &format!(
            "{}    - user: {{name: alice, state: absent, remove: true}}\n    - group: {{name: devs, state: absent}}\n    - group: {{name: ops, state: absent}}\n",
            play_header()
        ),
    );
    work.converge(&host, "remove.yml", || {
        assert!(ok(&host, "getent passwd alice"), "check mode removed alice");
    });
    assert!(!ok(&host, "getent passwd alice"));
    assert!(!ok(&host, "test -e /srv/people/alice"));
    assert!(!ok(&host, "getent group devs") && !ok(&host, "getent group ops"));
}

#[test]
fn a_group_gid_changes_and_user_errors_are_ansibles() {
    let host = boot();
    let work = Work::new(&host);
    sh(&host, "groupadd -g 4001 web");
    work.write(
        "gid.yml",
        &format!("{}    - group: {{name: web, gid: 4002}}\n", play_header()),
    );
    work.converge(&host, "gid.yml", || {
        assert_eq!(sh(&host, "getent group web").trim(), "web:x:4001:");
    });
    assert_eq!(sh(&host, "getent group web").trim(), "web:x:4002:");

    work.write(
        "bad.yml",
        &format!(
            "{}    - user: {{name: carol, groups: [web, nosuch]}}\n",
            play_header()
        ),
    );
    let (out, code) = work.play(&["bad.yml"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Group nosuch does not exist"), "{out}");
    assert!(!ok(&host, "getent passwd carol"));

    // A key of its own for a new user; the second run finds it and leaves it.
    work.write(
        "key.yml",
        &format!(
            "{}    - user: {{name: dave, generate_ssh_key: true, ssh_key_type: ed25519, ssh_key_comment: dave@test}}\n      register: dave\n    - when: not ansible_check_mode\n      assert:\n        that:\n          - dave.ssh_public_key is match('ssh-ed25519 ')\n          - dave.ssh_fingerprint is search('SHA256:')\n          - dave.ssh_key_file == '/home/dave/.ssh/id_ed25519'\n",
            play_header()
        ),
    );
    let runs = work.converge(&host, "key.yml", || {
        assert!(!ok(&host, "getent passwd dave"));
    });
    assert!(
        runs.second
            .contains("no force, so skipping ssh-keygen generation"),
        "{}",
        runs.second
    );
    assert_eq!(
        sh(
            &host,
            "stat -c '%U %a' /home/dave/.ssh /home/dave/.ssh/id_ed25519"
        ),
        "dave 700\ndave 600\n"
    );
}

#[test]
fn authorized_keys_with_options_exclusive_and_a_new_ssh_dir() {
    let host = boot();
    let work = Work::new(&host);
    sh(
        &host,
        "useradd -m -s /bin/sh erin && useradd -m -s /bin/sh frank",
    );
    sh(
        &host,
        &format!(
            "mkdir -m 700 /home/frank/.ssh && printf '%s\\n' '# kept by hand' '{KEY_OLD}' > /home/frank/.ssh/authorized_keys && chown -R frank: /home/frank/.ssh"
        ),
    );
    work.write(
        "keys.yml",
        &format!(
            "{}    - ansible.posix.authorized_key:\n        user: erin\n        key: |\n          {KEY_A}\n          {KEY_B}\n    - authorized_key:\n        user: frank\n        key: \"{KEY_A}\"\n        key_options: 'no-port-forwarding,from=\"10.0.0.1,10.0.0.2\"'\n        exclusive: true\n",
            play_header()
        ),
    );
    let runs = work.converge(&host, "keys.yml", || {
        assert!(
            !ok(&host, "test -e /home/erin/.ssh"),
            "check mode made ~/.ssh"
        );
        assert!(sh(&host, "cat /home/frank/.ssh/authorized_keys").contains("old@box"));
    });
    // The diff shows the file before and after.
    for out in [&runs.check, &runs.first] {
        assert!(out.contains("/home/frank/.ssh/authorized_keys"), "{out}");
        assert!(out.contains(&format!("-{KEY_OLD}")), "{out}");
        assert!(
            out.contains("+no-port-forwarding,from=\"10.0.0.1,10.0.0.2\" ssh-ed25519"),
            "{out}"
        );
    }
    assert_eq!(
        sh(&host, "cat /home/erin/.ssh/authorized_keys"),
        format!("{KEY_A}\n{KEY_B}\n")
    );
    assert_eq!(
        sh(&host, "cat /home/frank/.ssh/authorized_keys"),
        format!("no-port-forwarding,from=\"10.0.0.1,10.0.0.2\" {KEY_A}\n")
    );
    assert_eq!(
        sh(
            &host,
            "stat -c '%U %G %a' /home/erin/.ssh /home/erin/.ssh/authorized_keys"
        ),
        "erin erin 700\nerin erin 600\n"
    );

    // Removing one key; an invalid key is refused with Ansible's words.
    work.write(
        "absent.yml",
        &format!(
            "{}    - authorized_key: {{user: erin, key: '{KEY_B}', state: absent}}\n",
            play_header()
        ),
    );
    work.converge(&host, "absent.yml", || {});
    assert_eq!(
        sh(&host, "cat /home/erin/.ssh/authorized_keys"),
        format!("{KEY_A}\n")
    );
    work.write(
        "invalid.yml",
        &format!(
            "{}    - authorized_key: {{user: erin, key: 'ssh-foo AAAA x'}}\n",
            play_header()
        ),
    );
    let (out, code) = work.play(&["invalid.yml"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("invalid key specified: ssh-foo AAAA x"),
        "{out}"
    );
}

/// An HTTP server on the host's gateway answering `/NAME.keys` with `body` and anything else
/// with 404, for as long as the test runs; its base URL.
fn serve_keys(host: &SystemdHost, name: &'static str, body: String) -> String {
    let listener = TcpListener::bind((host.gateway.as_str(), 0)).expect("bind the gateway");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let wanted = format!("GET /{name}.keys ");
            let response = if request.starts_with(wanted.as_bytes()) {
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{}:{port}", host.gateway)
}

#[test]
fn authorized_keys_fetched_from_a_url_on_the_target() {
    let host = boot();
    let work = Work::new(&host);
    sh(&host, "useradd -m -s /bin/sh hank");
    let base = serve_keys(&host, "hank", format!("{KEY_A}\n# a comment\n{KEY_B}\n"));
    work.write(
        "url.yml",
        &format!(
            "{}    - authorized_key: {{user: hank, key: '{base}/hank.keys', validate_certs: false}}\n      register: fetched\n    - assert: {{that: [\"fetched.key == '{base}/hank.keys'\"]}}\n",
            play_header()
        ),
    );
    work.converge(&host, "url.yml", || {
        assert!(!ok(&host, "test -e /home/hank/.ssh"));
    });
    assert_eq!(
        sh(&host, "cat /home/hank/.ssh/authorized_keys"),
        format!("{KEY_A}\n{KEY_B}\n")
    );
    work.write(
        "missing.yml",
        &format!(
            "{}    - authorized_key: {{user: hank, key: '{base}/nobody.keys'}}\n",
            play_header()
        ),
    );
    let (out, code) = work.play(&["missing.yml"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("Error getting key from: {base}/nobody.keys")),
        "{out}"
    );
}

#[test]
fn cron_jobs_for_root_and_a_user_and_in_cron_d() {
    let host = boot();
    let work = Work::new(&host);
    // gina's crontab already sets MAILTO and has a job of its own, unmarked.
    sh(
        &host,
        "useradd -m -s /bin/sh gina && printf '%s\\n' 'MAILTO=\"ops@example.com\"' '5 4 * * * /usr/bin/report' | crontab -u gina -",
    );
    let hostile = r#"echo "$(date)" 'x' > /tmp/a b"#;
    work.write(
        "cron.yml",
        &format!(
            "{}    - cron: {{name: nightly, minute: '0', hour: '3', job: /usr/local/bin/backup}}\n    - cron: {{name: report, user: gina, minute: '5', hour: '4', job: /usr/bin/report}}\n    - cron:\n        name: hostile\n        user: gina\n        minute: '*/5'\n        job: '{}'\n    - cron: {{name: boot, user: gina, special_time: reboot, job: /bin/true, disabled: true}}\n    - cron: {{name: MAILTO, user: gina, env: true, job: ops@example.com}}\n    - cron: {{name: PATH, user: gina, env: true, job: /usr/bin:/bin, insertafter: MAILTO}}\n    - ansible.builtin.cron: {{name: hourly, cron_file: play-test, user: root, special_time: hourly, job: /bin/true}}\n",
            play_header(),
            hostile.replace('\'', "''")
        ),
    );
    let runs = work.converge(&host, "cron.yml", || {
        assert!(
            !ok(&host, "crontab -l -u root"),
            "check mode wrote root's crontab"
        );
        assert!(!sh(&host, "crontab -l -u gina").contains("Ansible"));
        assert!(!ok(&host, "test -e /etc/cron.d/play-test"));
    });
    assert!(
        runs.check.contains("crontab for user \"gina\""),
        "{}",
        runs.check
    );
    assert_eq!(recap(&runs.first, &host.name).changed, 6, "{}", runs.first);
    assert_eq!(
        sh(&host, "crontab -l -u root"),
        "#Ansible: nightly\n0 3 * * * /usr/local/bin/backup\n"
    );
    assert_eq!(
        sh(&host, "crontab -l -u gina"),
        format!(
            "MAILTO=\"ops@example.com\"\nPATH=\"/usr/bin:/bin\"\n#Ansible: report\n5 4 * * * /usr/bin/report\n#Ansible: hostile\n*/5 * * * * {hostile}\n#Ansible: boot\n#@reboot /bin/true\n"
        )
    );
    assert_eq!(
        sh(
            &host,
            "cat /etc/cron.d/play-test; stat -c %a /etc/cron.d/play-test"
        ),
        "#Ansible: hourly\n@hourly root /bin/true\n644\n"
    );

    // Gone again: the emptied cron file is removed.
    work.write(
        "gone.yml",
        &format!(
            "{}    - cron: {{name: hostile, user: gina, state: absent}}\n    - cron: {{name: PATH, user: gina, env: true, state: absent}}\n    - cron: {{name: hourly, cron_file: play-test, state: absent}}\n",
            play_header()
        ),
    );
    work.converge(&host, "gone.yml", || {
        assert!(ok(&host, "test -e /etc/cron.d/play-test"));
    });
    assert_eq!(
        sh(&host, "crontab -l -u gina"),
        "MAILTO=\"ops@example.com\"\n#Ansible: report\n5 4 * * * /usr/bin/report\n#Ansible: boot\n#@reboot /bin/true\n"
    );
    assert!(!ok(&host, "test -e /etc/cron.d/play-test"));

    // crontab refuses a bad minute, in its own words.
    work.write(
        "bad.yml",
        &format!(
            "{}    - cron: {{name: bad, user: gina, minute: '99', job: /bin/true}}\n",
            play_header()
        ),
    );
    let (out, code) = work.play(&["bad.yml"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Failed to install new cronfile"), "{out}");
    assert!(out.contains("bad minute"), "{out}");
}
