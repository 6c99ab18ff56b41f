//! End-to-end tests of the service modules (`systemd_service`/`systemd`, `service`) and the
//! system settings modules (`sysctl`, `hostname`, `timezone`): the real `play` binary over SSH
//! against Debian booted with systemd as PID 1 (`testbed::SystemdHost`).
//!
//! Needs root, systemd-nspawn and debootstrap (see `engine/tests/systemd_host.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use testbed::SystemdHost;

mod common;
use common::{converge, recap, run_play, text};

fn boot() -> SystemdHost {
    assert!(
        testbed::systemd_available(),
        "the service tests need root, systemd-nspawn (package systemd-container) and \
         debootstrap: run them as scripts/test-all does"
    );
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

/// What `command` prints on `host`, trimmed, whether or not it succeeded.
fn ssh_text(host: &SystemdHost, command: &str) -> String {
    text(&host.ssh(command).stdout).trim().to_string()
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write");
}

/// A working directory with the host's inventory (group `targets`).
fn workdir(host: &SystemdHost) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = host.write_inventory(dir.path(), "targets");
    (dir, inventory)
}

fn play(dir: &Path, inventory: &Path, args: &[&str]) -> (String, i32) {
    let mut all = vec!["-i", inventory.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run_play(dir, &all)
}

/// Whether `unit` is active and whether it is enabled, as systemctl says.
fn unit_state(host: &SystemdHost, unit: &str) -> (String, String) {
    (
        ssh_text(host, &format!("systemctl is-active '{unit}'")),
        ssh_text(host, &format!("systemctl is-enabled '{unit}'")),
    )
}

const SOCKET_TEMPLATE: &str = "\
[Unit]
Description=app tier %i (socket)

[Socket]
ListenStream={{ app_port }}
Accept=yes

[Install]
WantedBy=sockets.target
";

/// One instance per connection (`Accept=yes`); it names the tier of the socket that started
/// it (its `TriggeredBy`), then stays until the client closes.
const SERVICE_TEMPLATE: &str = "\
[Unit]
Description=app tier responder %i

[Service]
ExecStart=/bin/sh -c 't=$$(systemctl show -P TriggeredBy %n); t=$${t#app@}; echo \"hello from $${t%%.socket}\"; exec cat >/dev/null'
StandardInput=socket
StandardOutput=socket
StandardError=journal
";

/// What "done" means for cold tiers: socket-activated template units written by `template`,
/// systemd reloaded, the tier's socket enabled and started by `systemd_service`, and a TCP
/// connection from the controller starting the tier's service, which answers.
#[test]
fn a_socket_activated_template_unit_answers_the_controller() {
    let host = boot();
    let (dir, inventory) = workdir(&host);
    let d = dir.path();
    write(d, "app@.socket.j2", SOCKET_TEMPLATE);
    write(d, "app@.service.j2", SERVICE_TEMPLATE);
    write(
        d,
        "tier.yml",
        "\
- hosts: targets
  gather_facts: false
  vars:
    app_port: 8123
    tier: beryl3
  tasks:
    - name: socket template
      template:
        src: app@.socket.j2
        dest: /etc/systemd/system/app@.socket
    - name: service template
      template:
        src: app@.service.j2
        dest: /etc/systemd/system/app@.service
    - name: reload systemd
      systemd:
        daemon_reload: true
    - name: the tier's socket
      systemd_service:
        name: \"app@{{ tier }}.socket\"
        enabled: true
        state: started
      # The units do not exist before the templates are written for real.
      ignore_errors: \"{{ ansible_check_mode }}\"
",
    );

    let (check, code) = play(d, &inventory, &["tier.yml", "--check", "--diff"]);
    assert_eq!(code, 0, "check run:\n{check}");
    assert!(check.contains("+ListenStream=8123"), "{check}");
    assert!(
        check.contains("Could not find the requested service app@beryl3.socket: host"),
        "{check}"
    );
    assert_eq!(
        ssh_text(
            &host,
            "test -e /etc/systemd/system/app@.socket && echo written || echo none"
        ),
        "none",
        "the check run wrote a unit"
    );

    let (first, code) = play(d, &inventory, &["tier.yml"]);
    assert_eq!(code, 0, "first run:\n{first}");
    assert_eq!(recap(&first, &host.name).changed, 3, "{first}");
    let (second, code) = play(d, &inventory, &["tier.yml"]);
    assert_eq!(code, 0, "second run:\n{second}");
    assert_eq!(recap(&second, &host.name).changed, 0, "{second}");
    assert_eq!(
        unit_state(&host, "app@beryl3.socket"),
        ("active".to_string(), "enabled".to_string())
    );

    // The controller connects: systemd accepts and starts one instance of app@.service.
    let stream = TcpStream::connect((host.addr.as_str(), 8123)).expect("connect to the tier");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("the tier answers");
    assert_eq!(line, "hello from beryl3\n");
    let running = ssh_ok(
        &host,
        "systemctl list-units --state=active --no-legend --plain 'app@*.service'",
    );
    assert_eq!(running.lines().count(), 1, "{running}");
    assert!(running.contains(" loaded active running "), "{running}");
    assert_eq!(
        ssh_text(&host, "systemctl show -P NAccepted app@beryl3.socket"),
        "1"
    );
    (&stream).write_all(b"bye\n").expect("write");
    drop(reader);
    drop(stream);
    assert_eq!(
        ssh_text(&host, "systemctl is-active app@beryl3.socket"),
        "active"
    );
}

/// Units of each kind, installed before the playbooks run (in /usr/lib so that they can be
/// masked), then `daemon-reload`.
fn install_units(host: &SystemdHost) {
    ssh_ok(
        host,
        r#"set -e
d=/usr/lib/systemd/system
printf '%s\n' '[Service]' 'ExecStart=/bin/sleep infinity' 'ExecReload=/bin/true' '[Install]' 'WantedBy=multi-user.target' >$d/play-web.service
printf '%s\n' '[Socket]' 'ListenStream=9100' 'Accept=yes' '[Install]' 'WantedBy=sockets.target' >$d/play-sock.socket
printf '%s\n' '[Service]' 'ExecStart=/bin/echo hi' 'StandardInput=socket' >$d/play-sock@.service
printf '%s\n' '[Timer]' 'OnCalendar=daily' '[Install]' 'WantedBy=timers.target' >$d/play-tick.timer
printf '%s\n' '[Service]' 'Type=oneshot' 'ExecStart=/bin/true' >$d/play-tick.service
printf '%s\n' '[Service]' 'ExecStart=/bin/sleep infinity' '[Install]' 'WantedBy=multi-user.target' >$d/play-worker@.service
systemctl daemon-reload"#,
    );
}

const UNITS: [&str; 4] = [
    "play-web.service",
    "play-sock.socket",
    "play-tick.timer",
    "play-worker@blue.service",
];

#[test]
fn service_socket_timer_and_template_units_converge() {
    let host = boot();
    install_units(&host);
    let (dir, inventory) = workdir(&host);
    let d = dir.path();

    write(
        d,
        "up.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - systemd_service: name=play-web state=started enabled=true
    - systemd: {name: play-sock.socket, state: started, enabled: yes}
    - ansible.builtin.systemd_service: {name: play-tick.timer, state: started, enabled: true}
    - ansible.builtin.systemd: {unit: play-worker@blue, state: started, enabled: true}
    - service: {name: play-worker@green, state: started, enabled: yes, runlevel: 3}
",
    );
    let c = converge(d, &inventory, "up.yml", &host.name, || {
        for unit in UNITS.iter().chain(&["play-worker@green.service"]) {
            let (active, enabled) = unit_state(&host, unit);
            assert_eq!(active, "inactive", "{unit} after the check run");
            assert_eq!(enabled, "disabled", "{unit} after the check run");
        }
    });
    assert_eq!(recap(&c.first, &host.name).changed, 5, "{}", c.first);
    assert!(
        c.first
            .contains("Ignoring \"runlevel\" as it is not used in \"systemd\""),
        "{}",
        c.first
    );
    for unit in UNITS.iter().chain(&["play-worker@green.service"]) {
        assert_eq!(
            unit_state(&host, unit),
            ("active".to_string(), "enabled".to_string()),
            "{unit}"
        );
    }

    write(
        d,
        "down.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - systemd: {name: play-web, state: stopped, enabled: false}
    - systemd: {name: play-web, masked: true}
    - systemd: {name: play-sock.socket, state: stopped}
    - systemd: {name: play-tick.timer, enabled: false}
    - systemd: {name: play-worker@blue.service, state: stopped, enabled: no}
    - systemd: {name: play-worker@blue.service, masked: yes}
",
    );
    let c = converge(d, &inventory, "down.yml", &host.name, || {
        for unit in UNITS {
            assert_eq!(
                unit_state(&host, unit).0,
                "active",
                "{unit} after the check run"
            );
        }
    });
    assert_eq!(recap(&c.first, &host.name).changed, 6, "{}", c.first);
    assert_eq!(
        unit_state(&host, "play-web.service"),
        ("inactive".to_string(), "masked".to_string())
    );
    assert_eq!(
        unit_state(&host, "play-sock.socket"),
        ("inactive".to_string(), "enabled".to_string())
    );
    assert_eq!(
        unit_state(&host, "play-tick.timer"),
        ("active".to_string(), "disabled".to_string())
    );
    assert_eq!(
        unit_state(&host, "play-worker@blue.service"),
        ("inactive".to_string(), "masked".to_string())
    );

    // Unmasking and enabling in one task: the enablement is read again after the unmask.
    write(
        d,
        "unmask.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - systemd: {name: play-web, masked: false, enabled: true, state: started}
    - systemd: {name: play-worker@blue, masked: false}
",
    );
    converge(d, &inventory, "unmask.yml", &host.name, || {
        assert_eq!(
            unit_state(&host, "play-web.service").1,
            "masked",
            "after the check run"
        );
    });
    assert_eq!(
        unit_state(&host, "play-web.service"),
        ("active".to_string(), "enabled".to_string())
    );
    assert_eq!(
        unit_state(&host, "play-worker@blue.service"),
        ("inactive".to_string(), "disabled".to_string())
    );
}

#[test]
fn restarts_results_and_errors_are_ansibles() {
    let host = boot();
    install_units(&host);
    let (dir, inventory) = workdir(&host);
    let d = dir.path();
    ssh_ok(&host, "systemctl start play-web.service");
    let pid = || ssh_text(&host, "systemctl show -P MainPID play-web.service");
    let before = pid();

    // `restarted` changes on every run, `reloaded` too; both report `state: started`.
    write(
        d,
        "restart.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - systemd: {name: play-web, state: restarted}
      register: restarted
    - service: {name: play-web, state: reloaded, sleep: 2}
      register: reloaded
    - assert:
        that:
          - restarted.changed and restarted.state == 'started' and restarted.name == 'play-web'
          - restarted.status.ActiveState == 'active' and restarted.status.Id == 'play-web.service'
          - reloaded.changed and reloaded.state == 'started'
          - restarted.enabled is not defined
",
    );
    let (check, code) = play(d, &inventory, &["restart.yml", "--check"]);
    assert_eq!(code, 0, "{check}");
    assert_eq!(pid(), before, "the check run restarted the unit");
    for run in 0..2 {
        let (out, code) = play(d, &inventory, &["restart.yml"]);
        assert_eq!(code, 0, "run {run}:\n{out}");
        assert_eq!(recap(&out, &host.name).changed, 2, "run {run}:\n{out}");
        assert!(
            out.contains("Ignoring \"sleep\" as it is not used in \"systemd\""),
            "{out}"
        );
    }
    assert_ne!(pid(), before, "restarted");

    // daemon_reload alone is ok (Ansible's `changed` stays false), and it does reload.
    ssh_ok(
        &host,
        "printf '%s\\n' '[Service]' 'ExecStart=/bin/sleep infinity' >/usr/lib/systemd/system/play-late.service",
    );
    write(
        d,
        "reload.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - systemd: {daemon_reload: true}
    - systemd: {name: play-late, state: started}
",
    );
    let (out, code) = play(d, &inventory, &["reload.yml"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(recap(&out, &host.name).changed, 1, "{out}");
    assert_eq!(ssh_text(&host, "systemctl is-active play-late"), "active");

    // A unit that does not exist: Ansible's words, then systemd's. The name, hostile as it
    // is, reaches systemctl intact (and nothing runs it).
    write(
        d,
        "missing.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - systemd: {name: nosuch, state: started}
      ignore_errors: true
    - systemd: {name: \"it's $(touch /tmp/pwned).service\", enabled: true}
",
    );
    let (out, code) = play(d, &inventory, &["missing.yml"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(
            "Could not find the requested service nosuch: host (Failed to get unit file state for nosuch.service: No such file or directory)"
        ),
        "{out}"
    );
    assert!(
        out.contains("Could not find the requested service it's $(touch /tmp/pwned).service: host"),
        "{out}"
    );
    assert_eq!(
        ssh_text(&host, "test -e /tmp/pwned && echo ran || echo no"),
        "no"
    );
}

#[test]
fn sysctl_hostname_and_timezone_converge_with_diffs() {
    let host = boot();
    let (dir, inventory) = workdir(&host);
    let d = dir.path();
    // In the container most of /proc/sys is read-only; its own network namespace's keys are not.
    let live = |key: &str| ssh_text(&host, &format!("sysctl -n {key}"));
    let (forward, somaxconn, syncookies) = (
        live("net.ipv4.ip_forward"),
        live("net.core.somaxconn"),
        live("net.ipv4.tcp_syncookies"),
    );
    assert_eq!(forward, "0");
    ssh_ok(
        &host,
        "mkdir -p /etc/sysctl.d && printf '%s\\n' '# play test' 'net.ipv4.tcp_syncookies = 1' >'/etc/sysctl.d/90 play.conf'",
    );
    let old_static = ssh_text(&host, "hostnamectl --static status");
    let old_name = ssh_text(&host, "uname -n");
    // The FQDN is looked up as Python's getfqdn() does (nsswitch: files, then DNS, which the
    // test host cannot reach), so both names are in /etc/hosts, as an installer puts them.
    ssh_ok(
        &host,
        &format!(
            "printf '%s\\n' '127.0.0.1 localhost' '127.0.1.1 tier-host.example.test tier-host' \
             '127.0.1.2 {old_name}' >/etc/hosts"
        ),
    );
    let old_link = ssh_text(&host, "readlink /etc/localtime");
    let old_zone = ssh_text(&host, "timedatectl show -p Timezone --value");
    assert_ne!(old_zone, "Asia/Tokyo");
    write(
        d,
        "settings.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - ansible.posix.sysctl:
        name: net.ipv4.ip_forward
        value: '1'
        sysctl_set: true
        sysctl_file: /etc/sysctl.d/90 play.conf
    - sysctl:
        name: net.core.somaxconn
        value: 1024
        sysctl_file: /etc/sysctl.d/90 play.conf
    - sysctl: {name: net.ipv4.tcp_syncookies, state: absent, sysctl_file: /etc/sysctl.d/90 play.conf}
    - hostname: {name: tier-host.example.test}
    - community.general.timezone: {name: Asia/Tokyo}
    - assert:
        that:
          - ansible_hostname == 'tier-host'
          - ansible_nodename == 'tier-host.example.test'
    - assert:
        that:
          - ansible_fqdn == 'tier-host.example.test'
          - ansible_domain == 'example.test'
      when: not ansible_check_mode
",
    );
    let c = converge(d, &inventory, "settings.yml", &host.name, || {
        assert_eq!(live("net.ipv4.ip_forward"), forward);
        assert_eq!(live("net.core.somaxconn"), somaxconn);
        assert_eq!(
            ssh_text(&host, "cat '/etc/sysctl.d/90 play.conf'"),
            "# play test\nnet.ipv4.tcp_syncookies = 1"
        );
        assert_eq!(ssh_text(&host, "hostnamectl --static status"), old_static);
        assert_eq!(ssh_text(&host, "uname -n"), old_name);
        assert_eq!(ssh_text(&host, "readlink /etc/localtime"), old_link);
    });
    assert_eq!(recap(&c.first, &host.name).changed, 5, "{}", c.first);
    for out in [&c.check, &c.first] {
        // The file's diff (the line Ansible rewrites without spaces, the new keys) ...
        assert!(
            out.contains("--- before: /etc/sysctl.d/90 play.conf"),
            "{out}"
        );
        assert!(out.contains("+net.ipv4.ip_forward=1\n"), "{out}");
        assert!(out.contains("+net.core.somaxconn=1024\n"), "{out}");
        assert!(out.contains("-net.ipv4.tcp_syncookies = 1\n"), "{out}");
        // ... the host name's and the zone's, as Ansible shows them.
        assert!(
            out.contains(&format!(
                "-hostname = {old_name}\n+hostname = tier-host.example.test\n"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "-    \"name\": \"{old_zone}\"\n+    \"name\": \"Asia/Tokyo\"\n"
            )),
            "{out}"
        );
    }
    assert_eq!(live("net.ipv4.ip_forward"), "1");
    assert_eq!(live("net.core.somaxconn"), "1024");
    // Removing the line does not set the live value back; it only leaves the file.
    assert_eq!(live("net.ipv4.tcp_syncookies"), syncookies);
    assert_eq!(
        ssh_text(&host, "cat '/etc/sysctl.d/90 play.conf'"),
        "# play test\nnet.ipv4.ip_forward=1\nnet.core.somaxconn=1024"
    );
    assert_eq!(
        ssh_text(&host, "hostnamectl --static status; uname -n"),
        "tier-host.example.test\ntier-host.example.test"
    );
    assert!(
        ssh_text(&host, "timedatectl status").contains("Time zone: Asia/Tokyo"),
        "timezone set"
    );

    // Bad input: a zone that does not exist, a key the kernel refuses.
    write(
        d,
        "bad.yml",
        "\
- hosts: targets
  gather_facts: false
  tasks:
    - timezone: {name: Mars/Olympus_Mons}
      ignore_errors: true
    - sysctl: {name: kernel.ostype, value: Plan9, sysctl_set: true, reload: false, sysctl_file: /tmp/x.conf}
",
    );
    let (out, code) = play(d, &inventory, &["bad.yml"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("given timezone \\\"Mars/Olympus_Mons\\\" is not available")
            || out.contains("given timezone \"Mars/Olympus_Mons\" is not available"),
        "{out}"
    );
    assert!(
        out.contains("setting kernel.ostype failed: sysctl: setting key \\\"kernel.ostype\\\"")
            || out.contains("setting kernel.ostype failed: sysctl: setting key \"kernel.ostype\""),
        "{out}"
    );
    assert_eq!(
        ssh_text(&host, "test -e /tmp/x.conf && echo written || echo no"),
        "no",
        "a failed sysctl -w stops before the file"
    );
}
