//! End-to-end tests: the real `play` binary on real playbooks over the local connection.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{copy_dir, text};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `play` in `dir` with plain (uncoloured) output, none of the caller's settings, and these
/// environment variables.
fn play_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_play"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ANSIBLE_INVENTORY")
        .env_remove("PLAY_CONFIG")
        .env_remove("ANSIBLE_ROLES_PATH")
        .env_remove("PLAY_ROLES_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Run `play` in `dir` with plain (uncoloured) output.
fn play(dir: &Path, args: &[&str]) -> Output {
    play_command(dir, args, &[]).output().expect("play runs")
}

/// The PLAY RECAP line of one host.
fn recap_line(out: &str, host: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(&format!("{host} ")) && l.contains(" : ok="))
        .unwrap_or_else(|| panic!("no recap line for {host} in:\n{out}"))
        .trim_end()
        .to_string()
}

fn normalise_timestamps(s: &str) -> String {
    let re = regex::Regex::new(r#""delta": "[^"]*", "end": "[^"]*""#).expect("regex");
    let s = re.replace_all(s, r#""delta": "DELTA", "end": "END""#);
    let re = regex::Regex::new(r#""start": "[^"]*""#).expect("regex");
    re.replace_all(&s, r#""start": "START""#).into_owned()
}

/// Runs the conformance fixture `NAME.yml` on localhost (with `extra` arguments; stdin is not
/// a terminal) in a scratch directory.
fn run_conformance(name: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let playbook = format!("{name}.yml");
    std::fs::copy(
        fixtures().join("conformance").join(&playbook),
        dir.path().join(&playbook),
    )
    .expect("copy");
    let mut args = vec!["-i", "localhost,", "-c", "local", &playbook];
    args.extend(extra);
    play(dir.path(), &args)
}

/// `run_conformance`, then play's output against ansible-core's (`NAME.ansible.out`) and a
/// zero exit; returns play's output.
fn assert_matches_ansible(name: &str, extra: &[&str]) -> Output {
    let out = run_conformance(name, extra);
    let golden = fixtures()
        .join("conformance")
        .join(format!("{name}.ansible.out"));
    let expected = std::fs::read_to_string(golden).expect("golden");
    assert_eq!(text(&out.stdout), expected, "stderr: {}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    out
}

#[test]
fn values_the_run_made_are_never_templated_again_as_in_ansible() {
    assert_matches_ansible("untrusted", &[]);
}

#[test]
fn ping_answers_as_in_ansible() {
    assert_matches_ansible("ping", &[]);
}

/// A connection variable set from a command's output is text: the lookup in it never runs.
#[test]
fn become_password_from_a_result_is_not_templated() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n\
         \x20   - command: printf '%s%s lookup(\"pipe\", \"touch MARKER\") }}' '{' '{'\n      register: r\n\
         \x20   - set_fact:\n        ansible_become_password: \"{{ r.stdout }}\"\n\
         \x20   - command: \"true\"\n      become: true\n      become_user: nobody\n",
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!dir.path().join("MARKER").exists());
}

#[test]
fn vars_prompt_without_a_terminal_warns_and_takes_defaults_as_in_ansible() {
    let out = assert_matches_ansible("prompt", &["-e", "from_cli=cli"]);
    assert_eq!(
        text(&out.stderr),
        "[WARNING]: Not prompting as we are not in interactive mode\n"
    );
}

#[test]
fn vars_prompt_without_a_default_or_a_terminal_stops_before_any_host() {
    let out = run_conformance("prompt", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "vars_prompt 'from_cli' has no default and there is no terminal to ask on; \
             give it with -e from_cli=VALUE"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("prompt.yml:3:"), "{stderr}");
    assert!(
        !text(&out.stdout).contains("PLAY ["),
        "{}",
        text(&out.stdout)
    );
}

/// On a terminal (a pty from util-linux `script`): a shown answer, a hidden one asked twice
/// (`confirm`), and `unsafe` keeping what was typed as text.
#[test]
fn vars_prompt_asks_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ask.yml"),
        "- hosts: localhost\n  gather_facts: false\n  vars_prompt:\n\
         \x20   - name: release\n      prompt: Which release\n      private: false\n      default: '1.0'\n\
         \x20   - name: secret\n      prompt: Password\n      confirm: true\n      unsafe: true\n\
         \x20 tasks:\n    - debug:\n        msg: 'release={{ release }} secret={{ secret }}'\n",
    )
    .expect("write");
    let command = format!(
        "{} -i localhost, -c local ask.yml",
        env!("CARGO_BIN_EXE_play")
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"2.5\np{{ x }}\np{{ x }}\n")
            .expect("answers");
    }
    let out = child.wait_with_output().expect("play ends");
    let stdout = text(&out.stdout).replace('\r', "");
    assert!(stdout.contains("Which release [1.0]: "), "{stdout}");
    assert!(stdout.contains("confirm Password: "), "{stdout}");
    // What was typed for a private prompt is masked in the output, as vault values are.
    assert!(
        stdout.contains("\"msg\": \"release=2.5 secret=********\""),
        "{stdout}"
    );
    // (The pty itself may echo input typed before the prompt switched echo off.)
    let results = stdout.split("PLAY [").nth(1).unwrap_or_default();
    assert!(!results.contains("p{{ x }}"), "{stdout}");
}

