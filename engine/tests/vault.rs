//! The vault end to end: `play vault` subcommands and a playbook over the local connection
//! using vaulted vars, whose secrets must never reach the output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn play(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_play"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("PLAY_VAULT_IDENTITY")
        .env_remove("ANSIBLE_INVENTORY")
        .env_remove("PLAY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("play runs");
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(s) = stdin {
            pipe.write_all(s.as_bytes()).expect("stdin");
        }
    }
    child.wait_with_output().expect("play finishes")
}

fn all(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A project with a new age key in `key.txt`.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = play(dir.path(), &["vault", "keygen"], &[], None);
    assert!(out.status.success(), "{}", all(&out));
    std::fs::write(dir.path().join("key.txt"), &out.stdout).expect("key");
    dir
}

#[test]
fn vaulted_vars_are_used_and_never_shown() {
    let dir = project();
    let d = dir.path();
    std::fs::create_dir_all(d.join("group_vars")).expect("mkdir");
    std::fs::write(
        d.join("hosts"),
        "[web]\nlocalhost ansible_connection=local\n",
    )
    .expect("w");
    std::fs::write(d.join("group_vars/web.yml"), "db_password: Gr0upS3cretPw\n").expect("w");
    let enc = play(
        d,
        &[
            "vault",
            "encrypt",
            "--vault-identity",
            "key.txt",
            "group_vars/web.yml",
        ],
        &[],
        None,
    );
    assert!(enc.status.success(), "{}", all(&enc));
    let on_disk = std::fs::read_to_string(d.join("group_vars/web.yml")).expect("r");
    assert!(on_disk.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(!on_disk.contains("Gr0upS3cretPw"));

    let block = play(
        d,
        &[
            "vault",
            "encrypt-string",
            "--vault-identity",
            "key.txt",
            "api_token",
        ],
        &[],
        Some("InL1neT0kenValue\n"),
    );
    assert!(block.status.success(), "{}", all(&block));
    let block = String::from_utf8_lossy(&block.stdout).into_owned();
    assert!(
        block.starts_with("api_token: !vault |\n  -----BEGIN AGE"),
        "{block}"
    );
    std::fs::write(d.join("secrets.yml"), format!("plain: visible\n{block}")).expect("w");
    std::fs::write(
        d.join("conf.j2"),
        "user=app\npassword={{ db_password }}\ntoken={{ api_token }}\n",
    )
    .expect("w");
    std::fs::write(d.join("conf.txt"), "user=app\npassword=old\n").expect("w");
    std::fs::write(
        d.join("site.yml"),
        r#"- hosts: web
  gather_facts: false
  vars_files: [secrets.yml]
  tasks:
    - debug: var=db_password
    - debug: msg="token is {{ api_token }} and {{ plain }}"
    - template: src=conf.j2 dest={{ playbook_dir }}/conf.txt
    - command: echo {{ db_password }}
    - command: sh -c 'echo {{ api_token }} >&2; exit 3'
"#,
    )
    .expect("w");
    let out = play(
        d,
        &[
            "-i",
            "hosts",
            "site.yml",
            "-vvv",
            "--diff",
            "--vault-identity",
            "key.txt",
        ],
        &[],
        None,
    );
    let text = all(&out);
    assert_eq!(out.status.code(), Some(2), "the last task fails:\n{text}");
    assert!(!text.contains("Gr0upS3cretPw"), "{text}");
    assert!(!text.contains("InL1neT0kenValue"), "{text}");
    assert!(text.contains("********"), "{text}");
    assert!(text.contains("token is ******** and visible"), "{text}");
    // The values themselves were decrypted and used.
    let conf = std::fs::read_to_string(d.join("conf.txt")).expect("r");
    assert_eq!(
        conf,
        "user=app\npassword=Gr0upS3cretPw\ntoken=InL1neT0kenValue\n"
    );

    // The same run as JSON events.
    let out = play(
        d,
        &[
            "-i",
            "hosts",
            "site.yml",
            "-v",
            "--output",
            "json",
            "--vault-identity",
            "key.txt",
        ],
        &[],
        None,
    );
    let text = all(&out);
    assert!(
        !text.contains("Gr0upS3cretPw") && !text.contains("InL1neT0kenValue"),
        "{text}"
    );

    // Without the key: the error names the file, exit code for bad options.
    let out = play(d, &["-i", "hosts", "site.yml"], &[], None);
    let text = all(&out);
    assert!(!out.status.success());
    assert!(text.contains("no vault key was given"), "{text}");

    // With another key: the error names the file and the key tried.
    let other = project();
    std::fs::copy(other.path().join("key.txt"), d.join("other.txt")).expect("cp");
    let out = play(
        d,
        &["-i", "hosts", "site.yml", "--vault-identity", "other.txt"],
        &[("PLAY_VAULT_IDENTITY", "key.txt")],
        None,
    );
    let text = all(&out);
    assert!(!out.status.success());
    assert!(text.contains("other.txt"), "{text}");
    assert!(text.contains("cannot decrypt"), "{text}");

    // PLAY_VAULT_IDENTITY alone works.
    let out = play(
        d,
        &["-i", "hosts", "site.yml"],
        &[("PLAY_VAULT_IDENTITY", "key.txt")],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));

    // So does play.toml's vault_identity (relative to play.toml).
    std::fs::write(d.join("play.toml"), "vault_identity = \"key.txt\"\n").expect("w");
    let out = play(d, &["-i", "hosts", "site.yml"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));
}

