//! The `setup` module: gathers facts with ONE exec of a POSIX shell script (`setup.sh`,
//! no Python, no bash-isms, no network traffic) and builds Ansible's facts from its output
//! on the controller.
//!
//! The result is `{"ansible_facts": {...}}` with keys WITHOUT the `ansible_` prefix (the
//! engine adds the prefixed copies), `changed: false`. Facts follow Ansible 2.19's names and
//! value types (`memtotal_mb` int, `processor_vcpus` int, `date_time` all strings, ...).
//!
//! Gathered: platform (`system`, `kernel`, `kernel_version`, `machine`, `architecture`,
//! `nodename`, `hostname`, `fqdn`, `domain`, `userspace_bits`, `userspace_architecture`,
//! `machine_id`), user (`user_id`, `user_uid`, `user_gid`, `user_gecos`, `user_dir`,
//! `user_shell`, `real_/effective_user_id`, `real_/effective_group_id`), `date_time`,
//! distribution (see `distribution.rs`), `os_family`, `pkg_mgr`, `service_mgr`, `env`,
//! `cmdline`, `proc_cmdline`, `fips`, `dns`, `apparmor`, `local` (always `{}`); with
//! `hardware`: `memtotal_mb`, `memfree_mb`, `swaptotal_mb`, `swapfree_mb`, `memory_mb`,
//! `processor*`, `flags`, `uptime_seconds`, `loadavg`; with `virtual`: `virtualization_*`;
//! with `network`: `interfaces`, one fact per interface, `default_ipv4`, `default_ipv6`,
//! `all_ipv4_addresses`, `all_ipv6_addresses`, `locally_reachable_ips`. Plus
//! `gather_subset` and `module_setup`.
//!
//! Also `is_chroot`, and with `hardware` the DMI strings (`bios_*`, `board_*`,
//! `chassis_*`, `product_*`, `system_vendor`, `form_factor`).
//!
//! Not gathered (cost or Python-only): `python*`, `selinux*`, `lsb`, `mounts`, `devices`,
//! `device_links`, `lvm`, `iscsi_iqn`, `hostnqn`, `fibre_channel_wwn`,
//! `system_capabilities*`, `fact_path` local facts (the argument is accepted and
//! ignored), ethtool features.
//!
//! Deviations, on purpose:
//! - `fqdn` is `hostname -f` (bounded by `gather_timeout`), falling back to the node name;
//!   Ansible's `socket.getfqdn()` can differ on hosts whose `/etc/hosts` maps the name to
//!   `localhost`.
//! - `default_ipv4`/`default_ipv6` come from `ip -4|-6 route show default` and the interface's
//!   first address, not `ip route get 8.8.8.8`; without `ip`, only the gateway and
//!   interface from `/proc/net/route` are known.
//! - `effective_group_id` is the effective gid (Ansible reports the real gid there).
//! - `tz_dst` is the zone's summer abbreviation from `date -d` (Python's `time.tzname[1]`).
//! - `cmdline` words are split on whitespace (Ansible uses non-POSIX shlex).
//! - `interfaces` lists sysfs names sorted; Ansible keeps `os.listdir` order.
//!
//! Checked against `ansible localhost -m setup` (ansible-core 2.19) on a Debian 12 machine:
//! every fact both produce has the same value and type except `fqdn` (see above) and the
//! order of `interfaces`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde::Deserialize;

use super::distribution::{distribution_facts, Files};
use super::hardware::{hardware_facts, virtual_facts};
use super::network::network_facts;
use crate::commands::support::civil_from_days;
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `setup`.
pub struct Setup;

const SETUP_SH: &str = include_str!("setup.sh");

#[derive(Debug, Deserialize)]
struct SetupArgs {
    gather_subset: Option<Vec<String>>,
    #[serde(default = "default_gather_timeout")]
    gather_timeout: i64,
    filter: Option<Vec<String>>,
    /// Local facts are not supported; accepted so playbooks that set it still run.
    #[allow(dead_code)]
    fact_path: Option<String>,
}

fn default_gather_timeout() -> i64 {
    10
}

/// Which optional groups of facts to gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsets {
    pub hardware: bool,
    pub network: bool,
    pub virtual_: bool,
}

impl Subsets {
    /// Ansible's `gather_subset` rules over the groups this module knows: `all` adds every
    /// group, `!all` removes them (the minimal facts always stay), `!x` removes a group and
    /// an explicitly named group is added back after all removals.
    pub fn from_spec(spec: &[String]) -> Self {
        let mut added = BTreeSet::new();
        let mut excluded = BTreeSet::new();
        let mut explicit = BTreeSet::new();
        let all = ["hardware", "network", "virtual"];
        for item in spec {
            let item = item.trim();
            match item {
                "all" => added.extend(all),
                "min" | "!min" => {}
                "!all" => excluded.extend(all),
                _ => {
                    if let Some(name) = item.strip_prefix('!') {
                        excluded.insert(name);
                    } else {
                        added.insert(item);
                        explicit.insert(item);
                    }
                }
            }
        }
        let on = |name: &str| {
            (added.contains(name) && !excluded.contains(name)) || explicit.contains(name)
        };
        Self {
            hardware: on("hardware"),
            network: on("network"),
            virtual_: on("virtual"),
        }
    }
}

