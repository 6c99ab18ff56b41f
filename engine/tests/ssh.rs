//! End-to-end tests of the ssh connection: the real `play` binary against real sshd hosts
//! started by the testbed (needs root and openssh-server).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testbed::SshHosts;

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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
         \x20   - command: echo \"hello from $TESTBED_HOST\"\n      register: r\n\
         \x20   - shell: 'echo out; echo err >&2; exit 3'\n      register: failing\n      ignore_errors: true\n\
         \x20   - assert:\n        that:\n          - r.stdout == 'hello from ' ~ inventory_hostname\n\
         \x20         - failing.rc == 3\n          - failing.stdout == 'out'\n          - failing.stderr == 'err'\n",
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
        assert_eq!(stat_field(&line, "ignored"), 1, "{line}");
    }
}
