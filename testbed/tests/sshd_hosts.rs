//! Real sshd hosts, checked with the real OpenSSH client.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use testbed::{process_running, sshd_available, SshHosts, SshHostsBuilder};

/// Bound for conditions that become true "soon"; only there so a broken test ends.
const PATIENCE: Duration = Duration::from_secs(120);

fn start(builder: SshHostsBuilder) -> SshHosts {
    assert!(
        sshd_available(),
        "/usr/sbin/sshd is missing: apt-get install openssh-server"
    );
    builder.start().expect("starting sshd hosts")
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        stderr(output)
    );
}

/// Processes whose command line mentions `dir` (sshd listeners carry their config path).
fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// A `sleep` on host `host` through ssh, returned once its session processes exist.
fn long_session(hosts: &SshHosts, host: usize) -> Child {
    let client = hosts
        .ssh_command(host, "root")
        .arg("sleep 600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ssh with a long-running command");
    wait_for("the session's sleep to run", || {
        hosts.session_pids(host).iter().any(|&pid| {
            fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.starts_with("sleep"))
        })
    });
    client
}

fn wait_for_exit(mut client: Child, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_for(what, || {
        status = client.try_wait().expect("polling the ssh client");
        status.is_some()
    });
    status.expect("the ssh client's exit status")
}

#[test]
fn host_sets_can_be_shared_between_threads() {
    // For a set kept in a static OnceLock and used by several tests.
    fn shareable<T: Send + Sync>() {}
    shareable::<SshHosts>();
}

#[test]
fn three_hosts_answer_on_their_own_addresses() {
    let began = Instant::now();
    let hosts = start(SshHosts::builder().hosts(3));
    eprintln!("3 hosts started in {:?}", began.elapsed());

    let names: Vec<&str> = hosts.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["h1", "h2", "h3"]);
    let known_hosts = fs::read_to_string(hosts.known_hosts()).expect("reading known_hosts");
    assert_eq!(known_hosts.lines().count(), 3, "{known_hosts}");

    for (index, host) in hosts.hosts().iter().enumerate() {
        assert!(host.base_dir.is_dir(), "{} has no base_dir", host.name);
        assert!(host.host_key_pub.starts_with("ssh-ed25519 "));
        assert!(known_hosts.contains(&format!(
            "{} {}",
            host.known_hosts_name(),
            host.host_key_pub
        )));
        let output = hosts.ssh(
            index,
            "echo \"$SSH_CONNECTION\"; echo \"$TESTBED_HOST\"; id -u; hostname",
        );
        assert_success(&output, &format!("ssh to {host}"));
        let text = stdout(&output);
        let lines: Vec<&str> = text.lines().collect();
        let connection: Vec<&str> = lines[0].split(' ').collect();
        assert_eq!(connection[2], host.addr, "{text}");
        assert_eq!(connection[3], host.port.to_string(), "{text}");
        assert_eq!(lines[1], host.name);
        assert_eq!(lines[2], "0");
        assert!(!lines[3].is_empty());
    }
    let addrs: std::collections::HashSet<(String, u16)> = hosts
        .hosts()
        .iter()
        .map(|h| (h.addr.clone(), h.port))
        .collect();
    assert_eq!(addrs.len(), 3, "hosts share an address");

    // The sftp subsystem answers too.
    let host = &hosts.hosts()[0];
    fs::write(host.base_dir.join("probe.txt"), "sftp works\n").expect("writing a probe file");
    let sftp = Command::new("sftp")
        .arg("-F")
        .arg(hosts.ssh_config())
        .args(["-b", "-", "-P", &host.port.to_string()])
        .arg(format!("root@{}", host.addr))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let batch = format!("ls {}\n", host.base_dir.display());
            child
                .stdin
                .take()
                .expect("sftp stdin")
                .write_all(batch.as_bytes())?;
            child.wait_with_output()
        })
        .expect("running sftp");
    assert_success(&sftp, "sftp");
    assert!(stdout(&sftp).contains("probe.txt"), "{}", stdout(&sftp));
}

