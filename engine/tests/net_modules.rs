//! End-to-end tests of git, get_url, uri and unarchive: the real `play` binary against
//! loopback sshd hosts (testbed; needs root and openssh-server). Downloads come from an
//! HTTP server the test starts on 127.0.0.1; git clones over SSH from another test host.
//! The hosts share this machine's filesystem, so each works in its own `base_dir`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testbed::{HttpServer, SshHosts};

mod common;
use common::{converge, run_play};

/// A test's hosts, working directory (playbooks, `files/`) and inventory.
struct Env {
    hosts: SshHosts,
    work: tempfile::TempDir,
    inventory: PathBuf,
}

impl Env {
    fn start(count: usize) -> Env {
        let hosts = SshHosts::start(count)
            .expect("testbed starts (run the tests as root with openssh-server)");
        let work = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(work.path().join("files")).expect("files/");
        let inventory = hosts.write_inventory(work.path(), "targets");
        Env {
            hosts,
            work,
            inventory,
        }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// h1's own directory: where the tasks write.
    fn base(&self) -> PathBuf {
        self.hosts.hosts()[0].base_dir.clone()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir().join(name), text).expect("write");
    }

    fn inv(&self) -> &str {
        self.inventory.to_str().expect("utf-8 path")
    }

    /// One run of `playbook`: output and exit code.
    fn play(&self, playbook: &str, extra: &[&str]) -> (String, i32) {
        let mut args = vec!["-i", self.inv(), playbook];
        args.extend_from_slice(extra);
        run_play(self.dir(), &args)
    }

    /// `--check --diff`, then twice for real (see `common::converge`).
    fn converge(&self, playbook: &str, after_check: impl FnOnce()) -> common::Converged {
        converge(self.dir(), &self.inventory, playbook, "h1", after_check)
    }
}