impl Module for Setup {
    fn name(&self) -> &'static str {
        "setup"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<SetupArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: SetupArgs = args::parse("setup", args)?;
        let spec = a.gather_subset.unwrap_or_else(|| vec!["all".to_string()]);
        let subsets = Subsets::from_spec(&spec);
        let flag = |on: bool| if on { "1" } else { "" };
        let script = Script::new()
            .set("play_hw", flag(subsets.hardware))
            .raw(";")
            .set("play_net", flag(subsets.network))
            .raw(";")
            .set("play_virt", flag(subsets.virtual_))
            .raw(";")
            .set("play_timeout", a.gather_timeout.max(1).to_string())
            .raw("\n")
            .raw(SETUP_SH);
        let out = ctx.host.exec(&Cmd::script(script))?;
        if out.stdout.is_empty() {
            return Ok(Outcome::failed(format!(
                "fact gathering failed on the target (rc {}): {}",
                out.status,
                out.stderr_str().trim()
            )));
        }
        let gathered = Gathered::parse(&out.stdout);
        let mut facts = build_facts(&gathered, subsets);
        facts.insert(
            "gather_subset".into(),
            Value::from(
                spec.iter()
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>(),
            ),
        );
        facts.insert("module_setup".into(), Value::Bool(true));
        let facts = filter_facts(facts, a.filter.as_deref().unwrap_or(&[]))?;
        Ok(Outcome::ok().with("ansible_facts", facts))
    }
}

/// Ansible's `filter`: fnmatch patterns on the prefixed names (`ansible_eth*`), also tried
/// with `ansible_` put in front of patterns that lack it (`eth*`). `gather_subset` and
/// `module_setup` are matched by their own names, as Ansible does.
fn filter_facts(facts: Map, patterns: &[String]) -> Result<Map, ModuleError> {
    if patterns.is_empty() || patterns.iter().any(|p| p.is_empty() || p == "*") {
        return Ok(facts);
    }
    let mut globs = Vec::new();
    for p in patterns {
        let mut candidates = vec![p.clone()];
        if !p.starts_with("ansible_") && !p.starts_with("facter") && !p.starts_with("ohai") {
            candidates.push(format!("ansible_{p}"));
        }
        for c in candidates {
            let glob = globset::GlobBuilder::new(&c)
                .literal_separator(false)
                .backslash_escape(false)
                .build()
                .map_err(|e| ModuleError::Args(format!("invalid filter {p:?}: {e}")))?;
            globs.push(glob.compile_matcher());
        }
    }
    Ok(facts
        .into_iter()
        .filter(|(k, _)| {
            let name = if k == "gather_subset" || k == "module_setup" {
                k.clone()
            } else {
                format!("ansible_{k}")
            };
            globs.iter().any(|g| g.is_match(&name))
        })
        .collect())
}

/// The script's output: `name value` pairs, file contents, interfaces, then the environment.
#[derive(Debug, Default)]
pub struct Gathered {
    pub(super) values: BTreeMap<String, String>,
    pub(super) files: Files,
    pub(super) exists: BTreeSet<String>,
    pub(super) have: BTreeSet<String>,
    pub(super) interfaces: Vec<(String, BTreeMap<String, String>)>,
    pub(super) env: Vec<(String, String)>,
}

impl Gathered {
    pub fn parse(stdout: &[u8]) -> Self {
        let text = String::from_utf8_lossy(stdout);
        let mut items = text.split('\0');
        let mut g = Gathered::default();
        while let Some(name) = items.next() {
            match name {
                "env" => {
                    for entry in items.by_ref() {
                        if let Some((k, v)) = entry.split_once('=') {
                            g.env.push((k.to_string(), v.to_string()));
                        }
                    }
                    break;
                }
                "file" => {
                    let path = items.next().unwrap_or_default().to_string();
                    let content = items.next().unwrap_or_default().to_string();
                    g.files.insert(path, content);
                }
                "exists" => {
                    g.exists
                        .insert(items.next().unwrap_or_default().to_string());
                }
                "have" => {
                    g.have.insert(items.next().unwrap_or_default().to_string());
                }
                "if" => {
                    let dev = items.next().unwrap_or_default().to_string();
                    g.interfaces.push((dev, BTreeMap::new()));
                }
                "" => {}
                _ => {
                    let value = items.next().unwrap_or_default().to_string();
                    if let Some(key) = name.strip_prefix("if.") {
                        if let Some((_, attrs)) = g.interfaces.last_mut() {
                            attrs.insert(key.to_string(), value);
                        }
                    } else {
                        g.values.insert(name.to_string(), value);
                    }
                }
            }
        }
        g
    }

    pub(super) fn value(&self, key: &str) -> &str {
        self.values.get(key).map_or("", |v| v.trim())
    }
    /// A file's content stripped of surrounding whitespace (Python's `get_file_content`).
    pub(super) fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|s| s.trim())
    }
}

pub(super) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// All facts from what the script printed.
pub fn build_facts(g: &Gathered, subsets: Subsets) -> Map {
    let mut facts = Map::new();
    platform_facts(g, &mut facts);
    user_facts(g, &mut facts);
    facts.insert("date_time".into(), Value::Object(date_time_facts(g)));
    if g.value("system") == "Linux" {
        facts.extend(distribution_facts(&g.files));
    } else {
        let system = g.value("system");
        facts.insert("distribution".into(), s(system));
        facts.insert("distribution_release".into(), s(g.value("kernel")));
        facts.insert("distribution_version".into(), s(g.value("kernel_version")));
        facts.insert("os_family".into(), s(system));
    }
    let family = facts
        .get("os_family")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let distribution = facts
        .get("distribution")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    facts.insert("pkg_mgr".into(), s(pkg_mgr(g, &family)));
    facts.insert("service_mgr".into(), s(service_mgr(g, &distribution)));
    let env: Map = g
        .env
        .iter()
        .map(|(k, v)| (k.clone(), s(v.clone())))
        .collect();
    facts.insert("env".into(), Value::Object(env));
    misc_facts(g, &mut facts);
    if subsets.hardware {
        hardware_facts(g, &mut facts);
    }
    if subsets.virtual_ {
        facts.extend(virtual_facts(g));
    }
    if subsets.network {
        facts.extend(network_facts(g));
    }
    facts
}