#[test]
fn a_host_key_that_does_not_match_known_hosts_is_refused() {
    let hosts = start(SshHosts::builder().hosts(2));
    let (first, second) = (&hosts.hosts()[0], &hosts.hosts()[1]);
    // h1's name with h2's key.
    let wrong = hosts.dir().join("wrong_known_hosts");
    fs::write(
        &wrong,
        format!("{} {}\n", first.known_hosts_name(), second.host_key_pub),
    )
    .expect("writing a wrong known_hosts");
    let output = Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(hosts.client_key())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", wrong.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-p", &first.port.to_string()])
        .arg(format!("root@{}", first.addr))
        .arg("true")
        .output()
        .expect("running ssh");
    assert!(!output.status.success(), "ssh accepted a wrong host key");
    assert!(
        stderr(&output).contains("Host key verification failed"),
        "{}",
        stderr(&output)
    );
    // The right known_hosts still works.
    assert_success(&hosts.ssh(0, "true"), "ssh with the right known_hosts");
}

#[test]
fn drop_stops_every_sshd_and_its_sessions_and_removes_the_temp_dir() {
    let hosts = start(SshHosts::builder().hosts(3));
    let client = long_session(&hosts, 1);
    let mut pids: Vec<u32> = hosts.hosts().iter().map(|h| h.pid()).collect();
    let sessions = hosts.session_pids(1);
    pids.extend(&sessions);
    let dir = hosts.dir().to_path_buf();
    assert!(pids.iter().all(|&pid| process_running(pid)));
    assert!(!processes_mentioning(&dir).is_empty());

    drop(hosts);

    let still_running: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&pid| process_running(pid))
        .collect();
    assert!(still_running.is_empty(), "still running: {still_running:?}");
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let status = wait_for_exit(client, "the ssh client to notice its host is gone");
    assert!(!status.success());
}

#[test]
fn a_panic_inside_a_test_still_tears_down() {
    let seen: Mutex<Option<(Vec<u32>, PathBuf)>> = Mutex::new(None);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let hosts = start(SshHosts::builder().hosts(2));
        let pids = hosts.hosts().iter().map(|h| h.pid()).collect();
        *seen.lock().expect("recording the hosts") = Some((pids, hosts.dir().to_path_buf()));
        panic!("deliberate panic while the hosts run");
    }));
    assert!(outcome.is_err());
    let (pids, dir) = seen
        .into_inner()
        .expect("reading the recorded hosts")
        .expect("the hosts had started");
    for pid in pids {
        assert!(!process_running(pid), "sshd {pid} survived the panic");
    }
    assert!(!dir.exists(), "{} survived the panic", dir.display());
}