#[test]
fn group_by_and_add_host_shape_later_tasks_and_plays_as_in_ansible() {
    let fixture = fixtures().join("conformance/dynamic");
    for (args, golden) in [
        (vec![], "site.ansible.out"),
        (vec!["--check"], "site.check.ansible.out"),
    ] {
        let mut all = vec!["-i", "hosts.yml", "site.yml"];
        all.extend(args);
        let out = play(&fixture, &all);
        let expected = std::fs::read_to_string(fixture.join(golden)).expect("golden");
        assert_eq!(
            text(&out.stdout),
            expected,
            "{golden}: {}",
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn control_flow_output_matches_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixtures().join("conformance/flow.yml"),
        dir.path().join("flow.yml"),
    )
    .expect("copy");
    let out = play(dir.path(), &["-i", "localhost,", "-c", "local", "flow.yml"]);
    let stdout = normalise_timestamps(&text(&out.stdout));
    let expected =
        std::fs::read_to_string(fixtures().join("conformance/flow.ansible.out")).expect("golden");
    assert_eq!(stdout, expected, "stderr: {}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn diff_output_matches_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixtures().join("conformance/diff.yml"),
        dir.path().join("diff.yml"),
    )
    .expect("copy");
    let out = play(
        dir.path(),
        &["-i", "localhost,", "-c", "local", "-D", "diff.yml"],
    );
    let here = std::fs::canonicalize(dir.path()).expect("canonical");
    let stdout = text(&out.stdout).replace(&here.display().to_string(), "FIXTURE_DIR");
    let expected =
        std::fs::read_to_string(fixtures().join("conformance/diff.ansible.out")).expect("golden");
    assert_eq!(stdout, expected, "stderr: {}", text(&out.stderr));
}

#[test]
fn inventory_variables_includes_and_handlers_match_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixtures().join("conformance/vars"), dir.path());
    let out = play(dir.path(), &["-i", "hosts.ini", "site.yml"]);
    let stdout = text(&out.stdout);
    let expected =
        std::fs::read_to_string(fixtures().join("conformance/vars.ansible.out")).expect("golden");
    // Included files are printed with their absolute path; the golden says FIXTURE_DIR for it.
    let here = std::fs::canonicalize(dir.path()).expect("canonical");
    let stdout = stdout.replace(&here.display().to_string(), "FIXTURE_DIR");
    assert_eq!(stdout, expected, "stderr: {}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
}