fn platform_facts(g: &Gathered, facts: &mut Map) {
    let machine = g.value("machine").to_string();
    let nodename = g.value("nodename").to_string();
    facts.insert("system".into(), s(g.value("system")));
    facts.insert("kernel".into(), s(g.value("kernel")));
    facts.insert("kernel_version".into(), s(g.value("kernel_version")));
    facts.insert("machine".into(), s(machine.clone()));
    facts.insert("nodename".into(), s(nodename.clone()));
    facts.insert(
        "hostname".into(),
        s(nodename.split('.').next().unwrap_or("")),
    );
    let fqdn = match g.value("fqdn") {
        "" => nodename.clone(),
        f => f.to_string(),
    };
    let domain = fqdn.split_once('.').map_or("", |(_, d)| d).to_string();
    facts.insert("fqdn".into(), s(fqdn));
    facts.insert("domain".into(), s(domain));
    let bits = match g.value("userspace_bits") {
        "" if machine.contains("64") || machine == "s390x" => "64".to_string(),
        "" => "32".to_string(),
        b => b.to_string(),
    };
    facts.insert("userspace_bits".into(), s(bits.clone()));
    static I86: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"i([3456]86|86pc)").ok());
    let i86 = I86.as_ref().is_some_and(|r| r.is_match(&machine));
    let architecture = if i86 {
        "i386".to_string()
    } else {
        machine.clone()
    };
    if machine == "x86_64" || i86 {
        let user_arch = if bits == "64" { "x86_64" } else { "i386" };
        facts.insert("userspace_architecture".into(), s(user_arch));
    }
    facts.insert("architecture".into(), s(architecture));
    let machine_id = g
        .file("/var/lib/dbus/machine-id")
        .filter(|m| !m.is_empty())
        .or_else(|| g.file("/etc/machine-id"))
        .and_then(|m| m.lines().next())
        .filter(|m| !m.is_empty());
    if let Some(id) = machine_id {
        facts.insert("machine_id".into(), s(id));
    }
}

fn user_facts(g: &Gathered, facts: &mut Map) {
    let pw: Vec<&str> = g.value("passwd").splitn(7, ':').collect();
    let ids: Vec<i64> = g
        .value("ids")
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let int = |v: Option<&&str>| {
        v.and_then(|n| n.parse::<i64>().ok())
            .map_or(Value::Null, Value::from)
    };
    let user_id = match g.value("user_name") {
        "" => pw.first().copied().unwrap_or(""),
        u => u,
    };
    facts.insert("user_id".into(), s(user_id));
    facts.insert("user_uid".into(), int(pw.get(2)));
    facts.insert("user_gid".into(), int(pw.get(3)));
    facts.insert("user_gecos".into(), s(pw.get(4).copied().unwrap_or("")));
    facts.insert("user_dir".into(), s(pw.get(5).copied().unwrap_or("")));
    facts.insert("user_shell".into(), s(pw.get(6).copied().unwrap_or("")));
    if let [euid, egid, ruid, rgid] = ids.as_slice() {
        facts.insert("real_user_id".into(), Value::from(*ruid));
        facts.insert("effective_user_id".into(), Value::from(*euid));
        facts.insert("real_group_id".into(), Value::from(*rgid));
        facts.insert("effective_group_id".into(), Value::from(*egid));
    }
}

/// Ansible's `date_time` from one `date` reading: local fields as the target prints them,
/// UTC fields from the epoch.
fn date_time_facts(g: &Gathered) -> Map {
    let mut dt = Map::new();
    let parts: Vec<&str> = g.value("date").split_whitespace().collect();
    let [epoch, nanos, offset, tz, year, month, day, hour, minute, second, weekday, wday, week] =
        parts.as_slice()
    else {
        return dt;
    };
    let Ok(epoch_n) = epoch.parse::<i64>() else {
        return dt;
    };
    let micros = if nanos.len() == 9 && nanos.bytes().all(|b| b.is_ascii_digit()) {
        format!("{:06}", nanos.parse::<u64>().unwrap_or(0) / 1000)
    } else {
        "000000".to_string()
    };
    let (uy, um, ud) = civil_from_days(epoch_n.div_euclid(86_400));
    let secs = epoch_n.rem_euclid(86_400);
    let utc = format!(
        "{uy:04}-{um:02}-{ud:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let put = |dt: &mut Map, k: &str, v: String| {
        dt.insert(k.to_string(), Value::String(v));
    };
    put(&mut dt, "year", year.to_string());
    put(&mut dt, "month", month.to_string());
    put(&mut dt, "weekday", weekday.to_string());
    put(&mut dt, "weekday_number", wday.to_string());
    put(&mut dt, "weeknumber", week.to_string());
    put(&mut dt, "day", day.to_string());
    put(&mut dt, "hour", hour.to_string());
    put(&mut dt, "minute", minute.to_string());
    put(&mut dt, "second", second.to_string());
    put(&mut dt, "epoch", epoch.to_string());
    put(&mut dt, "epoch_int", epoch_n.to_string());
    put(&mut dt, "date", format!("{year}-{month}-{day}"));
    put(&mut dt, "time", format!("{hour}:{minute}:{second}"));
    put(&mut dt, "iso8601_micro", format!("{utc}.{micros}Z"));
    put(&mut dt, "iso8601", format!("{utc}Z"));
    put(
        &mut dt,
        "iso8601_basic",
        format!("{year}{month}{day}T{hour}{minute}{second}{micros}"),
    );
    put(
        &mut dt,
        "iso8601_basic_short",
        format!("{year}{month}{day}T{hour}{minute}{second}"),
    );
    put(&mut dt, "tz", tz.to_string());
    put(&mut dt, "tz_dst", tz_dst(g, tz));
    put(&mut dt, "tz_offset", offset.to_string());
    dt
}