/// A YAML double-quoted scalar.
fn yq(text: &str) -> String {
    serde_json::to_string(text).expect("json string")
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A JSON file a playbook wrote with `copy: content="{{ x | to_json }}"`.
fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("result file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Names in `dir` left by a transfer.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".play-tmp"))
        .collect()
}

fn assert_ok(out: &str, code: i32) {
    assert_eq!(code, 0, "{out}");
}

const GIT: &str = "git -c user.name=t -c user.email=t@example.com";

#[test]
fn git_clones_over_ssh_updates_pins_and_refuses_local_changes() {
    let env = Env::start(2);
    let (h1, h2) = (&env.hosts.hosts()[0], &env.hosts.hosts()[1]);
    // The repository h2 serves, and a work tree the test commits from.
    let bare = h2.base_dir.join("srv/project.git");
    std::fs::create_dir_all(bare.parent().expect("parent")).expect("mkdir");
    sh(
        &h2.base_dir,
        &format!("git init -q --bare -b main {}", path_str(&bare)),
    );
    let work = env.dir().join("work");
    sh(
        env.dir(),
        &format!(
            "git clone -q {bare} work 2>/dev/null && cd work && git checkout -q -b main && echo one > README \
             && git add README && {GIT} commit -q -m one && {GIT} tag -a v1 -m v1 && git push -q origin main --tags",
            bare = path_str(&bare)
        ),
    );
    let first = sh(&work, "git rev-parse HEAD");
    // The client key at a path that needs quoting, as key_file.
    let key = h1.base_dir.join("keys/id 'k' $(x)");
    std::fs::create_dir_all(key.parent().expect("parent")).expect("mkdir");
    std::fs::copy(env.hosts.client_key(), &key).expect("key");
    let known = h1.base_dir.join("known_hosts");
    let dest = h1.base_dir.join("checkout 'co' $(x)");
    let repo = format!("ssh://root@{}:{}{}", h2.addr, h2.port, path_str(&bare));
    let vars = |version: &str| {
        format!(
            "repo: {}\ndest: {}\nkey: {}\nopts: {}\nversion: {}\nresult: {}\n",
            yq(&repo),
            yq(&path_str(&dest)),
            yq(&path_str(&key)),
            yq(&format!("-o UserKnownHostsFile='{}'", path_str(&known))),
            yq(version),
            yq(&path_str(&h1.base_dir.join("result.json"))),
        )
    };
    env.write(
        "git.yml",
        "- hosts: h1\n  gather_facts: false\n  vars_files: [vars.yml]\n  tasks:\n\
         \x20   - git:\n        repo: \"{{ repo }}\"\n        dest: \"{{ dest }}\"\n        key_file: \"{{ key }}\"\n\
         \x20       accept_newhostkey: true\n        ssh_opts: \"{{ opts }}\"\n        version: \"{{ version }}\"\n\
         \x20     register: r\n\
         \x20   - copy:\n        content: \"{{ r | to_json }}\"\n        dest: \"{{ result }}\"\n\
         \x20     check_mode: false\n      changed_when: false\n",
    );

    env.write("vars.yml", &vars("HEAD"));
    env.converge("git.yml", || {
        assert!(!dest.exists(), "check mode cloned");
    });
    assert_eq!(sh(&dest, "git rev-parse HEAD"), first);
    let r = read_json(&h1.base_dir.join("result.json"));
    assert_eq!(
        (r["changed"].clone(), r["before"].clone()),
        (Value::Bool(false), Value::String(first.clone())),
        "{r}"
    );
    assert!(
        std::fs::read_to_string(&known)
            .expect("known_hosts")
            .contains(&h2.host_key_pub),
        "accept_newhostkey recorded h2's key"
    );

    // A new commit: changed, with before and after.
    sh(
        &work,
        &format!("echo two > README && {GIT} commit -q -am two && git push -q origin main"),
    );
    let second = sh(&work, "git rev-parse HEAD");
    let (out, code) = env.play("git.yml", &["--check"]);
    assert_ok(&out, code);
    let r = read_json(&h1.base_dir.join("result.json"));
    assert_eq!(
        (r["changed"].clone(), r["after"].clone()),
        (Value::Bool(true), Value::String(second.clone())),
        "{r}"
    );
    assert_eq!(sh(&dest, "git rev-parse HEAD"), first, "check mode updated");
    let (out, code) = env.play("git.yml", &[]);
    assert_ok(&out, code);
    let r = read_json(&h1.base_dir.join("result.json"));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["before"], first.as_str());
    assert_eq!(r["after"], second.as_str());
    assert_eq!(r["remote_url_changed"], false);
    assert_eq!(
        std::fs::read_to_string(dest.join("README")).expect("read"),
        "two\n"
    );

    // Pinned to the tag.
    env.write("vars.yml", &vars("v1"));
    env.converge("git.yml", || {
        assert_eq!(
            sh(&dest, "git rev-parse HEAD"),
            second,
            "check mode moved HEAD"
        );
    });
    assert_eq!(sh(&dest, "git rev-parse HEAD"), first);

    // Local modifications are refused without force, and left as they are.
    std::fs::write(dest.join("README"), "local change\n").expect("write");
    let (out, code) = env.play("git.yml", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "Local modifications exist in the destination: {} (force=no).",
            path_str(&dest)
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("README")).expect("read"),
        "local change\n"
    );
}