/// Every core module once: the recaps of a check run on a new host, a first run and a second
/// run are ansible-core 2.19's on the same files (and its check run fails where Ansible's does:
/// lineinfile on a file the check run did not create).
#[test]
fn core_modules_converge_like_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("modules");
    copy_dir(&fixtures().join("conformance/modules"), &work);
    let base = dir.path().join("target-host");
    std::fs::create_dir(&base).expect("base");
    let base_var = format!("base_dir={}", base.display());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            &base_var,
            "site.yml",
        ];
        args.extend_from_slice(extra);
        let out = play(&work, &args);
        (
            recap_line(&text(&out.stdout), "localhost"),
            text(&out.stdout),
        )
    };
    let (check, check_out) = run(&["--check"]);
    assert_eq!(check, "localhost                  : ok=8    changed=7    unreachable=0    failed=1    skipped=2    rescued=0    ignored=0", "{check_out}");
    assert_eq!(
        std::fs::read_dir(&base).expect("ls").count(),
        0,
        "check mode changed the target"
    );
    let (first, first_out) = run(&[]);
    assert_eq!(first, "localhost                  : ok=23   changed=16   unreachable=0    failed=0    skipped=0    rescued=0    ignored=0", "{first_out}");
    let (second, second_out) = run(&[]);
    assert_eq!(second, "localhost                  : ok=21   changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0", "{second_out}");
    assert_eq!(
        std::fs::read_to_string(base.join("fetched/kind")).expect("fetched"),
        "Linux host\n"
    );
    assert_eq!(
        std::fs::read_link(base.join("motd")).expect("link"),
        base.join("etc/motd")
    );
}

#[test]
fn play_and_task_keywords_match_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixtures().join("conformance/keywords"), dir.path());
    let out = play(dir.path(), &["-i", "hosts.yml", "site.yml"]);
    let here = std::fs::canonicalize(dir.path()).expect("canonical");
    let stdout = text(&out.stdout).replace(&here.display().to_string(), "FIXTURE_DIR");
    let expected = std::fs::read_to_string(fixtures().join("conformance/keywords.ansible.out"))
        .expect("golden");
    assert_eq!(stdout, expected, "stderr: {}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "a3 failed");
    assert!(!stdout.contains("hunter2"), "no_log output leaked");
}

#[test]
fn meta_end_host_and_end_play_count_like_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixtures().join("conformance/keywords"), dir.path());
    let out = play(dir.path(), &["-i", "hosts.yml", "meta.yml"]);
    let stdout = text(&out.stdout);
    let recap: Vec<String> = ["a1", "a2", "a3", "a4"]
        .iter()
        .map(|h| recap_line(&stdout, h))
        .collect();
    assert_eq!(
        recap,
        [
            "a1                         : ok=3    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0",
            "a2                         : ok=1    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0",
            "a3                         : ok=3    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0",
            "a4                         : ok=3    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0",
        ],
        "{stdout}"
    );
    assert!(stdout.contains("does not support raw params"), "{stdout}");
}

#[test]
fn tag_selection_matches_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixtures().join("conformance/tags.yml"),
        dir.path().join("tags.yml"),
    )
    .expect("copy");
    // The tasks ansible-playbook 2.19 ran for each selection of the same playbook.
    let cases: &[(&[&str], &str)] = &[
        (&[], "untagged web db always in-block"),
        (&["-t", "web"], "web always"),
        (&["-t", "web,debug"], "web always never-debug"),
        (&["--skip-tags", "web"], "untagged db always in-block"),
        (&["-t", "never"], "always never never-debug"),
        (&["-t", "tagged"], "untagged web db always in-block"),
        (&["-t", "untagged"], "always"),
        (&["--skip-tags", "always"], "untagged web db in-block"),
        (&["-t", "blk"], "always in-block"),
        (&["-t", "all"], "untagged web db always in-block"),
        (&["--start-at-task", "db"], "db always in-block"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["-i", "localhost,", "-c", "local"];
        args.extend_from_slice(extra);
        args.push("tags.yml");
        let out = play(dir.path(), &args);
        let ran: Vec<String> = text(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("TASK ["))
            .filter_map(|l| l.split(']').next().map(str::to_string))
            .collect();
        assert_eq!(ran.join(" "), *expected, "play {}", extra.join(" "));
    }
}