/// The zone's daylight-saving abbreviation: of the January and July names, the one with
/// the larger UTC offset; the current name when the zone has no DST or `date -d` failed.
fn tz_dst(g: &Gathered, current: &str) -> String {
    let parse = |v: &str| -> Option<(i64, String)> {
        let (off, name) = v.trim().split_once(' ')?;
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits = off.trim_start_matches(['+', '-']);
        let n: i64 = digits.parse().ok()?;
        Some((sign * (n / 100 * 60 + n % 100), name.to_string()))
    };
    match (parse(g.value("tz_jan")), parse(g.value("tz_jul"))) {
        (Some((o1, n1)), Some((o2, n2))) if o1 != o2 => {
            if o1 > o2 {
                n1
            } else {
                n2
            }
        }
        (Some((_, n1)), Some(_)) => n1,
        _ => current.to_string(),
    }
}

/// Ansible's `pkg_mgr`: the last known package manager binary present, then the distribution
/// family's own choice.
fn pkg_mgr(g: &Gathered, family: &str) -> String {
    const PKG_MGRS: &[(&str, &str)] = &[
        ("/usr/bin/rpm-ostree", "atomic_container"),
        ("/usr/bin/yum", "dnf"),
        ("/usr/bin/dnf-3", "dnf"),
        ("/usr/bin/dnf5", "dnf5"),
        ("/usr/bin/apt-get", "apt"),
        ("/usr/bin/zypper", "zypper"),
        ("/usr/sbin/urpmi", "urpmi"),
        ("/usr/bin/pacman", "pacman"),
        ("/bin/opkg", "opkg"),
        ("/usr/pkg/bin/pkgin", "pkgin"),
        ("/opt/local/bin/pkgin", "pkgin"),
        ("/opt/tools/bin/pkgin", "pkgin"),
        ("/opt/local/bin/port", "macports"),
        ("/usr/local/bin/brew", "homebrew"),
        ("/opt/homebrew/bin/brew", "homebrew"),
        ("/sbin/apk", "apk"),
        ("/usr/sbin/pkg", "pkgng"),
        ("/usr/sbin/swlist", "swdepot"),
        ("/usr/bin/emerge", "portage"),
        ("/usr/sbin/pkgadd", "svr4pkg"),
        ("/usr/bin/pkg", "pkg5"),
        ("/usr/bin/xbps-install", "xbps"),
        ("/usr/local/sbin/pkg", "pkgng"),
        ("/usr/bin/swupd", "swupd"),
        ("/usr/sbin/sorcery", "sorcery"),
        ("/usr/bin/installp", "installp"),
    ];
    let mut name = "unknown".to_string();
    for (path, mgr) in PKG_MGRS {
        if family == "Altlinux" && *path == "/usr/bin/pkg" {
            continue;
        }
        if g.exists.contains(*path) {
            name = mgr.to_string();
        }
    }
    if family == "RedHat" {
        name = if g.exists.contains("/run/ostree-booted") {
            "atomic_container".into()
        } else {
            ["/usr/bin/dnf", "/usr/bin/microdnf"]
                .iter()
                .find(|p| g.exists.contains(**p))
                .map_or("unknown".to_string(), |p| {
                    if g.value(&format!("realpath {p}")) == "/usr/bin/dnf5" {
                        "dnf5".into()
                    } else {
                        "dnf".into()
                    }
                })
        };
    } else if family == "Debian" {
        name = "apt".into();
    } else if family == "Altlinux" && name == "apt" {
        name = "apt_rpm".into();
    }
    name
}

/// Ansible's `service_mgr`: PID 1's name when it is telling, else the usual markers.
fn service_mgr(g: &Gathered, distribution: &str) -> String {
    let mut proc1 = match g.value("proc1") {
        "" => None,
        p => Some(p.to_string()),
    };
    if proc1.is_none() {
        let init = g.value("sbin_init");
        if !init.is_empty() {
            proc1 = Some(init.to_string());
        }
    }
    let proc1 = proc1
        .map(|p| p.rsplit('/').next().unwrap_or("").trim().to_string())
        .filter(|p| !p.is_empty() && p != "init" && !p.ends_with("sh"));
    if let Some(p) = proc1 {
        return match p.as_str() {
            "procd" => "openwrt_init",
            "runit-init" => "runit",
            "svscan" => "svc",
            "openrc-init" => "openrc",
            other => other,
        }
        .to_string();
    }
    let system = g.value("system");
    let systemctl = g.have.contains("systemctl");
    let name = if system.contains("BSD") || system == "DragonFly" {
        "bsdinit"
    } else if distribution == "OpenWrt" {
        "openwrt_init"
    } else if distribution == "SMGL" {
        "simpleinit_msb"
    } else if system == "Linux" {
        let canary = [
            "/run/systemd/system/",
            "/dev/.run/systemd/",
            "/dev/.systemd/",
        ]
        .iter()
        .any(|c| g.exists.contains(*c));
        if systemctl && canary {
            "systemd"
        } else if g.have.contains("initctl") && g.exists.contains("/etc/init/") {
            "upstart"
        } else if g.exists.contains("/sbin/openrc") {
            "openrc"
        } else if systemctl && g.value("sbin_init").rsplit('/').next() == Some("systemd") {
            "systemd"
        } else if g.exists.contains("/etc/init.d/") {
            "sysvinit"
        } else if g.exists.contains("/etc/dinit.d/") {
            "dinit"
        } else {
            "service"
        }
    } else {
        "service"
    };
    name.to_string()
}

