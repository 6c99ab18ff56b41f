//! Loops of `file` and `lineinfile` items, which play runs in one batch (`Module::run_many`):
//! the output is ansible-core's, and the same as running the items one by one.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_dir, play_command, recap, text};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `play` in `dir` with `PLAY_BATCH_LOOPS` set as given; stdout with `dir` written
/// `FIXTURE_DIR`, and stderr.
fn play(dir: &Path, batch: bool, extra_env: &[(&str, &str)], args: &[&str]) -> (String, String) {
    let mut command = play_command(dir, args);
    command.env("PLAY_BATCH_LOOPS", if batch { "1" } else { "0" });
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let out = command.output().expect("play runs");
    let here = std::fs::canonicalize(dir).expect("canonical");
    let stdout = text(&out.stdout).replace(&here.display().to_string(), "FIXTURE_DIR");
    (stdout, text(&out.stderr))
}

#[test]
fn file_and_lineinfile_loops_match_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixtures().join("conformance/loops.yml"),
        dir.path().join("loops.yml"),
    )
    .expect("copy");
    let args = ["-i", "localhost,", "-c", "local", "-D", "loops.yml"];
    for golden in ["loops.ansible.out", "loops.second.ansible.out"] {
        let (stdout, stderr) = play(dir.path(), true, &[], &args);
        let expected =
            std::fs::read_to_string(fixtures().join("conformance").join(golden)).expect("golden");
        assert_eq!(stdout, expected, "{golden}; stderr: {stderr}");
    }
}

/// Every file below `root` (relative path, mode, contents), sorted.
fn tree(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let rel = path
                .strip_prefix(root)
                .expect("below root")
                .display()
                .to_string();
            let data = if meta.is_file() {
                std::fs::read(&path).expect("read")
            } else {
                Vec::new()
            };
            out.push((rel, meta.permissions().mode(), data));
            if meta.is_dir() {
                todo.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A stand-in for `sudo` that counts the commands it is given and runs them as they are
/// (the tests' become user is the one running them): each command a task sends the host
/// passes through it once.
fn counting_sudo(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let sudo = bin.join("sudo");
    std::fs::write(
        &sudo,
        "#!/bin/sh\necho x >> \"$PLAY_TEST_EXEC_LOG\"\nwhile [ \"$#\" -gt 0 ] && [ \"$1\" != /bin/sh ]; do shift; done\nexec \"$@\"\n",
    )
    .expect("write sudo");
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

#[test]
fn batched_loops_give_what_items_one_by_one_give() {
    let runs: Vec<_> = [true, false]
        .into_iter()
        .map(|batch| {
            let dir = tempfile::tempdir().expect("tempdir");
            copy_dir(&fixtures().join("loop_batch"), dir.path());
            let bin = counting_sudo(dir.path());
            let log = dir.path().join("execs.log");
            let path = format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let env = [
                ("PATH", path.as_str()),
                ("PLAY_TEST_EXEC_LOG", log.to_str().expect("utf-8")),
            ];
            let args = ["-i", "localhost,", "-c", "local", "-v", "-D", "site.yml"];
            let mut outputs = Vec::new();
            let mut execs = Vec::new();
            for extra in [&["--check"][..], &[], &[]] {
                let _ = std::fs::remove_file(&log);
                let all: Vec<&str> = args.iter().chain(extra).copied().collect();
                let (stdout, stderr) = play(dir.path(), batch, &env, &all);
                let count = std::fs::read_to_string(&log)
                    .map(|l| l.lines().count())
                    .unwrap_or(0);
                outputs.push((stdout, stderr));
                execs.push(count);
            }
            (outputs, execs, tree(&dir.path().join("tree")), dir)
        })
        .collect();
    let (batched, one_by_one) = (&runs[0], &runs[1]);
    // A failed change quotes the shell's complaint, which names the line of the script it
    // ran: one script for the batch, one per item one by one.
    let script_line = regex::Regex::new(r"/bin/sh: \d+: ").expect("regex");
    let same = |out: &str| script_line.replace_all(out, "/bin/sh: N: ").into_owned();
    for (i, name) in ["check", "first", "second"].iter().enumerate() {
        assert_eq!(
            same(&batched.0[i].0),
            same(&one_by_one.0[i].0),
            "{name} run: batched output differs; stderr: {}",
            batched.0[i].1
        );
    }
    assert_eq!(batched.2, one_by_one.2, "the trees differ");
    // The check run changed nothing; the real runs did what the playbook says.
    let first = &batched.0[1].0;
    let r = recap(first, "localhost");
    assert_eq!((r.failed, r.ignored), (0, 2), "{first}");
    assert!(r.changed > 0, "{first}");
    assert_eq!(
        recap(&batched.0[2].0, "localhost").changed,
        1,
        "{}",
        batched.0[2].0
    );
    assert!(batched
        .2
        .iter()
        .any(|(p, _, d)| p == "conf/app.conf" && text(d) == "one=3\ntwo=it's \"$(two)\" `x`\n"));
    // Each run sent fewer commands batched (loops of 6 and 4 items).
    for (i, name) in ["check", "first", "second"].iter().enumerate() {
        assert!(
            batched.1[i] + 6 <= one_by_one.1[i],
            "{name} run: {} commands batched, {} one by one",
            batched.1[i],
            one_by_one.1[i]
        );
    }
}