#[test]
fn edit_view_decrypt_rekey_and_passphrases() {
    let dir = project();
    let d = dir.path();
    std::fs::write(d.join("vault.yml"), "secret: first\n").expect("w");
    let id = ["--vault-identity", "key.txt"];
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = play(d, args, env, None);
        assert!(out.status.success(), "{args:?}: {}", all(&out));
        out
    };
    run(&["vault", "encrypt", id[0], id[1], "vault.yml"], &[]);

    // A scripted editor; the private temp dir must be gone afterwards.
    let tmp = tempfile::tempdir().expect("tmp");
    let tmp_s = tmp.path().to_string_lossy().into_owned();
    run(
        &["vault", "edit", id[0], id[1], "vault.yml"],
        &[
            ("EDITOR", "sed -i s/first/second/"),
            ("VISUAL", ""),
            ("TMPDIR", &tmp_s),
        ],
    );
    assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 0);
    let view = run(&["vault", "view", id[0], id[1], "vault.yml"], &[]);
    assert_eq!(String::from_utf8_lossy(&view.stdout), "secret: second\n");

    // A failing editor leaves the file as it was, and still removes the plaintext.
    let out = play(
        d,
        &["vault", "edit", id[0], id[1], "vault.yml"],
        &[("EDITOR", "false"), ("VISUAL", ""), ("TMPDIR", &tmp_s)],
        None,
    );
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 0);

    // Rekey to a passphrase-only vault: the old key no longer opens it.
    std::fs::write(d.join("pw.txt"), "correct horse\n").expect("w");
    let pw = ["--vault-password-file", "pw.txt"];
    let rekey = play(
        d,
        &[
            "vault",
            "rekey",
            id[0],
            id[1],
            "vault.yml",
            "-r",
            "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
        ],
        &[],
        None,
    );
    assert!(rekey.status.success(), "{}", all(&rekey));
    let out = play(d, &["vault", "view", id[0], id[1], "vault.yml"], &[], None);
    assert!(!out.status.success());
    assert!(all(&out).contains("key.txt"), "{}", all(&out));

    // Passphrase round trip through decrypt.
    std::fs::write(d.join("p.yml"), "x: 1\n").expect("w");
    run(&["vault", "encrypt", pw[0], pw[1], "p.yml"], &[]);
    run(&["vault", "decrypt", pw[0], pw[1], "p.yml"], &[]);
    assert_eq!(
        std::fs::read_to_string(d.join("p.yml")).expect("r"),
        "x: 1\n"
    );

    // A file that is not vaulted is refused.
    let out = play(d, &["vault", "decrypt", pw[0], pw[1], "p.yml"], &[], None);
    assert!(!out.status.success());
    assert!(
        all(&out).contains("not an age-encrypted file"),
        "{}",
        all(&out)
    );
}