#[test]
fn get_url_downloads_on_the_target_with_checksums() {
    let env = Env::start(1);
    let served = tempfile::tempdir().expect("tempdir");
    let data = b"package contents\n".repeat(1000);
    std::fs::write(served.path().join("pkg.tgz"), &data).expect("write");
    let good = sh(served.path(), "sha256sum pkg.tgz | cut -d' ' -f1");
    std::fs::write(
        served.path().join("SHA256SUMS"),
        format!("{good}  pkg.tgz\n"),
    )
    .expect("write");
    let server = HttpServer::start(served.path()).expect("http server");
    let dl = env.base().join("dl 'dir'");
    std::fs::create_dir(&dl).expect("mkdir");
    let dest = dl.join("pkg $(v1).tgz");
    let playbook = |name: &str, args: &str| {
        env.write(
            name,
            &format!(
                "- hosts: h1\n  gather_facts: false\n  tasks:\n\
                 \x20   - get_url:\n        url: {url}\n        dest: {dest}\n{args}",
                url = yq(&server.url("/pkg.tgz")),
                dest = yq(&path_str(&dest)),
            ),
        );
    };
    playbook(
        "good.yml",
        &format!(
            "        checksum: {}\n        mode: '0640'\n",
            yq(&format!("sha256:{good}"))
        ),
    );
    let runs = env.converge("good.yml", || {
        assert!(!dest.exists(), "check mode downloaded");
        assert!(leftovers(&dl).is_empty());
    });
    assert!(runs.first.contains("changed: [h1]"), "{}", runs.first);
    assert_eq!(std::fs::read(&dest).expect("downloaded"), data);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).expect("stat").permissions().mode() & 0o777,
        0o640
    );

    // A checksum file by URL: the file in place matches, nothing is fetched but the sums.
    server.clear_requests();
    playbook(
        "sums.yml",
        &format!(
            "        checksum: {}\n",
            yq(&format!("sha256:{}", server.url("/SHA256SUMS")))
        ),
    );
    let (out, code) = env.play("sums.yml", &[]);
    assert_ok(&out, code);
    assert_eq!(common::recap(&out, "h1").changed, 0, "{out}");
    assert!(server.requests_to("/pkg.tgz").is_empty());

    // A wrong checksum: failure, the old file intact, no partial file left.
    let bad = "ab".repeat(32);
    playbook(
        "bad.yml",
        &format!("        checksum: {}\n", yq(&format!("sha256:{bad}"))),
    );
    let (out, code) = env.play("bad.yml", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("did not match {bad}; it was {good}.")),
        "{out}"
    );
    assert_eq!(std::fs::read(&dest).expect("still there"), data);
    assert!(leftovers(&dl).is_empty(), "{:?}", leftovers(&dl));

    // force: downloaded again; replaced because it changed.
    std::fs::write(served.path().join("pkg.tgz"), b"new contents\n").expect("write");
    playbook("force.yml", "        force: true\n");
    let (out, code) = env.play("force.yml", &[]);
    assert_ok(&out, code);
    assert_eq!(common::recap(&out, "h1").changed, 1, "{out}");
    assert_eq!(std::fs::read(&dest).expect("replaced"), b"new contents\n");

    // 404: Ansible's words.
    env.write(
        "missing.yml",
        &format!(
            "- hosts: h1\n  gather_facts: false\n  tasks:\n\
             \x20   - get_url:\n        url: {}\n        dest: {}\n",
            yq(&server.url("/nothing-here.tgz")),
            yq(&path_str(&dl.join("nothing.tgz"))),
        ),
    );
    let (out, code) = env.play("missing.yml", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("\"msg\": \"Request failed\""), "{out}");
    assert!(
        out.contains("\"response\": \"HTTP Error 404: Not Found\""),
        "{out}"
    );
    assert!(out.contains("\"status_code\": 404"), "{out}");
    assert!(!dl.join("nothing.tgz").exists());
    assert!(leftovers(&dl).is_empty());
}

