//! Hardware and virtualization facts of the `setup` module (`hardware` and `virtual`
//! subsets), computed from what `setup.sh` read on the target, as Ansible's Linux
//! collectors compute them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use super::setup::{s, Gathered};
use crate::{Map, Value};

/// Memory, CPU, uptime, load and DMI facts (the `hardware` subset).
pub(super) fn hardware_facts(g: &Gathered, facts: &mut Map) {
    // Memory, as Ansible reads /proc/meminfo (kB // 1024).
    let mut mem: BTreeMap<String, i64> = BTreeMap::new();
    for line in g
        .files
        .get("/proc/meminfo")
        .map_or("", String::as_str)
        .lines()
    {
        if let Some((key, rest)) = line.split_once(':') {
            if let Some(Ok(kb)) = rest.split_whitespace().next().map(str::parse::<i64>) {
                mem.insert(key.to_lowercase(), kb / 1024);
            }
        }
    }
    for key in ["memtotal", "memfree", "swaptotal", "swapfree"] {
        if let Some(v) = mem.get(key) {
            facts.insert(format!("{key}_mb"), Value::from(*v));
        }
    }
    let get = |k: &str| mem.get(k).copied();
    let sub = |a: Option<i64>, b: Option<i64>| Some(a? - b?);
    let nocache_free = (|| Some(get("cached")? + get("memfree")? + get("buffers")?))();
    let opt = |v: Option<i64>| v.map_or(Value::Null, Value::from);
    if !mem.is_empty() {
        facts.insert(
            "memory_mb".into(),
            serde_json::json!({
                "real": {"total": opt(get("memtotal")), "used": opt(sub(get("memtotal"), get("memfree"))), "free": opt(get("memfree"))},
                "nocache": {"free": opt(nocache_free), "used": opt(sub(get("memtotal"), nocache_free))},
                "swap": {"total": opt(get("swaptotal")), "free": opt(get("swapfree")), "used": opt(sub(get("swaptotal"), get("swapfree"))), "cached": opt(get("swapcached"))},
            }),
        );
    }
    let architecture = facts
        .get("architecture")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let xen = g.exists.contains("/proc/xen") || g.file("/sys/hypervisor/type") == Some("xen");
    facts.extend(cpu_facts(
        g.values.get("cpuinfo").map_or("", String::as_str),
        &architecture,
        xen,
    ));
    if let Ok(n) = g.value("nproc").parse::<i64>() {
        facts.insert("processor_nproc".into(), Value::from(n));
    }
    if let Some(up) = g.file("/proc/uptime") {
        if let Some(Ok(secs)) = up.split(' ').next().map(str::parse::<f64>) {
            facts.insert("uptime_seconds".into(), Value::from(secs as i64));
        }
    }
    dmi_facts(g, facts);
    if let Some(load) = g.file("/proc/loadavg") {
        let v: Vec<f64> = load
            .split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [one, five, fifteen] = v.as_slice() {
            facts.insert(
                "loadavg".into(),
                serde_json::json!({"1m": one, "5m": five, "15m": fifteen}),
            );
        }
    }
}