#[test]
fn settings_come_from_flags_then_ansible_env_then_play_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, host) in [
        ("toml.ini", "from_toml"),
        ("env.ini", "from_env"),
        ("flag.ini", "from_flag"),
    ] {
        std::fs::write(
            dir.path().join(name),
            format!("{host} ansible_connection=local\n"),
        )
        .expect("inventory");
    }
    std::fs::write(
        dir.path().join("play.toml"),
        "inventory = \"toml.ini\"\nforks = 3\n",
    )
    .expect("config");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks: []\n",
    )
    .expect("playbook");
    let hosts = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_play"));
        cmd.args(args)
            .arg("--list-hosts")
            .arg("site.yml")
            .current_dir(dir.path())
            .env_remove("ANSIBLE_INVENTORY")
            .env_remove("PLAY_CONFIG");
        if let Some(e) = env {
            cmd.env("ANSIBLE_INVENTORY", e);
        }
        let out = cmd.output().expect("play runs");
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("      "))
            .map(|l| l.trim().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(hosts(&[], None), ["from_toml"]);
    assert_eq!(hosts(&[], Some("env.ini")), ["from_env"]);
    assert_eq!(hosts(&["-i", "flag.ini"], Some("env.ini")), ["from_flag"]);
    std::fs::write(dir.path().join("play.toml"), "inventry = \"toml.ini\"\n").expect("config");
    let out = play(dir.path(), &["site.yml"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("play.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn become_runs_commands_and_writes_files_as_the_become_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    // The become user must be able to write here (the temp dir itself is private to root).
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    std::fs::write(
        dir.path().join("site.yml"),
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - command: id -un\n      become: true\n      become_user: nobody\n      register: who\n      changed_when: false\n    - assert:\n        that: who.stdout == 'nobody'\n    - copy:\n        content: \"as nobody\\n\"\n        dest: {}/by-nobody.txt\n      become: true\n      become_user: nobody\n",
            shared.display()
        ),
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let meta = std::fs::metadata(shared.join("by-nobody.txt")).expect("written");
    let nobody_uid = Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .expect("id");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta).to_string(),
        text(&nobody_uid.stdout).trim()
    );
}

fn three_local_hosts(dir: &Path) {
    std::fs::write(
        dir.join("hosts.ini"),
        "a1 ansible_connection=local\na2 ansible_connection=local\na3 ansible_connection=local\n",
    )
    .expect("inventory");
}

#[test]
fn strategy_free_lets_hosts_run_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    three_local_hosts(dir.path());
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  strategy: free\n  tasks:\n\
         \x20   - shell: \"{{ 'sleep 2; touch ' ~ playbook_dir ~ '/a1-slow-done' if inventory_hostname == 'a1' else 'true' }}\"\n\
         \x20   - stat:\n        path: \"{{ playbook_dir }}/a1-slow-done\"\n      register: slow\n\
         \x20   - copy:\n        content: \"saw {{ slow.stat.exists }}\\n\"\n        dest: \"{{ playbook_dir }}/{{ inventory_hostname }}-saw\"\n",
    )
    .expect("playbook");
    let out = play(dir.path(), &["-i", "hosts.ini", "site.yml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // a2 went on while a1 was still in its first task; under linear it would have waited.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a2-saw")).expect("a2"),
        "saw False\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a1-saw")).expect("a1"),
        "saw True\n"
    );
}