#[test]
fn uri_requests_from_the_target() {
    let env = Env::start(1);
    let served = tempfile::tempdir().expect("tempdir");
    let server = HttpServer::start(served.path()).expect("http server");
    let hostile = "quote \" apostrophe ' $(touch pwned) `id`\nsecond line\t\\ é";
    let header = hostile.replace('\n', " ");
    let result = env.base().join("uri.json");
    env.write(
        "vars.yml",
        &format!(
            "base_url: {}\nhostile: {}\nheader: {}\nresult: {}\n",
            yq(&server.url("")),
            yq(hostile),
            yq(&header),
            yq(&path_str(&result))
        ),
    );
    env.write(
        "uri.yml",
        "- hosts: h1\n  gather_facts: false\n  vars_files: [vars.yml]\n  tasks:\n\
         \x20   - uri:\n        url: \"{{ base_url }}/json\"\n      register: j\n\
         \x20   - uri:\n        url: \"{{ base_url }}/echo\"\n        method: POST\n        body_format: json\n\
         \x20       body:\n          text: \"{{ hostile }}\"\n          n: [1, 2]\n\
         \x20       headers:\n          X-Hostile: \"{{ header }}\"\n      register: e\n\
         \x20   - uri:\n        url: \"{{ base_url }}/status/404\"\n        status_code: [200, 404]\n      register: s\n\
         \x20   - copy:\n        content: \"{{ {'j': j, 'e': e, 's': s} | to_json }}\"\n        dest: \"{{ result }}\"\n\
         \x20   - uri:\n        url: \"{{ base_url }}/status/404\"\n      ignore_errors: true\n\
         \x20   - uri:\n        url: \"{{ base_url }}/json\"\n        body_format: xml\n      ignore_errors: true\n",
    );
    let (out, code) = env.play("uri.yml", &[]);
    assert_ok(&out, code);
    assert!(
        out.contains("Status code was 404 and not [200]: HTTP Error 404: Not Found"),
        "{out}"
    );
    assert!(
        out.contains("value of body_format must be one of: form-urlencoded, json, raw, form-multipart, got: xml"),
        "{out}"
    );
    let r = read_json(&result);
    assert_eq!(r["j"]["status"], 200);
    assert_eq!(r["j"]["changed"], false);
    assert_eq!(r["j"]["json"]["items"], serde_json::json!([1, 2, 3]));
    assert_eq!(r["j"]["content_type"], "application/json");
    assert_eq!(
        r["j"]["msg"],
        format!("OK ({} bytes)", testbed::HTTP_JSON_BODY.len())
    );
    assert_eq!(r["s"]["status"], 404);
    assert_ne!(r["s"]["failed"], true);
    // The body and headers arrived byte for byte.
    let echo = &server.requests_to("/echo")[0];
    let sent: Value = serde_json::from_slice(&echo.body).expect("json body");
    assert_eq!(sent["text"], hostile);
    assert_eq!(sent["n"], serde_json::json!([1, 2]));
    assert_eq!(echo.header("content-type"), Some("application/json"));
    assert_eq!(echo.header("x-hostile"), Some(header.as_str()));
    assert_eq!(r["e"]["json"]["headers"]["x-hostile"], header.as_str());
    assert!(!env.base().join("pwned").exists() && !env.dir().join("pwned").exists());

    // uri does not run in check mode (Ansible skips it), so nothing is requested.
    server.clear_requests();
    let (out, code) = env.play("uri.yml", &["--check"]);
    assert_ok(&out, code);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn unarchive_from_the_controller_the_target_and_a_url() {
    let env = Env::start(1);
    let base = env.base();
    // One tree, archived as tar.gz and zip in the playbook's files/.
    sh(
        env.dir(),
        "mkdir -p tree/site/sub && printf 'index\\n' > tree/site/index.html && printf 'b\\n' > 'tree/site/sub/a b.txt' \
         && printf '#!/bin/sh\\n' > tree/site/run.sh && chmod 755 tree/site/run.sh && ln -s index.html tree/site/link \
         && tar -C tree -czf files/site.tar.gz site && (cd tree && zip -q -r -y ../files/site.zip site)",
    );
    std::fs::copy(
        env.dir().join("files/site.tar.gz"),
        base.join("remote 'copy'.tgz"),
    )
    .expect("copy");
    let served = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        env.dir().join("files/site.tar.gz"),
        served.path().join("site.tar.gz"),
    )
    .expect("copy");
    let server = HttpServer::start(served.path()).expect("http server");
    let dests = [
        "tar dest",
        "zip 'dest'",
        "remote dest",
        "url dest",
        "creates dest",
    ];
    for d in dests {
        std::fs::create_dir(base.join(d)).expect("mkdir");
    }
    let dest = |d: &str| yq(&path_str(&base.join(d)));
    env.write(
        "unarchive.yml",
        &format!(
            "- hosts: h1\n  gather_facts: false\n  tasks:\n\
             \x20   - unarchive:\n        src: site.tar.gz\n        dest: {tar}\n\
             \x20   - unarchive:\n        src: site.zip\n        dest: {zip}\n        list_files: true\n      register: z\n\
             \x20   - unarchive:\n        src: {remote_src}\n        dest: {remote}\n        remote_src: true\n        mode: 'u+rwX,go-rwx'\n\
             \x20   - unarchive:\n        src: {url}\n        dest: {url_dest}\n        remote_src: true\n\
             \x20   - unarchive:\n        src: site.tar.gz\n        dest: {creates}\n        creates: {creates_path}\n",
            tar = dest("tar dest"),
            zip = dest("zip 'dest'"),
            remote_src = yq(&path_str(&base.join("remote 'copy'.tgz"))),
            remote = dest("remote dest"),
            url = yq(&server.url("/site.tar.gz")),
            url_dest = dest("url dest"),
            creates = dest("creates dest"),
            creates_path = yq(&path_str(&base.join("creates dest/site/index.html"))),
        ),
    );
    let runs = env.converge("unarchive.yml", || {
        for d in dests {
            let entries: Vec<_> = std::fs::read_dir(base.join(d)).expect("ls").collect();
            assert!(entries.is_empty(), "check mode unpacked into {d}");
        }
    });
    assert_eq!(
        common::recap(&runs.first, "h1").changed,
        5,
        "{}",
        runs.first
    );
    assert_eq!(
        common::recap(&runs.second, "h1").skipped,
        1,
        "creates: {}",
        runs.second
    );
    for d in dests {
        let site = base.join(d).join("site");
        assert_eq!(
            std::fs::read_to_string(site.join("index.html")).expect("index"),
            "index\n",
            "{d}"
        );
        assert_eq!(
            std::fs::read_to_string(site.join("sub/a b.txt")).expect("a b"),
            "b\n",
            "{d}"
        );
        assert_eq!(
            std::fs::read_link(site.join("link")).expect("link"),
            Path::new("index.html")
        );
        assert!(
            leftovers(&base.join(d)).is_empty(),
            "{d}: {:?}",
            leftovers(&base.join(d))
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(base.join("remote dest/site/run.sh")), 0o700);
    assert_eq!(mode(base.join("remote dest/site/index.html")), 0o600);
    assert_eq!(mode(base.join("tar dest/site/run.sh")), 0o755);

    // A file changed on the target is put back, and only that makes a change.
    std::fs::write(base.join("zip 'dest'/site/index.html"), "edited\n").expect("write");
    let (out, code) = env.play("unarchive.yml", &[]);
    assert_ok(&out, code);
    assert_eq!(common::recap(&out, "h1").changed, 1, "{out}");
    assert_eq!(
        std::fs::read_to_string(base.join("zip 'dest'/site/index.html")).expect("index"),
        "index\n"
    );

    // dest must exist, as Ansible says.
    env.write(
        "nodest.yml",
        &format!(
            "- hosts: h1\n  gather_facts: false\n  tasks:\n\
             \x20   - unarchive:\n        src: site.zip\n        dest: {}\n",
            dest("no such dir")
        ),
    );
    let (out, code) = env.play("nodest.yml", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "dest '{}' must be an existing dir",
            path_str(&base.join("no such dir"))
        )),
        "{out}"
    );
}
