//! End-to-end tests of the ssh connection: the real `play` binary against real sshd hosts
//! started by the testbed (needs root and openssh-server).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testbed::SshHosts;

mod common;
use common::{copy_dir, text};

/// A scratch directory with an empty home, so the machine's own ~/.ssh never plays a part.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("home")).expect("home");
        Workdir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// `command`, started with its output captured, for a test that acts while it runs.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("play starts")
    }

    /// `play` with plain output, this home, no agent and no inherited Ansible settings.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_play"));
        command
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("HOME", self.home())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("ANSIBLE_INVENTORY")
            .env_remove("ANSIBLE_HOST_KEY_CHECKING")
            .env_remove("ANSIBLE_TIMEOUT")
            .env_remove("ANSIBLE_PRIVATE_KEY_FILE")
            .env_remove("PLAY_CONFIG");
        command
    }

    fn play(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("play runs")
    }
}

/// The PLAY RECAP line of one host.
fn recap_line(out: &str, host: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(&format!("{host} ")) && l.contains(" : ok="))
        .unwrap_or_else(|| panic!("no recap line for {host} in:\n{out}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn stat_field(line: &str, field: &str) -> u32 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{field}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field}= in {line}"))
}

fn start(hosts: usize) -> SshHosts {
    SshHosts::start(hosts).expect("testbed starts (run the tests as root with openssh-server)")
}

/// Inventory of the testbed hosts in group `targets`, written to `work/inventory.yml`.
fn inventory(work: &Workdir, hosts: &SshHosts) -> String {
    hosts
        .write_inventory(work.path(), "targets")
        .display()
        .to_string()
}

#[test]
fn key_auth_runs_commands_and_reports_results() {
    let hosts = start(2);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    work.write(
        "site.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n\
         \x20   - ping:\n        data: \"{{ inventory_hostname }}\"\n      register: pinged\n\
         \x20   - command: echo \"hello from $TESTBED_HOST\"\n      register: r\n\
         \x20   - shell: 'echo out; echo err >&2; exit 3'\n      register: failing\n      ignore_errors: true\n\
         \x20   - shell: 'kill -TERM $$'\n      register: killed\n      ignore_errors: true\n\
         \x20   - name: several MiB on stdin, stdout and stderr at once\n\
         \x20     shell: 'tee /dev/stderr | tr a b'\n      args:\n        stdin: \"{{ 'a' * 3000000 }}\"\n      register: big\n\
         \x20   - assert:\n        that:\n          - pinged.ping == inventory_hostname\n\
         \x20         - r.stdout == 'hello from ' ~ inventory_hostname\n\
         \x20         - failing.rc == 3\n          - failing.stdout == 'out'\n          - failing.stderr == 'err'\n\
         \x20         - killed.rc == 143\n\
         \x20         - big.stdout == 'b' * 3000000\n          - big.stderr == 'a' * 3000000\n",
    );
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for host in ["h1", "h2"] {
        let line = recap_line(&stdout, host);
        assert_eq!(stat_field(&line, "failed"), 0, "{line}");
        assert_eq!(stat_field(&line, "ignored"), 2, "{line}");
    }
}

/// Commands go through one kept `/bin/sh` per host: two tasks' commands share it (as their
/// parent), and what a command does to it or leaves behind
/// does not reach the next command.
#[test]
fn commands_share_one_kept_shell_and_nothing_leaks_between_them() {
    let hosts = start(1);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    // The module's wrapper shell execs `/bin/sh -c <text>`, whose parent is the kept shell.
    let keeper = "echo $PPID";
    work.write(
        "site.yml",
        &format!(
            "- hosts: targets\n  gather_facts: false\n  tasks:\n\
             \x20   - shell: {keeper}\n      register: first\n\
             \x20   - shell: {keeper}\n      register: second\n\
             \x20   - name: a background job does not hold the command up\n\
             \x20     shell: '(sleep 2; echo late; echo late >&2) & echo early'\n      register: bg\n\
             \x20   - name: stdin the command does not read is not taken for commands\n\
             \x20     shell: 'true'\n      args:\n        stdin: \"{{{{ 'echo pwned >&2;' * 20000 }}}}\"\n\
             \x20   - command: cat\n      args:\n        stdin: \"x\\n\\0y\"\n      register: piped\n\
             \x20   - name: killing the shell's whole process group\n\
             \x20     shell: 'kill -TERM 0'\n      register: killed\n      ignore_errors: true\n\
             \x20   - shell: {keeper}\n      register: third\n\
             \x20   - pause:\n        seconds: 3\n\
             \x20   - shell: echo next\n      register: next\n\
             \x20   - assert:\n        that:\n\
             \x20         - first.stdout == second.stdout\n\
             \x20         - third.stdout != first.stdout\n\
             \x20         - bg.stdout == 'early'\n\
             \x20         - piped.stdout == 'x\\n\\0y'\n\
             \x20         - killed.rc == 143\n\
             \x20         - next.stdout == 'next' and next.stderr == ''\n",
            keeper = yaml_quoted(keeper),
        ),
    );
    let started = std::time::Instant::now();
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains("pwned"), "{stdout}");
    let line = recap_line(&stdout, "h1");
    assert_eq!(stat_field(&line, "ignored"), 1, "{line}");
    // The pause is 3 s; the background job must not have added its 2 s to the run.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{stdout}"
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn changed_counts(out: &str, hosts: &SshHosts) -> Vec<u32> {
    hosts
        .hosts()
        .iter()
        .map(|h| stat_field(&recap_line(out, &h.name), "changed"))
        .collect()
}