#[test]
fn throttle_limits_how_many_hosts_run_a_task_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    three_local_hosts(dir.path());
    // mkdir is atomic: a second host inside the critical section at the same time fails.
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - shell: \"mkdir {{ playbook_dir }}/busy && sleep 0.3 && rmdir {{ playbook_dir }}/busy\"\n      throttle: 1\n",
    )
    .expect("playbook");
    let out = play(dir.path(), &["-i", "hosts.ini", "site.yml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The bench workload (a staging app server, ~40 tasks) on one local host: the recap counts
/// are ansible-core 2.19's for the same inventory (`ansible_connection: local`).
#[test]
fn staging_workload_converges_like_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("workload");
    copy_dir(&repo_root().join("bench/workload"), &work);
    // The workload's shell tasks do not quote paths (neither would they work under Ansible with spaces).
    let base = dir.path().join("host-h1");
    let inventory = format!(
        "all:\n  children:\n    staging:\n      hosts:\n        h1:\n          ansible_connection: local\n          base_dir: \"{}\"\n",
        base.display()
    );
    std::fs::write(work.join("inventory.yml"), inventory).expect("inventory");

    let check = play(&work, &["-i", "inventory.yml", "site.yml", "--check"]);
    assert!(
        !base.join("etc").exists(),
        "check mode created files:\n{}",
        text(&check.stdout)
    );

    let first = play(&work, &["-i", "inventory.yml", "site.yml"]);
    let first_out = text(&first.stdout);
    assert_eq!(
        recap_line(&first_out, "h1"),
        "h1                         : ok=38   changed=29   unreachable=0    failed=0    skipped=2    rescued=0    ignored=0",
        "{first_out}\n{}",
        text(&first.stderr)
    );
    let second = play(&work, &["-i", "inventory.yml", "site.yml"]);
    let second_out = text(&second.stdout);
    assert_eq!(
        recap_line(&second_out, "h1"),
        "h1                         : ok=35   changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0",
        "{second_out}"
    );
    assert_eq!(second.status.code(), Some(0));
    let motd = std::fs::read_to_string(base.join("etc/motd")).expect("motd");
    assert_eq!(motd, "h1 - staging shopapp server.\nManaged by configuration management; local changes will be lost.\n");
}

#[test]
fn unknown_module_is_a_parse_error_naming_the_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("site.yml"), "- hosts: localhost\n  tasks:\n    - name: Copy the motd\n      copyy:\n        dest: /tmp/x\n").expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        text(&out.stderr),
        "ERROR! couldn't resolve module/action 'copyy'\n  --> site.yml:4:7 (task \"Copy the motd\")\n  |\n4 |       copyy:\n  |       ^\n  = did you mean 'copy'?\n"
    );
    assert!(out.stdout.is_empty(), "nothing runs: {}", text(&out.stdout));
}

#[test]
fn misspelt_argument_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: localhost\n  tasks:\n    - name: Write it\n      copy:\n        content: x\n        dets: /tmp/x\n",
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(
            "ERROR! Unsupported parameters for (copy) module: dets. Supported parameters include: "
        ),
        "{err}"
    );
    assert!(
        err.contains("  --> site.yml:4:7 (task \"Write it\")"),
        "{err}"
    );
    assert!(err.ends_with("  = did you mean 'dest'?\n"), "{err}");
}