/// A test user name of this test process only: concurrent test processes share users of the
/// same name, and the last one deletes it, so only a private name shows the deletion.
fn private_user(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

fn passwd_has(user: &str) -> bool {
    fs::read_to_string("/etc/passwd")
        .expect("reading /etc/passwd")
        .lines()
        .any(|line| line.starts_with(&format!("{user}:")))
}

#[test]
fn test_users_sudo_with_and_without_password() {
    let (alice, bob) = (private_user("tb-alice"), private_user("tb-bob"));
    let hosts = start(
        SshHosts::builder()
            .hosts(1)
            .test_user(&alice)
            .test_user_with_password(&bob, "bob-Secret-1"),
    );
    let alice_user = hosts.test_user(&alice).expect("alice is a test user");
    assert!(alice_user.home.is_dir(), "{:?}", alice_user.home);
    assert_eq!(alice_user.password, None);

    let who = hosts.ssh_as(0, &alice, "id -un; sudo -n id -u");
    assert_success(&who, "sudo -n as alice");
    assert_eq!(stdout(&who), format!("{alice}\n0"));

    let refused = hosts.ssh_as(0, &bob, "id -un; sudo -n id -u");
    assert!(!refused.status.success(), "sudo -n worked for bob");
    assert_eq!(stdout(&refused), bob);
    assert!(
        stderr(&refused).contains("a password is required"),
        "{}",
        stderr(&refused)
    );
    let with_password = hosts.ssh_as(0, &bob, "echo bob-Secret-1 | sudo -S -p '' id -u");
    assert_success(&with_password, "sudo -S as bob");
    assert_eq!(stdout(&with_password), "0");

    drop(hosts);
    assert!(
        !passwd_has(&alice) && !passwd_has(&bob),
        "test users left behind"
    );
    assert!(!Path::new(&format!("/etc/sudoers.d/play-testbed-{alice}")).exists());
}

#[test]
fn host_sets_share_a_test_user_until_the_last_one_ends() {
    let carol = private_user("tb-carol");
    let first = start(SshHosts::builder().test_user(&carol));
    let second = start(SshHosts::builder().test_user(&carol));
    drop(first);
    assert!(passwd_has(&carol), "the user went away while still in use");
    assert_success(&second.ssh_as(0, &carol, "sudo -n true"), "sudo as carol");
    // The same name with another sudo setup would change the user under the running set.
    let conflicting = SshHosts::builder()
        .test_user_with_password(&carol, "other")
        .start();
    assert!(conflicting.is_err(), "a conflicting setup was accepted");
    drop(second);
    assert!(
        !passwd_has(&carol),
        "the last host set left the user behind"
    );
}

#[test]
fn a_jump_only_host_is_reachable_only_through_its_jump_host() {
    let hosts = start(SshHosts::builder().hosts(3).jump_only(1));
    let target = &hosts.hosts()[1];
    assert_eq!(target.jump_via, Some(0));

    let direct = Command::new("ssh")
        .arg("-F")
        .arg(hosts.ssh_config())
        .args(["-p", &target.port.to_string()])
        .arg(format!("root@{}", target.addr))
        .arg("true")
        .output()
        .expect("running ssh");
    assert!(
        !direct.status.success(),
        "direct connection to {target} worked"
    );
    assert!(
        stderr(&direct).contains("Connection refused"),
        "{}",
        stderr(&direct)
    );

    // ssh() adds -J through h1.
    let jumped = hosts.ssh(1, "echo \"$TESTBED_HOST $SSH_CONNECTION\"");
    assert_success(&jumped, "ssh -J to the jump-only host");
    let text = stdout(&jumped);
    assert!(text.starts_with("h2 "), "{text}");
    assert!(
        text.ends_with(&format!("{} {}", target.addr, target.port)),
        "{text}"
    );

    // The jump host and the others answer normally.
    assert_eq!(stdout(&hosts.ssh(0, "echo $TESTBED_HOST")), "h1");
    assert_eq!(stdout(&hosts.ssh(2, "echo $TESTBED_HOST")), "h3");

    let inventory = hosts.inventory_yaml("web");
    let jump = &hosts.hosts()[0];
    assert!(
        inventory.contains(&format!("-o ProxyJump=root@{}:{}", jump.addr, jump.port)),
        "{inventory}"
    );
}

#[test]
fn fifty_hosts_start_and_all_answer() {
    let began = Instant::now();
    let hosts = start(SshHosts::builder().hosts(50));
    eprintln!("50 hosts started in {:?}", began.elapsed());
    let asked = Instant::now();
    let clients: Vec<Child> = (0..hosts.hosts().len())
        .map(|index| {
            hosts
                .ssh_command(index, "root")
                .arg("echo $TESTBED_HOST")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting ssh")
        })
        .collect();
    for (host, client) in hosts.hosts().iter().zip(clients) {
        let output = client.wait_with_output().expect("waiting for ssh");
        assert_success(&output, &format!("ssh to {host}"));
        assert_eq!(stdout(&output), host.name);
    }
    eprintln!("50 hosts answered ssh in {:?}", asked.elapsed());
    let pids: Vec<u32> = hosts.hosts().iter().map(|h| h.pid()).collect();
    let stopping = Instant::now();
    drop(hosts);
    eprintln!("50 hosts stopped in {:?}", stopping.elapsed());
    assert!(pids.iter().all(|&pid| !process_running(pid)));
}

#[test]
fn kill_sessions_drops_connections_but_the_host_keeps_listening() {
    let hosts = start(SshHosts::builder().hosts(1));
    let client = long_session(&hosts, 0);
    let listener = hosts.hosts()[0].pid();

    hosts.kill_sessions(0);

    assert_eq!(hosts.session_pids(0), Vec::<u32>::new());
    let status = wait_for_exit(client, "the ssh client to notice the killed session");
    assert!(!status.success());
    assert!(process_running(listener));
    assert_success(&hosts.ssh(0, "true"), "ssh after kill_sessions");
}

#[test]
fn a_stopped_host_refuses_connections_and_the_others_keep_going() {
    let hosts = start(SshHosts::builder().hosts(2));
    let client = long_session(&hosts, 0);
    let listener = hosts.hosts()[0].pid();

    hosts.stop(0);

    assert!(!process_running(listener));
    let status = wait_for_exit(client, "the ssh client to notice the stopped host");
    assert!(!status.success());
    let refused = hosts.ssh(0, "true");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Connection refused"),
        "{}",
        stderr(&refused)
    );
    assert_success(&hosts.ssh(1, "true"), "ssh to the host still running");
}