fn misc_facts(g: &Gathered, facts: &mut Map) {
    if let Some(cmdline) = g.file("/proc/cmdline").filter(|c| !c.is_empty()) {
        let mut flat = Map::new();
        let mut multi = Map::new();
        for piece in cmdline.split_whitespace() {
            match piece.split_once('=') {
                None => {
                    flat.insert(piece.into(), Value::Bool(true));
                    multi.insert(piece.into(), Value::Bool(true));
                }
                Some((k, v)) => {
                    flat.insert(k.into(), s(v));
                    match multi.get_mut(k) {
                        Some(Value::Array(list)) => list.push(s(v)),
                        Some(existing) => {
                            let first = existing.clone();
                            *existing = Value::Array(vec![first, s(v)]);
                        }
                        None => {
                            multi.insert(k.into(), s(v));
                        }
                    }
                }
            }
        }
        facts.insert("cmdline".into(), Value::Object(flat));
        facts.insert("proc_cmdline".into(), Value::Object(multi));
    }
    facts.insert(
        "fips".into(),
        Value::Bool(g.file("/proc/sys/crypto/fips_enabled") == Some("1")),
    );
    let apparmor = if g.exists.contains("/sys/kernel/security/apparmor") {
        "enabled"
    } else {
        "disabled"
    };
    facts.insert("apparmor".into(), serde_json::json!({ "status": apparmor }));
    facts.insert(
        "dns".into(),
        Value::Object(dns_facts(g.file("/etc/resolv.conf").unwrap_or(""))),
    );
    facts.insert("local".into(), Value::Object(Map::new()));
    if let Some(chroot) = is_chroot(g) {
        facts.insert("is_chroot".into(), Value::Bool(chroot));
    }
}

/// Ansible's `dns` fact from resolv.conf.
fn dns_facts(resolv: &str) -> Map {
    let mut dns = Map::new();
    for line in resolv.lines() {
        if line.starts_with('#') || line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let rest = || {
            Value::from(
                tokens[1..]
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>(),
            )
        };
        match tokens[0] {
            "nameserver" => {
                let entry = dns
                    .entry("nameservers")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = entry {
                    list.extend(tokens[1..].iter().map(|t| s(*t)));
                }
            }
            "domain" if tokens.len() > 1 => {
                dns.insert("domain".into(), s(tokens[1]));
            }
            "search" => {
                dns.insert("search".into(), rest());
            }
            "sortlist" => {
                dns.insert("sortlist".into(), rest());
            }
            "options" => {
                let mut options = Map::new();
                for option in &tokens[1..] {
                    match option.split_once(':') {
                        Some((k, v)) if !v.is_empty() => options.insert(k.into(), s(v)),
                        Some((k, _)) => options.insert(k.into(), Value::Bool(true)),
                        None => options.insert(option.to_string(), Value::Bool(true)),
                    };
                }
                dns.insert("options".into(), Value::Object(options));
            }
            _ => {}
        }
    }
    dns
}