#[test]
fn missing_template_fails_the_task_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Render\n      template:\n        src: nope.j2\n        dest: /tmp/never-written\n",
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("fatal: [localhost]: FAILED! => {\"changed\": false, \"msg\": \"Could not find or access 'nope.j2'\"}"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("  --> site.yml:5:7 (task \"Render\")"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yml"),
        "- hosts: localhost\n  tasks:\n    - debug: {msg: [1, 2}\n",
    )
    .expect("write");
    let out = play(dir.path(), &["bad.yml"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.starts_with("ERROR! YAML syntax error: "), "{err}");
    assert!(err.contains("  --> bad.yml:3:"), "{err}");
}

#[test]
fn a_playbook_that_cannot_load_runs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("marker");
    std::fs::write(
        dir.path().join("site.yml"),
        format!(
            "- hosts: localhost\n  tasks:\n    - file: path={} state=touch\n- import_playbook: missing.yml\n",
            marker.display()
        ),
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!marker.exists());
    assert!(
        text(&out.stderr).contains("missing.yml could not be found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_handler_is_refused_at_load_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: localhost\n  tasks:\n    - name: Touch\n      command: \"true\"\n      notify: restart app\n  handlers:\n    - name: restart ap\n      command: \"true\"\n",
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        text(&out.stderr),
        "ERROR! The requested handler 'restart app' was not found in either the main handlers list nor in the listening handlers list\n  --> site.yml:4:7 (task \"Touch\")\n  |\n4 |       command: \"true\"\n  |       ^\n  = did you mean 'restart ap'?\n"
    );
}

#[test]
fn undefined_variable_fails_the_task_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("site.yml"), "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Use it\n      debug:\n        msg: \"{{ nope }}\"\n").expect("write");
    let out = play(dir.path(), &["-c", "local", "site.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    // ansible-core 2.19's wording, on one line.
    assert!(
        stdout.contains(
            "fatal: [localhost]: FAILED! => {\"msg\": \"Task failed: Finalization of task args \
             for 'ansible.builtin.debug' failed: Error while resolving value for 'msg': \
             'nope' is undefined\"}\n"
        ),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).starts_with(
            "ERROR! Task failed: Finalization of task args for 'ansible.builtin.debug' failed"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unknown_limit_lists_the_nearest_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("hosts.ini"),
        "[web]\nweb01 ansible_connection=local\nweb02 ansible_connection=local\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("site.yml"), "- hosts: all\n  tasks: []\n").expect("write");
    let out = play(dir.path(), &["-i", "hosts.ini", "-l", "web03", "site.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("web03"), "{err}");
    assert!(err.contains("web01") || err.contains("web02"), "{err}");
}

#[test]
fn bad_extra_vars_is_a_bad_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: localhost\n  tasks: []\n",
    )
    .expect("write");
    let out = play(dir.path(), &["-e", "@missing.yml", "site.yml"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
}

#[test]
fn quote_hostile_values_arrive_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = "it's \"quoted\" $(touch pwned) `id` and\nnewline";
    let target_dir = dir.path().join("dir with 'quotes' and $x");
    let vars = serde_json::json!({"hostile": hostile, "target": format!("{}/file $(x).txt", target_dir.display())});
    std::fs::write(dir.path().join("vars.json"), vars.to_string()).expect("vars");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - file: path=\"{{ target | dirname }}\" state=directory\n    - copy:\n        content: \"{{ hostile }}\"\n        dest: \"{{ target }}\"\n    - command:\n        argv: [printf, '%s', \"{{ hostile }}\"]\n      register: printed\n    - assert:\n        that: printed.stdout == hostile\n    - shell: cat {{ target | quote }}\n      register: catted\n    - assert:\n        that: catted.stdout == hostile\n",
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "-e", "@vars.json", "site.yml"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let written = std::fs::read_to_string(target_dir.join("file $(x).txt")).expect("written");
    assert_eq!(written, hostile);
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn list_tasks_and_hosts_match_ansible_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yml"),
        "- name: demo play\n  hosts: localhost\n  tasks:\n    - name: say\n      debug: msg=hi\n    - name: tagged\n      debug: msg=hi\n      tags: [b, a]\n",
    )
    .expect("write");
    let out = play(dir.path(), &["p.yml", "--list-tasks", "--list-hosts"]);
    assert_eq!(
        text(&out.stdout),
        "\nplaybook: p.yml\n\n  play #1 (localhost): demo play\tTAGS: []\n    pattern: ['localhost']\n    hosts (1):\n      localhost\n    tasks:\n      say\tTAGS: []\n      tagged\tTAGS: [a, b]\n"
    );
}

#[test]
fn json_output_has_one_event_per_host_and_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yml"),
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - command: echo hi\n",
    )
    .expect("write");
    let out = play(dir.path(), &["-c", "local", "--output", "json", "p.yml"]);
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let result = events
        .iter()
        .find(|e| e["event"] == "host_result")
        .expect("a result");
    assert_eq!(result["status"], "changed");
    assert_eq!(result["result"]["stdout"], "hi");
    assert_eq!(events.last().expect("events")["event"], "recap");
}