#[test]
fn bench_workload_converges_over_ssh_on_five_hosts() {
    let hosts = start(5);
    let work = Workdir::new();
    let inv = work.write("inventory.yml", &hosts.inventory_yaml("staging"));
    let inv = inv.display().to_string();
    let site = repo_root().join("bench/workload/site.yml");
    let site = site.display().to_string();
    for (run, expected) in [("first", 29), ("second", 0)] {
        let started = std::time::Instant::now();
        let out = work.play(&["-i", &inv, &site]);
        let elapsed = started.elapsed();
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            text(&out.stderr)
        );
        assert_eq!(
            changed_counts(&stdout, &hosts),
            vec![expected; 5],
            "{run} run:\n{stdout}"
        );
        // Not asserted (shared machines vary); shown with --nocapture.
        println!("bench workload, {run} run on 5 hosts: {elapsed:?}");
    }
    assert_eq!(
        accepted_logins(&hosts),
        vec![2; 5],
        "one login per host and run"
    );
}

/// The inventory without a key file: authentication must come from elsewhere.
fn inventory_without_key(hosts: &SshHosts) -> String {
    hosts
        .inventory_yaml("targets")
        .lines()
        .filter(|l| !l.contains("ansible_ssh_private_key_file"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// An inventory whose hosts use `known_hosts` (a path) instead of the testbed's file.
fn inventory_with_known_hosts(hosts: &SshHosts, known_hosts: &Path) -> String {
    let testbed_file = hosts.known_hosts().display().to_string();
    hosts
        .inventory_yaml("targets")
        .replace(&testbed_file, &known_hosts.display().to_string())
        .replace("-o StrictHostKeyChecking=yes", "")
}

const ECHO_PLAY: &str = "- hosts: targets\n  gather_facts: false\n  tasks:\n\
                         \x20   - shell: echo \"on $TESTBED_HOST as $(id -un)\"\n      register: r\n\
                         \x20   - debug:\n        var: r.stdout\n";

#[test]
fn agent_auth_is_used_when_no_key_file_is_given() {
    let hosts = start(1);
    let work = Workdir::new();
    let inv = work.write("inventory.yml", &inventory_without_key(&hosts));
    let inv = inv.display().to_string();
    work.write("site.yml", ECHO_PLAY);

    // Without a key file or an agent: unreachable, saying what was tried.
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("UNREACHABLE!"), "{stdout}");
    assert!(
        stdout.contains("Permission denied") && stdout.contains("SSH_AUTH_SOCK is not set"),
        "{stdout}"
    );

    let socket = work.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent starts");
    let added = (0..200).find_map(|_| {
        let status = Command::new("ssh-add")
            .arg(hosts.client_key())
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .expect("ssh-add runs");
        if status.status.success() {
            Some(())
        } else {
            // The agent may not listen yet.
            std::thread::sleep(std::time::Duration::from_millis(25));
            None
        }
    });
    let out = work
        .command(&["-i", &inv, "site.yml"])
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .expect("play runs");
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(added.is_some(), "ssh-add never reached the agent");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("\"r.stdout\": \"on h1 as root\""),
        "{stdout}"
    );
}

#[test]
fn unknown_host_key_is_unreachable_and_says_how_to_trust_it() {
    let hosts = start(1);
    let work = Workdir::new();
    let known_hosts = work.write("known_hosts", "");
    let inv = work.write(
        "inventory.yml",
        &inventory_with_known_hosts(&hosts, &known_hosts),
    );
    let inv = inv.display().to_string();
    work.write("site.yml", ECHO_PLAY);
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("UNREACHABLE!") && stdout.contains("not a known host"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ssh-keyscan") && stdout.contains("accept-new"),
        "the message says how to trust the host: {stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&known_hosts).expect("read"),
        "",
        "nothing recorded"
    );
}

#[test]
fn accept_new_records_the_key_and_later_runs_check_it() {
    let hosts = start(1);
    let work = Workdir::new();
    // In a directory that does not exist yet, as ~/.ssh on a fresh controller.
    let known_hosts = work.path().join("fresh/known_hosts");
    let inv = work.write(
        "inventory.yml",
        &inventory_with_known_hosts(&hosts, &known_hosts),
    );
    let inv = inv.display().to_string();
    work.write("site.yml", ECHO_PLAY);
    let out = work
        .command(&["-i", &inv, "site.yml"])
        .env("ANSIBLE_HOST_KEY_CHECKING", "accept-new")
        .output()
        .expect("play runs");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let host = &hosts.hosts()[0];
    let recorded = std::fs::read_to_string(&known_hosts).expect("recorded");
    assert_eq!(
        recorded,
        format!("{} {}\n", host.known_hosts_name(), host.host_key_pub)
    );
    // Strict checking now knows the host.
    let out = work.play(&["-i", &inv, "site.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new_or_checking_off() {
    let hosts = start(2);
    let work = Workdir::new();
    // h1's name with h2's key: what a man in the middle looks like.
    let (h1, h2) = (&hosts.hosts()[0], &hosts.hosts()[1]);
    let known_hosts = work.write(
        "known_hosts",
        &format!("{} {}\n", h1.known_hosts_name(), h2.host_key_pub),
    );
    let inv = work.write(
        "inventory.yml",
        &inventory_with_known_hosts(&hosts, &known_hosts),
    );
    let inv = inv.display().to_string();
    work.write("site.yml", ECHO_PLAY);
    for setting in ["accept-new", "false"] {
        let out = work
            .command(&["-i", &inv, "-l", "h1", "site.yml"])
            .env("ANSIBLE_HOST_KEY_CHECKING", setting)
            .output()
            .expect("play runs");
        let stdout = text(&out.stdout);
        println!("{stdout}");
        assert_eq!(out.status.code(), Some(3), "{setting}: {stdout}");
        assert!(
            stdout.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{setting}: {stdout}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&known_hosts).expect("read"),
        format!("{} {}\n", h1.known_hosts_name(), h2.host_key_pub),
        "the old entry is left alone"
    );
}

#[test]
fn an_unreachable_host_does_not_stop_the_others() {
    let hosts = start(3);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    work.write("site.yml", ECHO_PLAY);
    hosts.stop(1);
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let h2 = recap_line(&stdout, "h2");
    assert_eq!(stat_field(&h2, "unreachable"), 1, "{h2}");
    let h2_address = format!("{}:{}", hosts.hosts()[1].addr, hosts.hosts()[1].port);
    assert!(
        stdout.contains(&h2_address) && stdout.contains("Connection refused"),
        "the message names the address and the reason: {stdout}"
    );
    for host in ["h1", "h3"] {
        let line = recap_line(&stdout, host);
        assert_eq!(
            (stat_field(&line, "ok"), stat_field(&line, "unreachable")),
            (2, 0),
            "{line}"
        );
    }
}

#[test]
fn jump_only_hosts_are_reached_through_proxy_jump() {
    let hosts = SshHosts::builder()
        .hosts(3)
        .jump_only(1)
        .jump_only(2)
        .start()
        .expect("testbed starts");
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    work.write("site.yml", ECHO_PLAY);
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for host in ["h1", "h2", "h3"] {
        assert!(
            stdout.contains(&format!("\"r.stdout\": \"on {host} as root\"")),
            "{stdout}"
        );
    }
    // Files travel through the tunnel too.
    let dest = hosts.hosts()[2].base_dir.join("through-jump.txt");
    work.write(
        "copy.yml",
        &format!(
            "- hosts: h3\n  gather_facts: false\n  tasks:\n    - copy:\n        dest: {}\n        content: \"via h1\\n\"\n",
            dest.display()
        ),
    );
    let out = work.play(&["-i", &inv, "copy.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&dest).expect("copied"), "via h1\n");
}

#[test]
fn become_root_from_a_nopasswd_user_and_a_clear_failure_when_sudo_wants_a_password() {
    let hosts = SshHosts::builder()
        .hosts(1)
        .test_user("alice")
        .test_user_with_password("bob", "b0b-s3cret")
        .start()
        .expect("testbed starts");
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    work.write(
        "become.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n\
         \x20   - command: id -un\n      register: plain\n\
         \x20   - command: id -u\n      become: true\n      register: root\n\
         \x20   - assert:\n        that:\n          - plain.stdout == ansible_user\n          - root.stdout == '0'\n",
    );
    let out = work.play(&["-i", &inv, "-e", "ansible_user=alice", "become.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    // -u names the remote user too, and wins over the inventory's ansible_user.
    work.write(
        "whoami.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n\
         \x20   - command: id -un\n      register: who\n\
         \x20   - assert:\n        that: who.stdout == 'alice'\n",
    );
    let out = work.play(&["-i", &inv, "-u", "alice", "whoami.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // bob's sudo asks for a password: the task fails at once instead of waiting for one.
    let out =
        output_unless_hung(work.command(&["-i", &inv, "-e", "ansible_user=bob", "become.yml"]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("fatal: [h1]: FAILED!"), "{stdout}");
    assert!(stdout.contains("password is required"), "{stdout}");
    assert!(
        stdout.contains("ansible_become_password"),
        "the message says what to do: {stdout}"
    );
    assert!(!stdout.contains("b0b-s3cret") && !text(&out.stderr).contains("b0b-s3cret"));

    // With the password (fed on stdin, never in argv): bob becomes root, copies included.
    work.write(
        "become-pw.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n\
         \x20   - command: id -u\n      become: true\n      register: root\n\
         \x20   - assert:\n        that: root.stdout == '0'\n\
         \x20   - copy:\n        content: \"root's\\n\"\n        dest: /root/play-become-check.txt\n      become: true\n      check_mode: true\n",
    );
    let out = output_unless_hung(work.command(&[
        "-i",
        &inv,
        "-e",
        "ansible_user=bob",
        "-e",
        "ansible_become_password=b0b-s3cret",
        "-vvv",
        "become-pw.yml",
    ]));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("b0b-s3cret") && !stderr.contains("b0b-s3cret"),
        "the password leaked"
    );

    // A wrong password is a clear failure, not a hang.
    let out = output_unless_hung(work.command(&[
        "-i",
        &inv,
        "-e",
        "ansible_user=bob",
        "-e",
        "ansible_become_password=wrong",
        "become.yml",
    ]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("sudo refused the become password for root on h1"),
        "{stdout}"
    );
}

/// Runs `command`; a run that has not ended after two minutes counts as hung and is killed,
/// so that a test of "never waits for a password" fails instead of hanging the suite.
fn output_unless_hung(mut command: Command) -> Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("play starts");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished
            .recv_timeout(std::time::Duration::from_secs(120))
            .is_err()
        {
            // Only our own child, by its pid.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return true;
        }
        false
    });
    let out = child.wait_with_output().expect("play ends");
    let _ = done.send(());
    let hung = watchdog.join().unwrap_or(false);
    assert!(!hung, "play hung: {}", text(&out.stdout));
    out
}

/// Bytes that are neither text nor compressible, the same on every run.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A YAML double-quoted scalar.
fn yaml_quoted(text: &str) -> String {
    serde_json::to_string(text).expect("json string")
}

#[test]
fn files_of_several_mib_and_hostile_names_and_contents_travel_intact() {
    let hosts = start(1);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    let base = hosts.hosts()[0].base_dir.clone();
    let big = noise(6 * 1024 * 1024 + 123);
    std::fs::write(work.path().join("big.bin"), &big).expect("write");
    let hostile_name = "a 'b' \"c\" $(touch pwned) `touch pwned2` ;x\\y.txt";
    let hostile_content =
        "line 1\n'single' \"double\" $(touch pwned3) `id` \\ %s {{ '{' }}\n\ttab\n";
    let big_dest = base.join("dir with space/big.bin");
    let hostile_dest = base.join(hostile_name);
    let fetched = work.path().join("fetched");
    work.write(
        "site.yml",
        &format!(
            "- hosts: targets\n  gather_facts: false\n  tasks:\n\
             \x20   - file:\n        path: {dir}\n        state: directory\n\
             \x20   - copy:\n        src: big.bin\n        dest: {big}\n        mode: '0640'\n\
             \x20   - copy:\n        content: {content}\n        dest: {hostile}\n\
             \x20   - fetch:\n        src: {hostile}\n        dest: {fetched}\n        flat: true\n\
             \x20   - copy:\n        content: \"#!/bin/sh\\n\"\n        dest: {tool}\n        mode: '0775'\n\
             \x20   - lineinfile:\n        path: {shared}\n        line: x\n        create: true\n        mode: '0664'\n",
            tool = yaml_quoted(&base.join("tool").display().to_string()),
            shared = yaml_quoted(&base.join("shared.conf").display().to_string()),
            dir = yaml_quoted(&base.join("dir with space").display().to_string()),
            big = yaml_quoted(&big_dest.display().to_string()),
            content = yaml_quoted(hostile_content),
            hostile = yaml_quoted(&hostile_dest.display().to_string()),
            fetched = yaml_quoted(&format!("{}/", fetched.display())),
        ),
    );
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        std::fs::read(&big_dest).expect("big copied") == big,
        "big file differs"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&big_dest)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // Modes are exact: the transfer sets them without the server's umask (022) in the way.
    for (name, want) in [("tool", 0o775), ("shared.conf", 0o664)] {
        let mode = std::fs::metadata(base.join(name))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, want, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(&hostile_dest).expect("hostile copied"),
        hostile_content.replace("{{ '{' }}", "{")
    );
    assert_eq!(
        std::fs::read_to_string(fetched.join(hostile_name)).expect("fetched"),
        hostile_content.replace("{{ '{' }}", "{")
    );
    let leftovers: Vec<String> = std::fs::read_dir(&base)
        .expect("ls")
        .chain(std::fs::read_dir(base.join("dir with space")).expect("ls"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.starts_with("pwned"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files or injected commands: {leftovers:?}"
    );
    assert!(!Path::new("pwned").exists() && !hosts.dir().join("pwned").exists());

    // Converged: nothing changes, nothing is transferred.
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        stat_field(&recap_line(&stdout, "h1"), "changed"),
        0,
        "{stdout}"
    );
}

#[test]
fn a_transfer_cut_off_midway_leaves_the_old_file_intact() {
    let hosts = start(1);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    let base = hosts.hosts()[0].base_dir.clone();
    let dest = base.join("config.bin");
    std::fs::write(&dest, "the old contents\n").expect("old file");
    // Big enough that the transfer is still running when its first MiB is seen.
    let big = noise(160 * 1024 * 1024);
    std::fs::write(work.path().join("big.bin"), &big).expect("write");
    drop(big);
    work.write(
        "site.yml",
        &format!(
            "- hosts: targets\n  gather_facts: false\n  tasks:\n\
             \x20   - copy:\n        src: big.bin\n        dest: {}\n",
            yaml_quoted(&dest.display().to_string())
        ),
    );
    let child = work.spawn(&["-i", &inv, "site.yml"]);
    // Wait for a temp file with data in it, then cut every connection to the host.
    let mut cut = false;
    for _ in 0..60_000 {
        let growing = std::fs::read_dir(&base)
            .expect("ls")
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name().to_string_lossy().contains(".play-tmp-")
                    && e.metadata().map(|m| m.len() > 1024 * 1024).unwrap_or(false)
            });
        if growing {
            hosts.kill_sessions(0);
            cut = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let out = child.wait_with_output().expect("play ends");
    let stdout = text(&out.stdout);
    assert!(cut, "the transfer was never seen: {stdout}");
    assert_eq!(
        std::fs::read_to_string(&dest).expect("dest"),
        "the old contents\n",
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert_eq!(stat_field(&recap_line(&stdout, "h1"), "unreachable"), 1);
    assert!(
        stdout.contains("the connection to root@") && stdout.contains("broke"),
        "{stdout}"
    );
    // play removes the partial temp file over a new connection when it can; here the
    // testbed's kill loop (several rounds) usually kills that connection too, so a hidden
    // temp file may stay. Nothing else may.
    let others: Vec<String> = std::fs::read_dir(&base)
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "config.bin" && !n.starts_with(".play-tmp-"))
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

/// How many logins sshd accepted on each host.
fn accepted_logins(hosts: &SshHosts) -> Vec<usize> {
    hosts
        .hosts()
        .iter()
        .map(|h| {
            std::fs::read_to_string(h.log_file())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("Accepted "))
                .count()
        })
        .collect()
}

#[test]
fn fifty_hosts_many_tasks_two_plays_one_connection_per_host() {
    let hosts = start(50);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    let mut tasks = String::new();
    for i in 0..12 {
        tasks.push_str(&format!(
            "    - copy:\n        dest: \"{{{{ base_dir }}}}/file{i}.txt\"\n        content: \"{i} {{{{ inventory_hostname }}}}\\n\"\n\
             \x20   - command: cat \"{{{{ base_dir }}}}/file{i}.txt\"\n      register: r{i}\n\
             \x20     changed_when: false\n      failed_when: r{i}.stdout != '{i} ' ~ inventory_hostname\n"
        ));
    }
    work.write(
        "site.yml",
        &format!(
            "- hosts: targets\n  gather_facts: false\n  tasks:\n{tasks}\
             - hosts: targets\n  gather_facts: false\n  tasks:\n\
             \x20   - stat:\n        path: \"{{{{ base_dir }}}}/file0.txt\"\n      register: st\n\
             \x20   - assert:\n        that: st.stat.exists\n"
        ),
    );
    let out = work.play(&["-i", &inv, "site.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for host in hosts.hosts() {
        let line = recap_line(&stdout, &host.name);
        assert_eq!(
            (stat_field(&line, "ok"), stat_field(&line, "changed")),
            (26, 12),
            "{line}"
        );
    }
    assert_eq!(accepted_logins(&hosts), vec![1; 50], "one login per host");
}

/// A host that is down when the play starts (rebooting): wait_for_connection keeps trying
/// until it is back, and later tasks use the session it opened; a host that stays down
/// fails the task once `timeout` has passed, without stopping the others.
#[test]
fn wait_for_connection_waits_for_a_host_to_come_back_and_gives_up_on_one_that_does_not() {
    let hosts = start(3);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    hosts.stop(1);
    hosts.stop(2);
    work.write(
        "site.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n\
         \x20   - wait_for_connection:\n        sleep: 1\n        timeout: \"{{ 3 if inventory_hostname == 'h3' else 600 }}\"\n      register: waited\n\
         \x20   - command: echo back\n      register: back\n\
         \x20   - assert:\n        that: back.stdout == 'back'\n\
         \x20   - assert:\n        that: waited.elapsed >= 1\n      when: inventory_hostname == 'h2'\n",
    );
    let child = work.spawn(&["-i", &inv, "site.yml"]);
    // h1 answered the first attempt: the play is waiting on h2 (and h3).
    while accepted_logins(&hosts)[0] == 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    hosts.restart(1).expect("h2 comes back");
    let out = child.wait_with_output().expect("play ends");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for (host, ok) in [("h1", 3), ("h2", 4)] {
        let line = recap_line(&stdout, host);
        assert_eq!(
            (stat_field(&line, "ok"), stat_field(&line, "failed")),
            (ok, 0),
            "{line}"
        );
    }
    let h3 = recap_line(&stdout, "h3");
    assert_eq!(
        (stat_field(&h3, "failed"), stat_field(&h3, "unreachable")),
        (1, 0),
        "{h3}"
    );
    assert!(
        stdout.contains("fatal: [h3]: FAILED! => {\"changed\": false, \"elapsed\": "),
        "{stdout}"
    );
    assert!(
        stdout.contains("timed out waiting for ping module test: "),
        "{stdout}"
    );
    // One session each for h1 and h2, the one wait_for_connection opened.
    assert_eq!(&accepted_logins(&hosts)[..2], &[1, 1], "{stdout}");
}

#[test]
fn delegated_tasks_reuse_one_session_to_the_delegate() {
    let hosts = start(3);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    let mut tasks = String::new();
    for i in 0..4 {
        tasks.push_str(&format!(
            "    - command: echo {i} from {{{{ inventory_hostname }}}}\n      delegate_to: h1\n      changed_when: false\n"
        ));
    }
    work.write(
        "site.yml",
        &format!("- hosts: targets\n  gather_facts: false\n  tasks:\n{tasks}"),
    );
    // One worker: the delegations happen one after another, so one pooled session serves them all.
    let out = work.play(&["-i", &inv, "-f", "1", "site.yml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("ok: [h2 -> h1]"),
        "{}",
        text(&out.stdout)
    );
    // h1: one session for the delegations; h1's own tasks are delegated to itself and use its own.
    let logins = accepted_logins(&hosts);
    assert_eq!(
        logins[1..],
        [0, 0],
        "h2 and h3 were never contacted: {logins:?}"
    );
    assert!(
        logins[0] <= 2,
        "12 delegated commands, at most 2 sessions to h1: {logins:?}"
    );
}

#[test]
fn keepalives_keep_a_quiet_command_alive_and_give_up_on_a_frozen_host() {
    let hosts = start(2);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    // With answers to every keepalive, a command quiet for longer than the interval is fine.
    work.write(
        "quiet.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n    - command: sleep 5\n",
    );
    let out = work.play(&[
        "-i",
        &inv,
        "-e",
        "ansible_ssh_extra_args='-o ServerAliveInterval=1 -o ServerAliveCountMax=1'",
        "quiet.yml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // A host whose sshd stops answering (SIGSTOP) is given up after the keepalives go
    // unanswered, instead of being waited for forever.
    work.write(
        "frozen.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n\
         \x20   - command: 'true'\n\
         \x20   - command: sleep 2\n\
         \x20   - command: 'true'\n",
    );
    let mut child = work
        .command(&[
            "-i",
            &inv,
            "-e",
            "ansible_ssh_extra_args='-o ServerAliveInterval=1 -o ServerAliveCountMax=1'",
            "frozen.yml",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("play starts");
    // Freeze h2's session processes once it runs the sleep (connected and authenticated).
    let mut frozen = Vec::new();
    for _ in 0..10_000 {
        let pids = hosts.session_pids(1);
        let sleeping = pids.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        if sleeping {
            for pid in &pids {
                let _ = Command::new("kill")
                    .args(["-STOP", &pid.to_string()])
                    .status();
            }
            frozen = pids;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("piped"), &mut stdout)
        .expect("read");
    let status = child.wait().expect("play ends");
    for pid in &frozen {
        let _ = Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status();
    }
    assert!(!frozen.is_empty(), "h2's session was never seen");
    assert_eq!(status.code(), Some(3), "{stdout}");
    assert_eq!(
        stat_field(&recap_line(&stdout, "h2"), "unreachable"),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("no answer from the server"), "{stdout}");
    assert_eq!(stat_field(&recap_line(&stdout, "h1"), "ok"), 3, "{stdout}");
}

#[test]
fn a_command_outliving_the_command_timeout_makes_the_host_unreachable() {
    let hosts = start(1);
    let work = Workdir::new();
    let inv = inventory(&work, &hosts);
    work.write(
        "slow.yml",
        "- hosts: targets\n  gather_facts: false\n  tasks:\n    - command: sleep 600\n",
    );
    let out = work.play(&["-i", &inv, "-e", "ansible_command_timeout=1", "slow.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("ansible_command_timeout"), "{stdout}");
}

/// The roles conformance fixture (diamond dependency, two parameter sets, precedence, handlers
/// across roles, a second roles path) on three real sshd hosts: the same output as
/// ansible-core 2.19 gave over the local connection, first and second run.
#[test]
fn roles_fixture_over_ssh_matches_ansible() {
    let hosts = start(3);
    let work = Workdir::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance");
    copy_dir(&fixtures.join("roles"), work.path());
    hosts.write_inventory(work.path(), "fleet");
    let run = || {
        work.command(&["-i", "inventory.yml", "site.yml", "-e", "prec_extra=extra"])
            .env("ANSIBLE_ROLES_PATH", "more_roles")
            .output()
            .expect("play runs")
    };
    let golden = |name: &str| std::fs::read_to_string(fixtures.join(name)).expect("golden");
    let first = run();
    assert_eq!(
        text(&first.stdout),
        golden("roles.ansible.out"),
        "stderr: {}",
        text(&first.stderr)
    );
    let second = run();
    assert_eq!(
        text(&second.stdout),
        golden("roles.second.ansible.out"),
        "stderr: {}",
        text(&second.stderr)
    );
    assert_eq!(
        accepted_logins(&hosts),
        vec![2; 3],
        "one session per host per run"
    );
}