/// The fixtures in `tests/fixtures/vault/` were written by ansible-core's own `ansible-vault`
/// (`/opt/ansible/bin/ansible-vault`, see that folder's README).
#[test]
fn ansible_vaults_are_read_and_migrated_to_age() {
    let dir = project();
    let d = dir.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault");
    for f in ["ansible-password.txt", "whole.yml", "inline.yml"] {
        std::fs::copy(fixtures.join(f), d.join(f)).expect("cp");
    }
    std::fs::write(d.join("hosts"), "localhost ansible_connection=local\n").expect("w");
    std::fs::write(
        d.join("site.yml"),
        r#"- hosts: all
  gather_facts: false
  vars_files: [whole.yml, inline.yml]
  tasks:
    - copy:
        dest: "{{ playbook_dir }}/out.txt"
        content: "{{ whole_secret }} {{ port }} {{ one_one }} {{ one_two }} {{ plain_value }}\n"
    - debug: msg="{{ whole_secret }} {{ one_one }} {{ one_two }}"
"#,
    )
    .expect("w");
    let expected = "Wh0leFileSecret 5432 Inl1neOneOne Inl1neOneTwo shown\n";
    let secrets = ["Wh0leFileSecret", "Inl1neOneOne", "Inl1neOneTwo"];

    // Read as they are, with the Ansible Vault password.
    let apw = ["--ansible-vault-password-file", "ansible-password.txt"];
    let out = play(
        d,
        &["-i", "hosts", "site.yml", "-v", apw[0], apw[1]],
        &[],
        None,
    );
    let text = all(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        std::fs::read_to_string(d.join("out.txt")).expect("r"),
        expected
    );
    for s in secrets {
        assert!(!text.contains(s), "{s} shown:\n{text}");
    }

    // A wrong Ansible password is a clear error naming the file.
    std::fs::write(d.join("wrong.txt"), "nope\n").expect("w");
    let out = play(
        d,
        &["-i", "hosts", "site.yml", apw[0], "wrong.txt"],
        &[],
        None,
    );
    assert!(!out.status.success());
    assert!(all(&out).contains("whole.yml"), "{}", all(&out));

    // Migrate both files to age; the rest of inline.yml is kept as written.
    let id = ["--vault-identity", "key.txt"];
    let out = play(
        d,
        &[
            "vault",
            "migrate",
            apw[0],
            apw[1],
            id[0],
            id[1],
            "whole.yml",
            "inline.yml",
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", all(&out));
    let inline = std::fs::read_to_string(d.join("inline.yml")).expect("r");
    assert!(!inline.contains("$ANSIBLE_VAULT"), "{inline}");
    assert!(inline.contains("plain_value: shown\none_one: !vault |\n          -----BEGIN AGE"));
    assert!(inline.ends_with("after: kept\n"), "{inline}");
    let whole = std::fs::read_to_string(d.join("whole.yml")).expect("r");
    assert!(whole.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));

    // Now only the age key is needed.
    std::fs::remove_file(d.join("out.txt")).expect("rm");
    let out = play(d, &["-i", "hosts", "site.yml", id[0], id[1]], &[], None);
    assert!(out.status.success(), "{}", all(&out));
    assert_eq!(
        std::fs::read_to_string(d.join("out.txt")).expect("r"),
        expected
    );
}

#[test]
fn vaulted_copy_sources_and_inventory_values() {
    let dir = project();
    let d = dir.path();
    let id = ["--vault-identity", "key.txt"];
    std::fs::write(d.join("cert.pem"), "PRIVATE-KEY-MATERIAL\n").expect("w");
    let out = play(
        d,
        &["vault", "encrypt", id[0], id[1], "cert.pem"],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", all(&out));
    let block = play(
        d,
        &["vault", "encrypt-string", id[0], id[1], "host_token"],
        &[],
        Some("H0stT0kenVal\n"),
    );
    let block = String::from_utf8_lossy(&block.stdout).replace('\n', "\n      ");
    std::fs::write(
        d.join("hosts.yml"),
        format!("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      {block}\n"),
    )
    .expect("w");
    // A role whose defaults file is vaulted.
    std::fs::create_dir_all(d.join("roles/app/defaults")).expect("mkdir");
    std::fs::create_dir_all(d.join("roles/app/tasks")).expect("mkdir");
    std::fs::write(
        d.join("roles/app/defaults/main.yml"),
        "role_secret: R0leSecretVal\n",
    )
    .expect("w");
    let out = play(
        d,
        &[
            "vault",
            "encrypt",
            id[0],
            id[1],
            "roles/app/defaults/main.yml",
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", all(&out));
    std::fs::write(
        d.join("roles/app/tasks/main.yml"),
        "- copy: content=\"{{ role_secret }}\" dest={{ playbook_dir }}/role.txt\n- debug: var=role_secret\n",
    )
    .expect("w");
    std::fs::write(
        d.join("site.yml"),
        r#"- hosts: all
  gather_facts: false
  roles: [app]
  tasks:
    - copy: src=cert.pem dest={{ playbook_dir }}/installed.pem
    - debug: var=host_token
"#,
    )
    .expect("w");
    let out = play(
        d,
        &[
            "-i",
            "hosts.yml",
            "site.yml",
            "--diff",
            "-vvv",
            id[0],
            id[1],
        ],
        &[],
        None,
    );
    let text = all(&out);
    assert!(out.status.success(), "{text}");
    for secret in ["PRIVATE-KEY-MATERIAL", "H0stT0kenVal", "R0leSecretVal"] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("role.txt")).expect("r"),
        "R0leSecretVal"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("installed.pem")).expect("r"),
        "PRIVATE-KEY-MATERIAL\n"
    );
}

/// A vaulted become password over a real sshd host (the testbed; needs root and
/// openssh-server): sudo gets it, the output never shows it.
#[test]
fn vaulted_become_password_over_ssh() {
    let hosts = testbed::SshHosts::builder()
        .hosts(1)
        .test_user_with_password("bob", "b0b-s3cret")
        .start()
        .expect("testbed starts (run the tests as root with openssh-server)");
    let dir = project();
    let d = dir.path();
    std::fs::create_dir(d.join("home")).expect("home");
    let inv = hosts.write_inventory(d, "targets").display().to_string();
    std::fs::write(
        d.join("secrets.yml"),
        "ansible_user: bob\nansible_become_password: b0b-s3cret\n",
    )
    .expect("w");
    let id = ["--vault-identity", "key.txt"];
    let out = play(
        d,
        &["vault", "encrypt", id[0], id[1], "secrets.yml"],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", all(&out));
    std::fs::write(
        d.join("become.yml"),
        "- hosts: targets\n  gather_facts: false\n  vars_files: [secrets.yml]\n  tasks:\n\
         \x20   - command: id -u\n      become: true\n      register: root\n\
         \x20   - assert:\n        that: root.stdout == '0'\n\
         \x20   - debug: var=ansible_become_password\n",
    )
    .expect("w");
    let home = d.join("home").display().to_string();
    let out = play(
        d,
        &["-i", &inv, "become.yml", "-vvv", id[0], id[1]],
        &[("HOME", &home), ("SSH_AUTH_SOCK", "")],
        None,
    );
    let text = all(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("b0b-s3cret"), "{text}");
    assert!(
        text.contains("\"ansible_become_password\": \"********\""),
        "{text}"
    );
}

/// A vaulted connection password: bob logs in with `ansible_password` from an encrypted vars
/// file (no key file, no agent, an empty home), and becomes root with the same vaulted
/// password; the output never shows it.
#[test]
fn vaulted_connection_and_become_passwords_over_ssh() {
    let hosts = testbed::SshHosts::builder()
        .hosts(1)
        .test_user_with_password("bob", "b0b-s3cret")
        .password_logins()
        .start()
        .expect("testbed starts (run the tests as root with openssh-server)");
    let dir = project();
    let d = dir.path();
    std::fs::create_dir(d.join("home")).expect("home");
    // The testbed's inventory without its client key: only the password can log bob in.
    let inventory: String = hosts
        .inventory_yaml("targets")
        .lines()
        .filter(|l| !l.contains("ansible_ssh_private_key_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("inventory.yml"), inventory).expect("w");
    std::fs::write(
        d.join("secrets.yml"),
        "ansible_user: bob\nansible_password: b0b-s3cret\nansible_become_password: b0b-s3cret\n",
    )
    .expect("w");
    let id = ["--vault-identity", "key.txt"];
    let out = play(
        d,
        &["vault", "encrypt", id[0], id[1], "secrets.yml"],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", all(&out));
    std::fs::write(
        d.join("site.yml"),
        "- hosts: targets\n  gather_facts: false\n  vars_files: [secrets.yml]\n  tasks:\n\
         \x20   - command: id -un\n      register: plain\n\
         \x20   - command: id -u\n      become: true\n      register: root\n\
         \x20   - assert:\n        that: [plain.stdout == 'bob', root.stdout == '0']\n",
    )
    .expect("w");
    let home = d.join("home").display().to_string();
    let out = play(
        d,
        &["-i", "inventory.yml", "site.yml", "-vvv", id[0], id[1]],
        &[("HOME", &home), ("SSH_AUTH_SOCK", "")],
        None,
    );
    let text = all(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("b0b-s3cret"), "{text}");
    let log = std::fs::read_to_string(hosts.hosts()[0].log_file()).unwrap_or_default();
    assert!(log.contains("Accepted password for bob"), "sshd log: {log}");
}