/// The roles fixture's hosts: three hosts in group `fleet`, each with a `base_dir` of its
/// own, over the local connection. The fixture's variables live in its `group_vars/` and
/// `host_vars/`, not here, so that the same golden holds for any inventory of h1..h3: with
/// the SSH transport this becomes `testbed::SshHosts::start(3)?.write_inventory(dir, "fleet")`.
fn roles_fixture(dir: &Path) -> PathBuf {
    let work = dir.join("roles");
    copy_dir(&fixtures().join("conformance/roles"), &work);
    let mut inventory = String::from(
        "all:\n  vars:\n    ansible_connection: local\n  children:\n    fleet:\n      hosts:\n",
    );
    for host in ["h1", "h2", "h3"] {
        let base = dir.join(format!("base-{host}"));
        std::fs::create_dir_all(&base).expect("base_dir");
        inventory.push_str(&format!(
            "        {host}:\n          base_dir: \"{}\"\n",
            base.display()
        ));
    }
    std::fs::write(work.join("hosts.yml"), inventory).expect("inventory");
    work
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("conformance").join(name)).expect("golden")
}

/// Roles on three hosts: a diamond dependency runs once, a role with other parameters runs
/// again, a dependency whose tasks were all skipped runs when it comes up again, role
/// defaults lose to inventory and play vars, role vars beat play vars, set_fact beats role
/// vars but not role params, handlers are notified across roles (by name, `role : name`
/// and `listen`), a role comes from a second roles path, templates and files come from the
/// role. Output and recaps are ansible-core 2.19's, first and second run.
#[test]
fn roles_match_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = roles_fixture(dir.path());
    let run = || {
        play_command(
            &work,
            &["-i", "hosts.yml", "site.yml", "-e", "prec_extra=extra"],
            &[("ANSIBLE_ROLES_PATH", "more_roles")],
        )
        .output()
        .expect("play runs")
    };
    let first = run();
    let stdout = text(&first.stdout);
    assert_eq!(
        stdout,
        golden("roles.ansible.out"),
        "stderr: {}",
        text(&first.stderr)
    );
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(
        stdout.matches("TASK [common : Write the motd").count(),
        1,
        "the diamond's shared role runs once"
    );
    assert_eq!(
        stdout.matches("TASK [logging : Configure logging]").count(),
        2,
        "the same role with two parameter sets runs twice"
    );
    let motd = std::fs::read_to_string(dir.path().join("base-h2/motd")).expect("motd");
    assert_eq!(
        motd,
        "Managed by play on h2\nOwner: h2's own host_vars\nRole: common\n"
    );
    let second = run();
    assert_eq!(
        text(&second.stdout),
        golden("roles.second.ansible.out"),
        "stderr: {}",
        text(&second.stderr)
    );
}

#[test]
fn role_tasks_are_listed_like_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = roles_fixture(dir.path());
    let out = play_command(
        &work,
        &["-i", "hosts.yml", "site.yml", "--list-tasks"],
        &[("ANSIBLE_ROLES_PATH", "more_roles")],
    )
    .output()
    .expect("play runs");
    assert_eq!(
        text(&out.stdout),
        golden("roles.list-tasks.ansible.out"),
        "stderr: {}",
        text(&out.stderr)
    );
}

/// `play graph` in its three formats; `play PLAYBOOK` still runs a playbook.
#[test]
fn role_graph_is_printed_as_tree_dot_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = roles_fixture(dir.path());
    for (format, golden_name) in [
        ("tree", "roles.graph.txt"),
        ("dot", "roles.graph.dot"),
        ("json", "roles.graph.json"),
    ] {
        let out = play_command(
            &work,
            &["graph", "--format", format, "site.yml"],
            &[("ANSIBLE_ROLES_PATH", "more_roles")],
        )
        .output()
        .expect("play runs");
        assert_eq!(
            text(&out.stdout),
            golden(golden_name),
            "{format}; stderr: {}",
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0));
    }
    let json: serde_json::Value = serde_json::from_str(&golden("roles.graph.json")).expect("JSON");
    let play = &json["playbooks"][0]["plays"][0];
    let common: Vec<&serde_json::Value> = play["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter(|r| r["name"] == "common")
        .collect();
    assert_eq!(common.len(), 1, "the diamond's shared role is one node");
    let id = &common[0]["id"];
    let into_common = play["dependencies"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| &e["to"] == id)
        .count();
    assert_eq!(into_common, 2, "two roles depend on it");
}