#[test]
fn the_inventory_describes_every_host() {
    let hosts = start(SshHosts::builder().hosts(2));
    let out_dir = tempfile::tempdir().expect("creating a temp dir");
    let path = hosts.write_inventory(out_dir.path(), "targets");
    let yaml = fs::read_to_string(&path).expect("reading the inventory");
    assert!(yaml.contains("ansible_user: root"), "{yaml}");
    assert!(
        yaml.contains(&format!(
            "ansible_ssh_private_key_file: \"{}\"",
            hosts.client_key().display()
        )),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!(
            "ansible_ssh_common_args: \"-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes\"",
            hosts.known_hosts().display()
        )),
        "{yaml}"
    );
    assert!(
        yaml.contains("  children:\n    \"targets\":\n      hosts:\n"),
        "{yaml}"
    );
    for host in hosts.hosts() {
        let mut entry = format!(
            "        \"{}\":\n          ansible_host: \"{}\"\n",
            host.name, host.addr
        );
        if host.port != 22 {
            entry.push_str(&format!("          ansible_port: {}\n", host.port));
        }
        entry.push_str(&format!(
            "          base_dir: \"{}\"\n",
            host.base_dir.display()
        ));
        assert!(yaml.contains(&entry), "{entry} missing in\n{yaml}");
    }
}

#[test]
fn hosts_on_one_address_use_their_own_ports() {
    let hosts = start(SshHosts::builder().hosts(3).on_one_address().jump_only(2));
    let ports: std::collections::HashSet<u16> = hosts.hosts().iter().map(|h| h.port).collect();
    assert_eq!(ports.len(), 3);
    let known_hosts = fs::read_to_string(hosts.known_hosts()).expect("reading known_hosts");
    let inventory = hosts.inventory_yaml("all_on_one");
    for (index, host) in hosts.hosts().iter().enumerate() {
        assert_eq!(host.addr, "127.0.0.1");
        assert!(known_hosts.contains(&format!("[127.0.0.1]:{} ssh-ed25519 ", host.port)));
        assert!(inventory.contains(&format!("ansible_port: {}\n", host.port)));
        assert_eq!(stdout(&hosts.ssh(index, "echo $TESTBED_HOST")), host.name);
    }
}