/// Ansible's DMI facts from sysfs: the strings, `NA` when a file is missing or unreadable.
fn dmi_facts(g: &Gathered, facts: &mut Map) {
    const FORM_FACTOR: &[&str] = &[
        "Unknown",
        "Other",
        "Unknown",
        "Desktop",
        "Low Profile Desktop",
        "Pizza Box",
        "Mini Tower",
        "Tower",
        "Portable",
        "Laptop",
        "Notebook",
        "Hand Held",
        "Docking Station",
        "All In One",
        "Sub Notebook",
        "Space-saving",
        "Lunch Box",
        "Main Server Chassis",
        "Expansion Chassis",
        "Sub Chassis",
        "Bus Expansion Chassis",
        "Peripheral Chassis",
        "RAID Chassis",
        "Rack Mount Chassis",
        "Sealed-case PC",
        "Multi-system",
        "CompactPCI",
        "AdvancedTCA",
        "Blade",
        "Blade Enclosure",
        "Tablet",
        "Convertible",
        "Detachable",
        "IoT Gateway",
        "Embedded PC",
        "Mini PC",
        "Stick PC",
    ];
    const FILES: &[(&str, &str)] = &[
        ("bios_date", "bios_date"),
        ("bios_vendor", "bios_vendor"),
        ("bios_version", "bios_version"),
        ("board_asset_tag", "board_asset_tag"),
        ("board_name", "board_name"),
        ("board_serial", "board_serial"),
        ("board_vendor", "board_vendor"),
        ("board_version", "board_version"),
        ("chassis_asset_tag", "chassis_asset_tag"),
        ("chassis_serial", "chassis_serial"),
        ("chassis_vendor", "chassis_vendor"),
        ("chassis_version", "chassis_version"),
        ("form_factor", "chassis_type"),
        ("product_name", "product_name"),
        ("product_serial", "product_serial"),
        ("product_uuid", "product_uuid"),
        ("product_version", "product_version"),
        ("system_vendor", "sys_vendor"),
    ];
    for (fact, file) in FILES {
        let value = match g.file(&format!("/sys/devices/virtual/dmi/id/{file}")) {
            None => "NA".to_string(),
            Some(v) if *fact == "form_factor" => match v.parse::<usize>() {
                Ok(n) => FORM_FACTOR
                    .get(n)
                    .map_or_else(|| format!("unknown ({v})"), |f| f.to_string()),
                Err(_) => format!("unknown ({v})"),
            },
            Some(v) => v.to_string(),
        };
        facts.insert(fact.to_string(), s(value));
    }
}

/// Ansible's Linux CPU facts from (the interesting lines of) /proc/cpuinfo.
pub(super) fn cpu_facts(cpuinfo: &str, architecture: &str, xen: bool) -> Map {
    let mut f = Map::new();
    let mut processor: Vec<Value> = Vec::new();
    let (mut i, mut vendor_n, mut model_n, mut proc_n) = (0i64, 0i64, 0i64, 0i64);
    let mut physid = String::from("0");
    let mut coreid = String::from("0");
    // Insertion-ordered like Python dicts: the first socket's core count is used.
    let mut sockets: Vec<(String, i64)> = Vec::new();
    let mut cores: Vec<(String, i64)> = Vec::new();
    let set = |list: &mut Vec<(String, i64)>, k: &str, v: i64| match list
        .iter_mut()
        .find(|(key, _)| key == k)
    {
        Some(entry) => entry.1 = v,
        None => list.push((k.to_string(), v)),
    };
    let (mut zp, mut zmt) = (0i64, 0i64);
    let mut xen_paravirt = false;
    for line in cpuinfo.lines() {
        let (key, val) = match line.split_once(':') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line.trim(), ""),
        };
        if xen && key == "flags" && !val.split_whitespace().any(|f| f == "vme") {
            xen_paravirt = true;
        }
        if key == "flags" {
            f.insert(
                "flags".into(),
                Value::from(
                    val.split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                ),
            );
        }
        match key {
            "model name" | "Processor" | "vendor_id" | "cpu" | "Vendor" | "processor" => {
                processor.push(s(val));
                match key {
                    "vendor_id" => vendor_n += 1,
                    "model name" => model_n += 1,
                    "processor" => proc_n += 1,
                    _ => {}
                }
                i += 1;
            }
            "physical id" => {
                physid = val.to_string();
                if !sockets.iter().any(|(k, _)| *k == physid) {
                    set(&mut sockets, &physid, 1);
                }
            }
            "core id" => {
                coreid = val.to_string();
                if !sockets.iter().any(|(k, _)| *k == coreid) {
                    set(&mut cores, &coreid, 1);
                }
            }
            "cpu cores" => set(&mut sockets, &physid, val.parse().unwrap_or(0)),
            "siblings" => set(&mut cores, &coreid, val.parse().unwrap_or(0)),
            "# processors" => zp = val.parse().unwrap_or(0),
            "max thread id" => zmt = val.parse::<i64>().unwrap_or(0) + 1,
            "ncpus active" => i = val.parse().unwrap_or(i),
            _ => {}
        }
    }
    f.insert("processor".into(), Value::Array(processor));
    if vendor_n > 0 && vendor_n == model_n {
        i = vendor_n;
    }
    if ["armv", "aarch", "ppc"]
        .iter()
        .any(|p| architecture.starts_with(p))
    {
        i = proc_n;
    }
    let put = |f: &mut Map, k: &str, v: i64| {
        f.insert(k.to_string(), Value::from(v));
    };
    if architecture == "s390x" {
        put(&mut f, "processor_count", 1);
        put(
            &mut f,
            "processor_cores",
            if zmt > 0 {
                (zp as f64 / zmt as f64).round() as i64
            } else {
                0
            },
        );
        put(&mut f, "processor_threads_per_core", zmt);
        put(&mut f, "processor_vcpus", zp);
        put(&mut f, "processor_nproc", zp);
    } else if xen_paravirt {
        for k in [
            "processor_count",
            "processor_cores",
            "processor_vcpus",
            "processor_nproc",
        ] {
            put(&mut f, k, i);
        }
        put(&mut f, "processor_threads_per_core", 1);
    } else {
        let count = if sockets.is_empty() {
            i
        } else {
            sockets.len() as i64
        };
        let per_socket = sockets.first().map_or(0, |(_, v)| *v);
        let cores_n = if per_socket > 0 { per_socket } else { 1 };
        let threads = match cores.first() {
            Some((_, siblings)) => (*siblings as f64 / cores_n as f64).round() as i64,
            None => (1.0 / cores_n as f64).round() as i64,
        };
        put(&mut f, "processor_count", count);
        put(&mut f, "processor_cores", cores_n);
        put(&mut f, "processor_threads_per_core", threads);
        put(&mut f, "processor_vcpus", threads * count * cores_n);
        put(&mut f, "processor_nproc", proc_n);
    }
    f
}