#[test]
fn role_cycle_and_missing_role_are_refused_naming_the_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = roles_fixture(dir.path());
    let env = [("ANSIBLE_ROLES_PATH", "more_roles")];
    let out = play_command(&work, &["-i", "hosts.yml", "cycle.yml"], &env)
        .output()
        .expect("play runs");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "ERROR! role dependency cycle: roles/cyc_a/meta/main.yml:2 -> roles/cyc_b/meta/main.yml:3 -> cyc_a\n  --> roles/cyc_a/meta/main.yml:2:5\n  |\n2 |   - cyc_b\n  |     ^\n  = the cycle: cyc_a -> cyc_b -> cyc_a\n"
    );
    assert!(out.stdout.is_empty(), "nothing runs: {}", text(&out.stdout));
    let out = play_command(&work, &["-i", "hosts.yml", "missing.yml"], &env)
        .output()
        .expect("play runs");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "ERROR! the role 'comon' was not found\n  --> missing.yml:4:7\n  |\n4 |     - comon\n  |       ^\n  = searched: roles/comon, more_roles/comon, comon\n  = nearest existing roles: common\n"
    );
}

/// Roles are found through play.toml's `roles_path`; `PLAY_ROLES_PATH` wins over it.
#[test]
fn roles_path_comes_from_play_toml_or_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (base, word) in [
        ("shared", "from play.toml"),
        ("override", "from PLAY_ROLES_PATH"),
    ] {
        let tasks = dir.path().join(base).join("motd/tasks");
        std::fs::create_dir_all(&tasks).expect("mkdir");
        std::fs::write(
            tasks.join("main.yml"),
            format!("- name: where\n  debug:\n    msg: {word}\n"),
        )
        .expect("role");
    }
    std::fs::write(dir.path().join("play.toml"), "roles_path = [\"shared\"]\n").expect("toml");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: localhost\n  gather_facts: false\n  roles: [motd]\n",
    )
    .expect("playbook");
    let run = |env: &[(&str, &str)]| {
        let out = play_command(dir.path(), &["-c", "local", "site.yml"], env)
            .output()
            .expect("play runs");
        text(&out.stdout)
    };
    assert!(
        run(&[]).contains("\"msg\": \"from play.toml\""),
        "{}",
        run(&[])
    );
    let env = [("PLAY_ROLES_PATH", "override")];
    assert!(
        run(&env).contains("\"msg\": \"from PLAY_ROLES_PATH\""),
        "{}",
        run(&env)
    );
}

/// The repository's own role (roles/common) through playbooks/baseline.yml, in check mode
/// against this machine: found through playbooks/play.toml's roles_path, its template and
/// handler run, and nothing is written.
#[test]
fn shipped_baseline_role_runs_in_check_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let motd = dir.path().join("motd");
    let motd_var = format!("common_motd_path={}", motd.display());
    let out = play(
        &repo_root(),
        &[
            "-i",
            "inventory/local.yml",
            "playbooks/baseline.yml",
            "--check",
            "-e",
            &motd_var,
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("TASK [common : Write the message of the day] *")
            && stdout.contains("RUNNING HANDLER [common : Announce the new motd]"),
        "{stdout}"
    );
    assert_eq!(
        recap_line(&stdout, "localhost"),
        "localhost                  : ok=4    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0"
    );
    assert!(!motd.exists(), "check mode wrote the motd");
}