/// Ansible's `is_chroot`: `/` differs from PID 1's root; when that cannot be read, the
/// root inode is not the file system's root inode (2; 256 on btrfs, 128 on xfs).
fn is_chroot(g: &Gathered) -> Option<bool> {
    if !g.value("debian_chroot").is_empty() {
        return Some(true);
    }
    let root = g.value("root_stat");
    if root.is_empty() {
        return None;
    }
    let proc1 = g.value("proc1_root_stat");
    if !proc1.is_empty() {
        return Some(root != proc1);
    }
    let fs = g.value("root_fs");
    let root_ino = if fs.contains("btrfs") {
        "256"
    } else if fs.contains("xfs") {
        "128"
    } else {
        "2"
    };
    Some(root.split_whitespace().nth(1) != Some(root_ino))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use serde_json::json;

    fn run_setup(args: Value) -> Map {
        let mut host = LocalHost::new("localhost");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: false,
            diff: false,
            facts: &facts,
        };
        let map = match args {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Setup.run(&mut ctx, &map).expect("setup runs").to_result()
    }

    #[test]
    fn real_run_has_ansibles_shapes() {
        let r = run_setup(json!({}));
        assert_eq!(r["changed"], false);
        let f = r["ansible_facts"].as_object().expect("facts");
        if std::env::var("PLAY_DUMP_FACTS").is_ok() {
            println!("{}", serde_json::to_string_pretty(f).unwrap_or_default());
        }
        for key in [
            "memtotal_mb",
            "memfree_mb",
            "swaptotal_mb",
            "processor_vcpus",
            "processor_count",
            "processor_cores",
            "user_uid",
            "user_gid",
            "uptime_seconds",
        ] {
            assert!(f[key].is_i64(), "{key} is an int: {:?}", f[key]);
        }
        for key in [
            "distribution",
            "distribution_version",
            "distribution_major_version",
            "distribution_release",
            "os_family",
            "pkg_mgr",
            "service_mgr",
            "system",
            "kernel",
            "kernel_version",
            "architecture",
            "machine",
            "hostname",
            "fqdn",
            "nodename",
            "domain",
            "user_id",
            "user_dir",
            "user_shell",
        ] {
            assert!(f[key].is_string(), "{key} is a string: {:?}", f[key]);
        }
        assert_eq!(f["system"], "Linux");
        assert!(f["memtotal_mb"].as_i64().unwrap_or(0) > 0);
        assert!(f["processor_vcpus"].as_i64().unwrap_or(0) >= 1);
        assert!(f["interfaces"]
            .as_array()
            .is_some_and(|i| i.iter().any(|n| n == "lo")));
        assert_eq!(f["lo"]["ipv4"]["address"], "127.0.0.1");
        assert_eq!(f["lo"]["type"], "loopback");
        assert!(f["all_ipv4_addresses"].is_array());
        assert!(f["default_ipv4"].is_object());
        assert_eq!(
            f["env"]["HOME"].as_str(),
            std::env::var("HOME").ok().as_deref()
        );
        let dt = f["date_time"].as_object().expect("date_time");
        for key in [
            "date",
            "time",
            "year",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "epoch",
            "epoch_int",
            "iso8601",
            "iso8601_basic",
            "iso8601_basic_short",
            "iso8601_micro",
            "tz",
            "tz_dst",
            "tz_offset",
            "weekday",
            "weekday_number",
            "weeknumber",
        ] {
            assert!(dt[key].is_string(), "date_time.{key}: {:?}", dt.get(key));
        }
        assert_eq!(dt["iso8601_micro"].as_str().map(str::len), Some(27));
        assert_eq!(f["gather_subset"], json!(["all"]));
        assert_eq!(f["module_setup"], true);
        assert!(f.keys().all(|k| !k.starts_with("ansible_")));
    }

    #[test]
    fn min_subset_and_filter() {
        let r = run_setup(json!({"gather_subset": ["!all"]}));
        let f = r["ansible_facts"].as_object().expect("facts");
        assert!(f.contains_key("distribution") && f.contains_key("date_time"));
        assert!(!f.contains_key("memtotal_mb") && !f.contains_key("interfaces"));
        assert!(!f.contains_key("virtualization_type"));
        let r = run_setup(json!({"gather_subset": "!all,network"}));
        let f = r["ansible_facts"].as_object().expect("facts");
        assert!(f.contains_key("interfaces") && !f.contains_key("memtotal_mb"));

        let r = run_setup(
            json!({"filter": ["ansible_distribution*", "mem*"], "gather_subset": ["all"]}),
        );
        let f = r["ansible_facts"].as_object().expect("facts");
        let mut keys: Vec<&String> = f.keys().collect();
        keys.sort();
        assert!(
            keys.iter()
                .all(|k| k.starts_with("distribution") || k.starts_with("mem")),
            "{keys:?}"
        );
        assert!(f.contains_key("memtotal_mb") && f.contains_key("distribution"));
        let r = run_setup(json!({"filter": "gather_subset"}));
        assert_eq!(r["ansible_facts"], json!({"gather_subset": ["all"]}));
    }

    /// Script output as the target prints it: `name value` records, `file path content`
    /// records, then the environment.
    fn output(records: &[(&str, &str)], files: &[(&str, &str)], env: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in records {
            out.extend_from_slice(format!("{k}\0{v}\0").as_bytes());
        }
        for (path, content) in files {
            out.extend_from_slice(format!("file\0{path}\0{content}\0").as_bytes());
        }
        out.extend_from_slice(b"env\0");
        for e in env {
            out.extend_from_slice(format!("{e}\0").as_bytes());
        }
        out
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON in the test")
    }

    const ALL: Subsets = Subsets {
        hardware: true,
        network: true,
        virtual_: true,
    };

    const MEMINFO: &str = "MemTotal:        2041280 kB\nMemFree:          512000 kB\nMemAvailable:    1500000 kB\nBuffers:           10240 kB\nCached:           204800 kB\nSwapCached:            0 kB\nSwapTotal:       1048572 kB\nSwapFree:        1048572 kB\n";
    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\nphysical id\t: 0\nsiblings\t: 4\ncore id\t\t: 0\ncpu cores\t: 2\nflags\t\t: fpu vme sse2\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\nphysical id\t: 0\nsiblings\t: 4\ncore id\t\t: 0\ncpu cores\t: 2\nprocessor\t: 2\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\nphysical id\t: 0\nsiblings\t: 4\ncore id\t\t: 1\ncpu cores\t: 2\nprocessor\t: 3\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\nphysical id\t: 0\nsiblings\t: 4\ncore id\t\t: 1\ncpu cores\t: 2";
    const IP_ADDR: &str = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n1: lo    inet6 ::1/128 scope host noprefixroute \\       valid_lft forever preferred_lft forever\n2: enp1s0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic enp1s0\\       valid_lft 86000sec preferred_lft 86000sec\n2: enp1s0    inet 10.0.2.16/24 brd 10.0.2.255 scope global secondary enp1s0\\       valid_lft forever preferred_lft forever\n2: enp1s0    inet6 fe80::5054:ff:fe12:3456/64 scope link \\       valid_lft forever preferred_lft forever";

    fn arch_like() -> Vec<u8> {
        output(
            &[
                ("system", "Linux"),
                ("kernel", "6.8.1-arch1-1"),
                ("kernel_version", "#1 SMP PREEMPT_DYNAMIC Sat, 16 Mar 2024 17:15:35 +0000"),
                ("machine", "x86_64"),
                ("nodename", "archbox"),
                ("fqdn", "archbox.example.org"),
                ("userspace_bits", "64"),
                ("ids", "1000 1000 1000 1000"),
                ("user_name", "alice"),
                ("passwd", "alice:x:1000:1000:Alice A:/home/alice:/usr/bin/zsh"),
                ("date", "1710612000 123456789 +0100 CET 2024 03 16 19 00 00 Saturday 6 10"),
                ("tz_jan", "+0100 CET"),
                ("tz_jul", "+0200 CEST"),
                ("proc1", "systemd"),
                ("sbin_init", "../lib/systemd/systemd"),
                ("have", "systemctl"),
                ("exists", "/usr/bin/pacman"),
                ("exists", "/run/systemd/system/"),
                ("exists", "/etc/init.d/"),
                ("cpuinfo", CPUINFO),
                ("nproc", "4"),
                ("if", "enp1s0"),
                ("if.address", "52:54:00:12:34:56"),
                ("if.mtu", "1500"),
                ("if.operstate", "up"),
                ("if.type", "1"),
                ("if.flags", "0x1003"),
                ("if.pciid", "../../../0000:01:00.0"),
                ("if", "lo"),
                ("if.address", "00:00:00:00:00:00"),
                ("if.mtu", "65536"),
                ("if.operstate", "unknown"),
                ("if.type", "772"),
                ("if.flags", "0x9"),
                ("have", "ip"),
                ("ip_addr", IP_ADDR),
                ("route4", "default via 10.0.2.2 dev enp1s0 proto dhcp src 10.0.2.15 metric 100"),
                ("route6", ""),
                ("local4", "local 10.0.2.15 dev enp1s0 proto kernel scope host src 10.0.2.15\nlocal 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1"),
                ("local6", "local ::1 dev lo proto kernel metric 0 pref medium"),
                ("modules", "kvm_intel\nkvm\nvirtio"),
            ],
            &[
                ("/etc/os-release", "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\nANSI_COLOR=\"38;2;23;147;209\"\n"),
                ("/etc/arch-release", ""),
                ("/etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
                ("/proc/meminfo", MEMINFO),
                ("/proc/uptime", "12345.67 23456.78\n"),
                ("/proc/loadavg", "0.50 0.25 0.10 1/234 5678\n"),
                ("/proc/cmdline", "BOOT_IMAGE=/vmlinuz-linux root=UUID=abc rw quiet console=tty0 console=ttyS0\n"),
                ("/etc/resolv.conf", "# generated\nnameserver 10.0.2.3\nsearch example.org\noptions edns0 ndots:2\n"),
                ("/sys/devices/virtual/dmi/id/sys_vendor", "QEMU\n"),
                ("/sys/devices/virtual/dmi/id/chassis_type", "1\n"),
            ],
            &["HOME=/home/alice", "LANG=C.UTF-8", "MULTI=a\nb=c"],
        )
    }

    #[test]
    fn arch_like_fixture_gives_exact_facts() {
        let facts = build_facts(&Gathered::parse(&arch_like()), ALL);
        let expect = parse(
            r#"{
            "system": "Linux", "kernel": "6.8.1-arch1-1", "machine": "x86_64",
            "architecture": "x86_64", "userspace_architecture": "x86_64", "userspace_bits": "64",
            "nodename": "archbox", "hostname": "archbox", "fqdn": "archbox.example.org",
            "domain": "example.org", "machine_id": "0123456789abcdef0123456789abcdef",
            "user_id": "alice", "user_uid": 1000, "user_gid": 1000, "user_gecos": "Alice A",
            "user_dir": "/home/alice", "user_shell": "/usr/bin/zsh",
            "real_user_id": 1000, "effective_user_id": 1000,
            "distribution": "Archlinux", "distribution_version": "NA",
            "distribution_major_version": "NA", "distribution_release": "NA",
            "distribution_file_path": "/etc/arch-release", "distribution_file_variety": "Archlinux",
            "os_family": "Archlinux", "pkg_mgr": "pacman", "service_mgr": "systemd",
            "memtotal_mb": 1993, "memfree_mb": 500, "swaptotal_mb": 1023, "swapfree_mb": 1023,
            "memory_mb": {"real": {"total": 1993, "used": 1493, "free": 500},
                          "nocache": {"free": 710, "used": 1283},
                          "swap": {"total": 1023, "free": 1023, "used": 0, "cached": 0}},
            "processor": ["0", "GenuineIntel", "Intel(R) Xeon(R) CPU", "1", "GenuineIntel",
                          "Intel(R) Xeon(R) CPU", "2", "GenuineIntel", "Intel(R) Xeon(R) CPU",
                          "3", "GenuineIntel", "Intel(R) Xeon(R) CPU"],
            "processor_count": 1, "processor_cores": 2, "processor_threads_per_core": 2,
            "processor_vcpus": 4, "processor_nproc": 4, "flags": ["fpu", "vme", "sse2"]
        }"#,
        );
        let network = parse(
            r#"{
            "uptime_seconds": 12345, "loadavg": {"1m": 0.5, "5m": 0.25, "15m": 0.1},
            "system_vendor": "QEMU", "form_factor": "Other", "product_name": "NA",
            "virtualization_type": "kvm", "virtualization_role": "guest",
            "virtualization_tech_guest": ["kvm"], "virtualization_tech_host": ["kvm"],
            "interfaces": ["enp1s0", "lo"],
            "enp1s0": {"device": "enp1s0", "macaddress": "52:54:00:12:34:56", "mtu": 1500,
                       "active": true, "type": "ether", "pciid": "0000:01:00.0", "promisc": false,
                       "ipv4": {"address": "10.0.2.15", "broadcast": "10.0.2.255",
                                "netmask": "255.255.255.0", "network": "10.0.2.0", "prefix": "24"},
                       "ipv4_secondaries": [{"address": "10.0.2.16", "broadcast": "10.0.2.255",
                                "netmask": "255.255.255.0", "network": "10.0.2.0", "prefix": "24"}],
                       "ipv6": [{"address": "fe80::5054:ff:fe12:3456", "prefix": "64", "scope": "link"}]},
            "lo": {"device": "lo", "mtu": 65536, "active": true, "type": "loopback", "promisc": false,
                   "ipv4": {"address": "127.0.0.1", "broadcast": "", "netmask": "255.0.0.0",
                            "network": "127.0.0.0", "prefix": "8"},
                   "ipv6": [{"address": "::1", "prefix": "128", "scope": "host"}]},
            "default_ipv4": {"interface": "enp1s0", "gateway": "10.0.2.2", "address": "10.0.2.15",
                             "broadcast": "10.0.2.255", "netmask": "255.255.255.0",
                             "network": "10.0.2.0", "prefix": "24", "macaddress": "52:54:00:12:34:56",
                             "mtu": 1500, "type": "ether", "alias": "enp1s0"},
            "default_ipv6": {},
            "all_ipv4_addresses": ["10.0.2.15", "10.0.2.16"],
            "all_ipv6_addresses": ["fe80::5054:ff:fe12:3456"],
            "locally_reachable_ips": {"ipv4": ["10.0.2.15", "127.0.0.0/8"], "ipv6": ["::1"]}
        }"#,
        );
        let system = parse(
            r#"{
            "env": {"HOME": "/home/alice", "LANG": "C.UTF-8", "MULTI": "a\nb=c"},
            "cmdline": {"BOOT_IMAGE": "/vmlinuz-linux", "root": "UUID=abc", "rw": true,
                        "quiet": true, "console": "ttyS0"},
            "proc_cmdline": {"BOOT_IMAGE": "/vmlinuz-linux", "root": "UUID=abc", "rw": true,
                             "quiet": true, "console": ["tty0", "ttyS0"]},
            "dns": {"nameservers": ["10.0.2.3"], "search": ["example.org"],
                    "options": {"edns0": true, "ndots": "2"}},
            "fips": false, "apparmor": {"status": "disabled"}, "local": {},
            "date_time": {"year": "2024", "month": "03", "weekday": "Saturday",
                          "weekday_number": "6", "weeknumber": "10", "day": "16", "hour": "19",
                          "minute": "00", "second": "00", "epoch": "1710612000",
                          "epoch_int": "1710612000", "date": "2024-03-16", "time": "19:00:00",
                          "iso8601_micro": "2024-03-16T18:00:00.123456Z",
                          "iso8601": "2024-03-16T18:00:00Z",
                          "iso8601_basic": "20240316T190000123456",
                          "iso8601_basic_short": "20240316T190000", "tz": "CET",
                          "tz_dst": "CEST", "tz_offset": "+0100"}
        }"#,
        );
        for part in [expect, network, system] {
            for (key, want) in part.as_object().expect("object") {
                assert_eq!(facts.get(key), Some(want), "fact {key}");
            }
        }
    }

    #[test]
    fn debian_like_fixture_without_ip_or_hardware() {
        let out = output(
            &[
                ("system", "Linux"),
                ("machine", "aarch64"),
                ("nodename", "deb.lan"),
                ("fqdn", ""),
                ("proc1", "sh"),
                ("sbin_init", ""),
                ("exists", "/usr/bin/apt-get"),
                ("exists", "/usr/bin/zypper"),
                ("exists", "/etc/init.d/"),
                ("user_name", "root"),
                ("passwd", "root:x:0:0:root:/root:/bin/bash"),
                ("ids", "0 0 0 0"),
                ("if", "eth0"),
                ("if.mtu", "1500"),
                ("if.operstate", "down"),
                ("if.type", "1"),
            ],
            &[
                ("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"),
                ("/etc/debian_version", "12.5\n"),
                ("/proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
            ],
            &[],
        );
        let subsets = Subsets {
            hardware: false,
            network: true,
            virtual_: false,
        };
        let facts = build_facts(&Gathered::parse(&out), subsets);
        let expect = json!({
            "distribution": "Debian", "distribution_version": "12.5",
            "distribution_major_version": "12", "distribution_minor_version": "5",
            "distribution_release": "bookworm", "os_family": "Debian", "pkg_mgr": "apt",
            "service_mgr": "sysvinit", "hostname": "deb", "fqdn": "deb.lan", "domain": "lan",
            "architecture": "aarch64", "userspace_bits": "64", "user_uid": 0,
            "default_ipv4": {"interface": "eth0", "gateway": "192.168.0.1"},
            "eth0": {"device": "eth0", "mtu": 1500, "active": false, "type": "ether"},
            "env": {},
        });
        for (key, want) in expect.as_object().expect("object") {
            assert_eq!(facts.get(key), Some(want), "fact {key}");
        }
        assert!(!facts.contains_key("memtotal_mb"));
        assert!(!facts.contains_key("virtualization_type"));
        assert!(!facts.contains_key("userspace_architecture"));
    }

    #[test]
    fn subsets_follow_ansibles_rules() {
        let spec =
            |v: &[&str]| Subsets::from_spec(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            spec(&["all"]),
            Subsets {
                hardware: true,
                network: true,
                virtual_: true
            }
        );
        assert_eq!(
            spec(&["min"]),
            Subsets {
                hardware: false,
                network: false,
                virtual_: false
            }
        );
        assert_eq!(
            spec(&["all", "!hardware"]),
            Subsets {
                hardware: false,
                network: true,
                virtual_: true
            }
        );
        assert_eq!(
            spec(&["!all", "hardware"]),
            Subsets {
                hardware: true,
                network: false,
                virtual_: false
            }
        );
    }
}
