//! End-to-end tests of the systemd test host (`testbed::SystemdHost`): the real `play` binary
//! over SSH against Debian booted with systemd as PID 1, the host's package repositories, its
//! link to the controller, hosts booted side by side, and their teardown.
//!
//! Needs root and the packages scripts/test-all installs; the first run on a machine builds
//! the hosts' root filesystem (see README.md).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;

use testbed::SystemdHost;

mod common;
use common::{recap, run_play, text};

fn require_systemd() {
    assert!(
        testbed::systemd_available(),
        "the systemd host tests need root, systemd-nspawn (package systemd-container) and \
         debootstrap: run them as scripts/test-all does"
    );
}

fn boot() -> SystemdHost {
    require_systemd();
    SystemdHost::boot().unwrap_or_else(|error| panic!("the systemd host boots: {error}"))
}

/// Runs `command` on `host` as root; its stdout, after checking that it succeeded.
fn ssh_ok(host: &SystemdHost, command: &str) -> String {
    let output = host.ssh(command);
    assert!(
        output.status.success(),
        "`{command}` on {} failed ({}):\n{}{}",
        host.name,
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn mounted(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let path = path.to_string_lossy();
    table
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(&*path))
}

/// What a running host holds on the controller, to check that it is gone after the drop.
struct Footprint {
    name: String,
    netns: String,
    link: String,
    root: std::path::PathBuf,
    nspawn: u32,
}

impl Footprint {
    fn of(host: &SystemdHost) -> Footprint {
        let footprint = Footprint {
            name: host.name.clone(),
            netns: host.network_namespace(),
            link: host.controller_link(),
            root: host.root_dir().to_path_buf(),
            nspawn: host.nspawn_pid().expect("nspawn runs"),
        };
        assert!(footprint.present(), "{} is not all there", footprint.name);
        footprint
    }

    fn present(&self) -> bool {
        Path::new("/run/netns").join(&self.netns).exists()
            && Path::new("/sys/class/net").join(&self.link).exists()
            && mounted(&self.root)
            && testbed::process_running(self.nspawn)
    }

    fn assert_gone(&self) {
        let name = &self.name;
        assert!(
            !Path::new("/run/netns").join(&self.netns).exists(),
            "{name}: netns stays"
        );
        assert!(
            !Path::new("/sys/class/net").join(&self.link).exists(),
            "{name}: veth stays"
        );
        assert!(!mounted(&self.root), "{name}: overlay stays mounted");
        assert!(!self.root.exists(), "{name}: run directory stays");
        assert!(
            !testbed::process_running(self.nspawn),
            "{name}: nspawn still runs"
        );
    }
}

#[test]
fn play_runs_a_playbook_on_a_booted_systemd_host() {
    let host = boot();
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = host.write_inventory(dir.path(), "machines");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: machines\n\
         \x20 tasks:\n\
         \x20   - name: ask systemd\n\
         \x20     command: systemctl is-system-running\n\
         \x20     register: state\n\
         \x20     changed_when: false\n\
         \x20   - name: facts of a Debian host run by systemd\n\
         \x20     assert:\n\
         \x20       that:\n\
         \x20         - state.stdout in ['running', 'degraded']\n\
         \x20         - ansible_service_mgr == 'systemd'\n\
         \x20         - ansible_pkg_mgr == 'apt'\n\
         \x20         - ansible_distribution == 'Debian'\n\
         \x20         - ansible_distribution_release == 'bookworm'\n\
         \x20         - ansible_hostname == inventory_hostname\n\
         \x20         - ansible_default_ipv4.address == ansible_host\n\
         \x20         - ansible_default_ipv4.gateway == gateway\n\
         \x20   - name: systemd is PID 1\n\
         \x20     command: cat /proc/1/comm\n\
         \x20     register: init\n\
         \x20     failed_when: init.stdout != 'systemd'\n\
         \x20     changed_when: false\n",
    )
    .expect("playbook");
    let (out, code) = run_play(
        dir.path(),
        &[
            "-i",
            inventory.to_str().expect("utf-8"),
            "site.yml",
            "-e",
            &format!("gateway={}", host.gateway),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let counts = recap(&out, &host.name);
    assert_eq!(
        (counts.ok, counts.failed, counts.unreachable),
        (4, 0, 0),
        "{out}"
    );
}

#[test]
fn two_hosts_boot_side_by_side_and_leave_nothing_behind() {
    require_systemd();
    let hosts = SystemdHost::boot_many(2).unwrap_or_else(|error| panic!("hosts boot: {error}"));
    let (a, b) = (&hosts[0], &hosts[1]);
    assert_ne!(a.name, b.name);
    assert_ne!(a.addr, b.addr);
    assert_ne!(a.gateway, b.gateway);
    assert_ne!(a.root_dir(), b.root_dir());
    let footprints: Vec<Footprint> = hosts.iter().map(Footprint::of).collect();

    // One inventory, one play: each host answers with its own name and machine id.
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.yml");
    std::fs::write(&inventory, SystemdHost::inventory_yaml_for(&hosts, "pair")).expect("write");
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: pair\n\
         \x20 gather_facts: false\n\
         \x20 tasks:\n\
         \x20   - command: cat /etc/hostname /etc/machine-id\n\
         \x20     register: id\n\
         \x20     failed_when: id.stdout_lines[0] != inventory_hostname\n\
         \x20     changed_when: false\n",
    )
    .expect("playbook");
    let (out, code) = run_play(
        dir.path(),
        &["-i", inventory.to_str().expect("utf-8"), "site.yml"],
    );
    assert_eq!(code, 0, "{out}");
    for host in &hosts {
        assert_eq!(recap(&out, &host.name).ok, 1, "{out}");
    }
    let ids: Vec<String> = hosts
        .iter()
        .map(|host| ssh_ok(host, "cat /etc/machine-id"))
        .collect();
    assert_ne!(ids[0], ids[1], "machine ids are per host");

    drop(hosts);
    for footprint in &footprints {
        footprint.assert_gone();
    }
}

#[test]
fn a_panicking_test_still_takes_its_host_down() {
    let host = boot();
    let footprint = Footprint::of(&host);
    let result = std::panic::catch_unwind(move || {
        let _host = host;
        panic!("a failing test");
    });
    assert!(result.is_err());
    footprint.assert_gone();
}

#[test]
fn the_host_reaches_a_server_on_its_gateway() {
    let host = boot();
    let listener = TcpListener::bind((host.gateway.as_str(), 0)).expect("bind the gateway");
    let port = listener.local_addr().expect("address").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        stream
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
            .expect("respond");
    });
    let body = ssh_ok(&host, &format!("curl -sS http://{}:{port}/", host.gateway));
    server.join().expect("server");
    assert_eq!(body, "hello\n");
}