/// The state of Ansible's virtualization detection as it walks its checks in order:
/// the first technology found decides type and role; every one found is listed.
#[derive(Default)]
struct Virt {
    vtype: Option<String>,
    role: Option<String>,
    guest: BTreeSet<String>,
    host: BTreeSet<String>,
    found: bool,
}

impl Virt {
    /// A guest technology that also sets type and role "guest" when it is the first one.
    fn guest(&mut self, tech: &str) {
        self.guest.insert(tech.to_string());
        if !self.found {
            self.vtype = Some(tech.to_string());
            self.role = Some("guest".into());
            self.found = true;
        }
    }
    /// A guest technology seen in DMI data: sets only the type when it is the first one.
    fn dmi(&mut self, tech: &str) {
        self.guest.insert(tech.to_string());
        if !self.found {
            self.vtype = Some(tech.to_string());
            self.found = true;
        }
    }
    /// A technology this machine hosts.
    fn host(&mut self, tech: &str, role: &str) {
        self.host.insert(tech.to_string());
        if !self.found {
            self.vtype = Some(tech.to_string());
            self.role = Some(role.to_string());
            self.found = true;
        }
    }
}

/// Ansible's Linux virtualization facts (the checks that need no extra commands).
pub(super) fn virtual_facts(g: &Gathered) -> Map {
    let mut v = Virt::default();
    static DOCKER: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"/docker(/|-[0-9a-f]+\.scope)").ok());
    let docker_re = DOCKER.as_ref();
    for line in g
        .files
        .get("/proc/1/cgroup")
        .map_or("", String::as_str)
        .lines()
    {
        if docker_re.is_some_and(|r| r.is_match(line)) {
            v.guest("docker");
        }
        if line.contains("/lxc/") || line.contains("/machine.slice/machine-lxc") {
            v.guest("lxc");
        }
        if line.contains("/system.slice/containerd.service") {
            v.guest("containerd");
        }
    }
    for line in g.value("pid1_environ").lines() {
        if line.contains("container=lxc") {
            v.guest("lxc");
        }
        if line.contains("container=podman") {
            v.guest("podman");
        }
        if line.starts_with("container=") && line.len() > "container=".len() {
            v.guest("container");
        }
    }
    if g.exists.contains("/proc/vz") && !g.exists.contains("/proc/lve") {
        v.vtype = Some("openvz".into());
        let is_host = g.exists.contains("/proc/bc");
        if is_host {
            v.host.insert("openvz".into());
        } else {
            v.guest.insert("openvz".into());
        }
        if !v.found {
            v.role = Some(if is_host { "host" } else { "guest" }.into());
        }
        v.found = true;
    }
    let systemd_container = g.file("/run/systemd/container").filter(|c| !c.is_empty());
    if let Some(c) = systemd_container {
        v.guest(c);
    }
    if g.exists.contains("/.dockerenv") || g.exists.contains("/.dockerinit") {
        v.guest("docker");
    }
    if ["docker", "lxc", "podman", "openvz", "containerd"]
        .iter()
        .any(|t| v.guest.contains(*t))
        || systemd_container.is_some()
    {
        v.guest.insert("container".into());
    }
    if g.exists.contains("/proc/xen") {
        let is_host = g
            .file("/proc/xen/capabilities")
            .is_some_and(|c| c.contains("control_d"));
        if is_host {
            v.host.insert("xen".into());
        }
        if !v.found {
            v.vtype = Some("xen".into());
            v.role = Some(if is_host { "host" } else { "guest" }.into());
        }
        v.found = true;
    }
    let dmi = |name: &str| {
        g.file(&format!("/sys/devices/virtual/dmi/id/{name}"))
            .unwrap_or("")
            .to_string()
    };
    let (product, vendor, family, bios) = (
        dmi("product_name"),
        dmi("sys_vendor"),
        dmi("product_family"),
        dmi("bios_vendor"),
    );
    let found_before_dmi = v.found;
    if [
        "KVM",
        "KVM Server",
        "Bochs",
        "AHV",
        "CloudStack KVM Hypervisor",
    ]
    .contains(&product.as_str())
    {
        v.dmi("kvm");
    }
    if vendor == "oVirt" {
        v.dmi("oVirt");
    }
    if vendor == "Red Hat" {
        if family == "RHV" {
            v.dmi("RHV");
        } else if product == "RHEV Hypervisor" {
            v.dmi("RHEV");
        }
    }
    if product.starts_with("VMware") {
        v.dmi("VMware");
    }
    if product == "OpenStack Compute" || product == "OpenStack Nova" {
        v.dmi("openstack");
    }
    if bios == "Xen" {
        v.dmi("xen");
    }
    if bios == "innotek GmbH" {
        v.dmi("virtualbox");
    }
    if ["Amazon EC2", "DigitalOcean", "Hetzner", "Linode"].contains(&bios.as_str()) {
        v.dmi("kvm");
    }
    if [
        "QEMU",
        "Amazon EC2",
        "DigitalOcean",
        "Google",
        "Scaleway",
        "Nutanix",
    ]
    .contains(&vendor.as_str())
    {
        v.dmi("kvm");
    }
    if vendor == "KubeVirt" {
        v.dmi("KubeVirt");
    }
    if vendor == "Microsoft Corporation" {
        v.dmi("VirtualPC");
    }
    if vendor == "Parallels Software International Inc." {
        v.dmi("parallels");
    }
    if vendor == "OpenStack Foundation" {
        v.dmi("openstack");
    }
    // Ansible sets role "guest" before the DMI checks and drops it when none matched.
    if !found_before_dmi {
        v.role = if v.found { Some("guest".into()) } else { None };
    }
    if let Some(id) = g
        .value("vxid")
        .strip_prefix("VxID:")
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        if id == "0" {
            v.host("linux_vserver", "host");
        } else {
            v.guest("linux_vserver");
        }
    }
    for line in g.value("cpu_models").lines() {
        if line.starts_with("model name") && line.contains("QEMU Virtual CPU") {
            v.guest("kvm");
        } else if (line.starts_with("vendor_id") && line.contains("User Mode Linux"))
            || (line.starts_with("model name") && line.contains("UML"))
        {
            v.guest("uml");
        } else if line.starts_with("vendor_id") && line.contains("PowerVM Lx86") {
            v.guest("powervm_lx86");
        }
    }
    let modules: BTreeSet<&str> = g.value("modules").lines().collect();
    if modules.contains("kvm") {
        v.host("kvm", "host");
    }
    if modules.contains("vboxdrv") {
        v.host("virtualbox", "host");
    }
    if modules.contains("virtio") {
        v.host("kvm", "guest");
    }
    if g.exists.contains("/dev/kvm") {
        v.host("kvm", "host");
    }
    let mut f = Map::new();
    f.insert(
        "virtualization_type".into(),
        s(v.vtype.unwrap_or_else(|| "NA".into())),
    );
    f.insert(
        "virtualization_role".into(),
        s(v.role.unwrap_or_else(|| "NA".into())),
    );
    f.insert(
        "virtualization_tech_guest".into(),
        Value::from(v.guest.into_iter().collect::<Vec<_>>()),
    );
    f.insert(
        "virtualization_tech_host".into(),
        Value::from(v.host.into_iter().collect::<Vec<_>>()),
    );
    f
}
