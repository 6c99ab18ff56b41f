//! Helpers shared by the end-to-end test binaries (each includes this file with `mod common;`).

// Every test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

/// Process output as text (lossy: tests compare against UTF-8 goldens).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copy a fixture tree into a test's working directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// One host's PLAY RECAP counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

/// The PLAY RECAP counts of `host` in `out` (panics, showing `out`, when there is none).
pub fn recap(out: &str, host: &str) -> Recap {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{host} ")) && l.contains(" : ok="))
        .unwrap_or_else(|| panic!("no recap line for {host} in:\n{out}"));
    let field = |name: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
    };
    Recap {
        ok: field("ok"),
        changed: field("changed"),
        unreachable: field("unreachable"),
        failed: field("failed"),
        skipped: field("skipped"),
        rescued: field("rescued"),
        ignored: field("ignored"),
    }
}

/// The `play` binary run in `dir` with plain output, `dir/home` as HOME (created), no agent
/// and no inherited Ansible settings.
pub fn play_command(dir: &Path, args: &[&str]) -> std::process::Command {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_play"));
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("ANSIBLE_INVENTORY")
        .env_remove("ANSIBLE_HOST_KEY_CHECKING")
        .env_remove("ANSIBLE_TIMEOUT")
        .env_remove("ANSIBLE_PRIVATE_KEY_FILE")
        .env_remove("PLAY_CONFIG");
    command
}

/// Run `play` (see [`play_command`]); stdout and stderr together, and whether it exited 0.
pub fn run_play(dir: &Path, args: &[&str]) -> (String, i32) {
    let out = play_command(dir, args).output().expect("play runs");
    let mut all = text(&out.stdout);
    all.push_str(&text(&out.stderr));
    (all, out.status.code().unwrap_or(-1))
}

/// What [`converge`] saw: the `--check --diff` run, the first and the second real run.
pub struct Converged {
    pub check: String,
    pub first: String,
    pub second: String,
}

/// A module test's three runs of one playbook against `host`: `--check --diff` (must exit 0
/// and report changes; `after_check` then verifies the target did not change), the first
/// real run (`--diff`, changed as often as the check run said) and the second (changed=0).
/// Every run must succeed without failed or unreachable hosts.
pub fn converge(
    dir: &Path,
    inventory: &Path,
    playbook: &str,
    host: &str,
    after_check: impl FnOnce(),
) -> Converged {
    let inv = inventory.to_str().expect("utf-8 path");
    let (check, code) = run_play(dir, &["-i", inv, playbook, "--check", "--diff"]);
    assert_eq!(code, 0, "check run failed:\n{check}");
    let check_recap = recap(&check, host);
    assert!(
        check_recap.changed > 0,
        "check run reports no change:\n{check}"
    );
    after_check();
    let (first, code) = run_play(dir, &["-i", inv, playbook, "--diff"]);
    assert_eq!(code, 0, "first run failed:\n{first}");
    let first_recap = recap(&first, host);
    assert_eq!(
        first_recap.changed, check_recap.changed,
        "the check run predicted another number of changes:\n{check}\n{first}"
    );
    let (second, code) = run_play(dir, &["-i", inv, playbook, "--diff"]);
    assert_eq!(code, 0, "second run failed:\n{second}");
    let second_recap = recap(&second, host);
    assert_eq!(
        second_recap.changed, 0,
        "second run is not idempotent:\n{second}"
    );
    for (name, out) in [("check", &check), ("first", &first), ("second", &second)] {
        let r = recap(out, host);
        assert_eq!((r.failed, r.unreachable), (0, 0), "{name} run:\n{out}");
    }
    Converged {
        check,
        first,
        second,
    }
}