#[test]
fn package_repositories_serve_the_test_packages_without_network() {
    let host = boot();
    assert_eq!(
        ssh_ok(
            &host,
            "grep -v '^#' /etc/apt/sources.list; ls -A /etc/apt/sources.list.d"
        ),
        "deb [trusted=yes] file:/srv/apt ./\n"
    );

    // pacman: dependencies resolve, and a published version is an upgrade.
    ssh_ok(&host, "pacman -Sy --noconfirm hello-a hello-b");
    assert_eq!(
        ssh_ok(&host, "pacman -Q; cat /usr/share/hello-a/VERSION; hello-c"),
        "hello-a 1.0-1\nhello-b 1.0-1\nhello-c 1.0-1\n1.0\nhello-c 1.0\n"
    );
    host.publish_pacman("hello-a", "1.1")
        .expect("publish hello-a 1.1");
    ssh_ok(&host, "pacman -Syu --noconfirm");
    assert_eq!(ssh_ok(&host, "hello-a"), "hello-a 1.1\n");

    // apt: the same, plus a .deb installed by path.
    ssh_ok(
        &host,
        "apt-get update -q && apt-get install -y -q play-needs-dep play-hello",
    );
    assert_eq!(
        ssh_ok(
            &host,
            "dpkg-query -W -f '${Package} ${Version}\\n' play-dep play-needs-dep play-hello"
        ),
        "play-dep 1.0\nplay-hello 1.0\nplay-needs-dep 1.0\n"
    );
    host.publish_apt("play-hello", "1.1")
        .expect("publish play-hello 1.1");
    ssh_ok(
        &host,
        "apt-get update -q && apt-get install -y -q play-hello",
    );
    assert_eq!(ssh_ok(&host, "play-hello"), "play-hello 1.1\n");
    assert!(
        ssh_ok(&host, "apt-cache madison play-hello").contains("1.0"),
        "the apt repository keeps the older version"
    );
    ssh_ok(&host, "dpkg -i /srv/debs/play-local_1.0_all.deb");
    assert_eq!(ssh_ok(&host, "cat /usr/share/play-local/VERSION"), "1.0\n");

    let error = host
        .publish_apt("play-hello", "9.9")
        .expect_err("no such version");
    assert!(
        error.to_string().contains("play-hello 1.1"),
        "the error lists what exists: {error}"
    );
}
