//! Linux distribution facts (`distribution`, `distribution_version`, `os_family`, ...) from
//! the release files a target has, computed the way Ansible's `DistributionFiles` and its
//! bundled `distro` library do, without running anything on the target.
//!
//! Deviations: the LSB data comes from `/etc/lsb-release` instead of running
//! `lsb_release -a`; Debian's last-resort codename from `dpkg --status tzdata` and SUSE's
//! `/etc/products.d/baseproduct` symlink are not consulted; only Linux is handled.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex, PoisonError};

use regex::Regex;

use crate::commands::support::python_shlex;
use crate::{Map, Value};

/// Release files by path, as read from the target (already whitespace-stripped or not:
/// each consumer strips as Python does).
pub type Files = BTreeMap<String, String>;

/// Ansible's `OSDIST_LIST`: (path, name, allow_empty), searched in order.
const OSDIST_LIST: &[(&str, &str, bool)] = &[
    ("/etc/altlinux-release", "Altlinux", false),
    ("/etc/oracle-release", "OracleLinux", false),
    ("/etc/slackware-version", "Slackware", false),
    ("/etc/centos-release", "CentOS", false),
    ("/etc/redhat-release", "RedHat", false),
    ("/etc/vmware-release", "VMwareESX", true),
    ("/etc/openwrt_release", "OpenWrt", false),
    ("/etc/os-release", "Amazon", false),
    ("/etc/system-release", "Amazon", false),
    ("/etc/alpine-release", "Alpine", false),
    ("/etc/arch-release", "Archlinux", true),
    ("/etc/os-release", "Archlinux", false),
    ("/etc/os-release", "SUSE", false),
    ("/etc/SuSE-release", "SUSE", false),
    ("/etc/gentoo-release", "Gentoo", false),
    ("/etc/os-release", "Debian", false),
    ("/etc/lsb-release", "Debian", false),
    ("/etc/lsb-release", "Mandriva", false),
    ("/etc/sourcemage-release", "SMGL", false),
    ("/usr/lib/os-release", "ClearLinux", false),
    ("/etc/coreos/update.conf", "Coreos", false),
    ("/etc/os-release", "Flatcar", false),
    ("/etc/os-release", "NA", false),
];

const OS_FAMILY_MAP: &[(&str, &[&str])] = &[
    (
        "RedHat",
        &[
            "RedHat",
            "RHEL",
            "Fedora",
            "CentOS",
            "Scientific",
            "SLC",
            "Ascendos",
            "CloudLinux",
            "PSBM",
            "OracleLinux",
            "OVS",
            "OEL",
            "Amazon",
            "Amzn",
            "Virtuozzo",
            "XenServer",
            "Alibaba",
            "EulerOS",
            "openEuler",
            "AlmaLinux",
            "Rocky",
            "TencentOS",
            "EuroLinux",
            "Kylin Linux Advanced Server",
            "MIRACLE",
        ],
    ),
    (
        "Debian",
        &[
            "Debian",
            "Ubuntu",
            "Raspbian",
            "Neon",
            "KDE neon",
            "Linux Mint",
            "SteamOS",
            "Devuan",
            "Kali",
            "Cumulus Linux",
            "Pop!_OS",
            "Parrot",
            "Pardus GNU/Linux",
            "Uos",
            "Deepin",
            "OSMC",
            "Linux Mint Debian Edition",
        ],
    ),
    (
        "Suse",
        &[
            "SuSE",
            "SLES",
            "SLED",
            "openSUSE",
            "openSUSE Tumbleweed",
            "SLES_SAP",
            "SUSE_LINUX",
            "openSUSE Leap",
            "ALP-Dolomite",
            "SL-Micro",
            "openSUSE MicroOS",
        ],
    ),
    ("Archlinux", &["Archlinux", "Antergos", "Manjaro"]),
    ("Mandrake", &["Mandrake", "Mandriva"]),
    (
        "Solaris",
        &["Solaris", "Nexenta", "OmniOS", "OpenIndiana", "SmartOS"],
    ),
    ("Slackware", &["Slackware"]),
    ("Altlinux", &["Altlinux"]),
    ("SMGL", &["SMGL"]),
    ("Gentoo", &["Gentoo", "Funtoo"]),
    ("Alpine", &["Alpine"]),
    ("AIX", &["AIX"]),
    ("HP-UX", &["HPUX"]),
    ("Darwin", &["MacOSX"]),
    ("FreeBSD", &["FreeBSD", "TrueOS"]),
    ("ClearLinux", &["Clear Linux OS", "Clear Linux Mix"]),
    (
        "DragonFly",
        &[
            "DragonflyBSD",
            "DragonFlyBSD",
            "Gentoo/DragonflyBSD",
            "Gentoo/DragonFlyBSD",
        ],
    ),
    ("NetBSD", &["NetBSD"]),
];

const DISTRO_RELEASE_IGNORE: &[&str] = &[
    "debian_version",
    "lsb-release",
    "oem-release",
    "os-release",
    "system-release",
    "plesk-release",
    "iredmail-release",
    "board-release",
    "ec2_version",
];

/// Ansible's `os_family` for a distribution name.
pub fn os_family(distribution: &str) -> String {
    OS_FAMILY_MAP
        .iter()
        .find(|(_, names)| names.contains(&distribution))
        .map_or(distribution, |(family, _)| family)
        .to_string()
}

/// The compiled form of one of this file's patterns. Compiled once per run, not per host:
/// fact gathering on many hosts at once would otherwise build the same automata over and
/// over on every worker thread, a few hundred KiB each.
fn re(pattern: &'static str) -> Option<Regex> {
    static COMPILED: LazyLock<Mutex<HashMap<&'static str, Option<Regex>>>> =
        LazyLock::new(Mutex::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    compiled
        .entry(pattern)
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

/// First capture group of `pattern` in `text`.
fn capture(pattern: &'static str, text: &str) -> Option<String> {
    re(pattern)?
        .captures(text)?
        .get(1)
        .map(|m| m.as_str().to_string())
}

/// What the `distro` library reads: os-release, LSB and distro-release data.
struct Distro {
    os_release: BTreeMap<String, String>,
    lsb: BTreeMap<String, String>,
    distro_release: BTreeMap<String, String>,
    debian_version: String,
}

impl Distro {
    fn new(files: &Files) -> Self {
        let os_text = files
            .get("/etc/os-release")
            .or_else(|| files.get("/usr/lib/os-release"));
        let os_release = os_text.map(|t| parse_os_release(t)).unwrap_or_default();
        let mut lsb = BTreeMap::new();
        if let Some(text) = files.get("/etc/lsb-release") {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    let key = match k.trim() {
                        "DISTRIB_ID" => "distributor_id",
                        "DISTRIB_RELEASE" => "release",
                        "DISTRIB_CODENAME" => "codename",
                        "DISTRIB_DESCRIPTION" => "description",
                        _ => continue,
                    };
                    lsb.insert(key.to_string(), v.trim().trim_matches('"').to_string());
                }
            }
        }
        Self {
            os_release,
            lsb,
            distro_release: distro_release_info(files),
            debian_version: files
                .get("/etc/debian_version")
                .and_then(|t| t.lines().next())
                .unwrap_or("")
                .trim_end()
                .to_string(),
        }
    }

    fn os(&self, key: &str) -> &str {
        self.os_release.get(key).map_or("", String::as_str)
    }
    fn lsb(&self, key: &str) -> &str {
        self.lsb.get(key).map_or("", String::as_str)
    }
    fn release_file(&self, key: &str) -> &str {
        self.distro_release.get(key).map_or("", String::as_str)
    }

    /// `distro.id()`.
    fn id(&self) -> String {
        let normalize = |id: &str, table: &[(&str, &str)]| {
            let id = id.to_lowercase().replace(' ', "_");
            table
                .iter()
                .find(|(k, _)| *k == id)
                .map_or(id.clone(), |(_, v)| v.to_string())
        };
        if !self.os("id").is_empty() {
            return normalize(
                self.os("id"),
                &[("ol", "oracle"), ("opensuse-leap", "opensuse")],
            );
        }
        if !self.lsb("distributor_id").is_empty() {
            return normalize(
                self.lsb("distributor_id"),
                &[
                    ("enterpriseenterpriseas", "oracle"),
                    ("enterpriseenterpriseserver", "oracle"),
                    ("redhatenterpriseworkstation", "rhel"),
                    ("redhatenterpriseserver", "rhel"),
                    ("redhatenterprisecomputenode", "rhel"),
                ],
            );
        }
        if !self.release_file("id").is_empty() {
            return normalize(self.release_file("id"), &[("redhat", "rhel")]);
        }
        String::new()
    }

    /// `distro.version(best=...)`.
    fn version(&self, best: bool) -> String {
        let mut versions = vec![
            self.os("version_id").to_string(),
            self.lsb("release").to_string(),
            self.release_file("version_id").to_string(),
            parse_distro_release_line(self.os("pretty_name"))
                .remove("version_id")
                .unwrap_or_default(),
            parse_distro_release_line(self.lsb("description"))
                .remove("version_id")
                .unwrap_or_default(),
        ];
        let id = self.id();
        if id == "debian" || self.os("id_like").split_whitespace().any(|l| l == "debian") {
            versions.push(self.debian_version.clone());
        }
        let mut version = String::new();
        for v in versions {
            if best {
                if v.matches('.').count() > version.matches('.').count() || version.is_empty() {
                    version = v;
                }
            } else if !v.is_empty() {
                return v;
            }
        }
        version
    }

    /// `distro.codename()`.
    fn codename(&self) -> String {
        if let Some(c) = self.os_release.get("codename") {
            return c.clone();
        }
        [self.lsb("codename"), self.release_file("codename")]
            .into_iter()
            .find(|c| !c.is_empty())
            .unwrap_or("")
            .to_string()
    }
}

/// distro's `_parse_os_release_content`: shell-like `KEY=value` tokens, keys lowercased,
/// plus the codename taken from `VERSION` or `VERSION_CODENAME`/`UBUNTU_CODENAME`.
fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    for token in python_shlex(text, true).unwrap_or_default() {
        if let Some((k, v)) = token.split_once('=') {
            props.insert(k.to_lowercase(), v.to_string());
        }
    }
    if let Some(version) = props.get("version").cloned() {
        if let Some(caps) = re(r"\((\D+)\)|,\s*(\D+)").and_then(|r| r.captures(&version)) {
            if let Some(m) = caps.get(1).or_else(|| caps.get(2)) {
                props.insert("codename".into(), m.as_str().to_string());
                props.insert("release_codename".into(), m.as_str().to_string());
            }
        }
    }
    if let Some(c) = props.get("version_codename").cloned() {
        props.insert("codename".into(), c);
    } else if let Some(c) = props.get("ubuntu_codename").cloned() {
        props.insert("codename".into(), c);
    }
    props
}

/// distro's `_parse_distro_release_content`: name, version and codename of a release line
/// (matched reversed, as distro does).
fn parse_distro_release_line(line: &str) -> BTreeMap<String, String> {
    let mut info = BTreeMap::new();
    let reversed: String = line.trim().chars().rev().collect();
    let pattern = r"^(?:[^)]*\)(.*)\()? *(?:STL )?([\d.+\-a-z]*\d) *(?:esaeler *)?(.+)";
    let rev = |s: &str| s.chars().rev().collect::<String>();
    match re(pattern).and_then(|r| r.captures(&reversed)) {
        Some(caps) => {
            if let Some(name) = caps.get(3) {
                info.insert("name".into(), rev(name.as_str()));
            }
            if let Some(v) = caps.get(2).filter(|m| !m.as_str().is_empty()) {
                info.insert("version_id".into(), rev(v.as_str()));
            }
            if let Some(c) = caps.get(1).filter(|m| !m.as_str().is_empty()) {
                info.insert("codename".into(), rev(c.as_str()));
            }
        }
        None if !line.is_empty() => {
            info.insert("name".into(), line.trim().to_string());
        }
        None => {}
    }
    info
}

/// distro's `_distro_release_info`: the first `/etc/*-release`-like file (sorted) whose
/// first line names a distribution.
fn distro_release_info(files: &Files) -> BTreeMap<String, String> {
    let Some(basename_re) = re(r"^(\w+)[-_](release|version)$") else {
        return BTreeMap::new();
    };
    for (path, content) in files {
        let Some(base) = path.strip_prefix("/etc/") else {
            continue;
        };
        if base.contains('/') || DISTRO_RELEASE_IGNORE.contains(&base) {
            continue;
        }
        let Some(caps) = basename_re.captures(base) else {
            continue;
        };
        let first = content.split('\n').next().unwrap_or("");
        let mut info = parse_distro_release_line(first);
        if !info.contains_key("name") {
            continue;
        }
        if let Some(id) = caps.get(1) {
            info.insert("id".into(), id.as_str().to_string());
        }
        if info
            .get("name")
            .is_some_and(|n| n.to_lowercase().contains("cloudlinux"))
        {
            info.insert("id".into(), "cloudlinux".into());
        }
        return info;
    }
    BTreeMap::new()
}

/// Python's `str.capitalize()`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The distribution facts of a Linux target.
pub fn distribution_facts(files: &Files) -> Map {
    let distro = Distro::new(files);
    let id = distro.id();

    // The baseline guess (Ansible's sys_info helpers over distro).
    let mut name = capitalize(&id);
    name = match name.as_str() {
        "Amzn" => "Amazon".into(),
        "Rhel" => "Redhat".into(),
        "" => "OtherLinux".into(),
        _ => name,
    };
    let mut version = distro.version(false);
    if id == "centos" {
        version = distro
            .version(true)
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
    } else if id == "debian" {
        version = distro.version(true);
    }
    let os = &distro.os_release;
    let codename = match os
        .get("version_codename")
        .or_else(|| os.get("ubuntu_codename"))
    {
        Some(c) => Some(c.clone()),
        None if id == "ubuntu" && !distro.lsb("codename").is_empty() => {
            Some(distro.lsb("codename").to_string())
        }
        None => Some(distro.codename()).filter(|c| !c.is_empty()),
    };

    let mut facts = Map::new();
    let set = |facts: &mut Map, k: &str, v: &str| {
        facts.insert(k.to_string(), Value::String(v.to_string()));
    };
    set(
        &mut facts,
        "distribution",
        if name.is_empty() { "NA" } else { &name },
    );
    let version = if version.is_empty() {
        "NA".to_string()
    } else {
        version
    };
    set(&mut facts, "distribution_version", &version);
    set(
        &mut facts,
        "distribution_release",
        codename.as_deref().unwrap_or("NA"),
    );
    let major = version
        .split('.')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or("NA");
    set(&mut facts, "distribution_major_version", major);

    for (path, dist_name, allow_empty) in OSDIST_LIST {
        let Some(raw) = files.get(*path) else {
            continue;
        };
        if raw.is_empty() && !allow_empty {
            continue;
        }
        if *allow_empty {
            set(&mut facts, "distribution", dist_name);
            set(&mut facts, "distribution_file_path", path);
            set(&mut facts, "distribution_file_variety", dist_name);
            break;
        }
        // get_file_content strips whitespace; _parse_dist_file strips quotes and backslashes.
        let content = raw.trim().trim_matches(['\'', '"', '\\']);
        if let Some(parsed) = parse_dist_file(dist_name, content, path, &facts, &distro, &id) {
            set(&mut facts, "distribution", dist_name);
            set(&mut facts, "distribution_file_path", path);
            set(&mut facts, "distribution_file_variety", dist_name);
            facts.insert("distribution_file_parsed".into(), Value::Bool(true));
            facts.extend(parsed);
            break;
        }
    }

    let dist = facts
        .get("distribution")
        .and_then(Value::as_str)
        .unwrap_or("NA")
        .to_string();
    set(&mut facts, "os_family", &os_family(&dist));
    facts
}

/// One of Ansible's `parse_distribution_file_*` functions; `None` when the file does not
/// belong to that distribution.
fn parse_dist_file(
    name: &str,
    data: &str,
    path: &str,
    collected: &Map,
    distro: &Distro,
    id: &str,
) -> Option<Map> {
    let mut f = Map::new();
    let put = |f: &mut Map, k: &str, v: String| {
        f.insert(k.to_string(), Value::String(v));
    };
    let collected_str = |k: &str| collected.get(k).and_then(Value::as_str).unwrap_or("");
    let search_string = match name {
        "OracleLinux" => Some("Oracle Linux"),
        "RedHat" => Some("Red Hat"),
        "Altlinux" => Some("ALT"),
        "SMGL" => Some("Source Mage GNU/Linux"),
        _ => None,
    };
    if let Some(needle) = search_string {
        if data.contains(needle) {
            put(&mut f, "distribution", name.to_string());
            put(
                &mut f,
                "distribution_file_search_string",
                needle.to_string(),
            );
        } else {
            put(
                &mut f,
                "distribution",
                data.split_whitespace().next().unwrap_or("").to_string(),
            );
        }
        return Some(f);
    }
    match name {
        "Archlinux" => data.contains("Arch Linux").then(|| {
            put(&mut f, "distribution", name.to_string());
            f
        }),
        "Slackware" => {
            if !data.contains("Slackware") {
                return None;
            }
            put(&mut f, "distribution", name.into());
            if let Some(v) = re(r"\w+[.]\w+\+?").and_then(|r| r.find(data)) {
                put(&mut f, "distribution_version", v.as_str().into());
            }
            Some(f)
        }
        "Amazon" => {
            if !data.contains("Amazon") {
                return None;
            }
            put(&mut f, "distribution", "Amazon".into());
            if path == "/etc/os-release" {
                if let Some(v) = capture(r#"VERSION_ID="(.*)""#, data) {
                    let parts: Vec<&str> = v.split('.').collect();
                    let (major, minor) = match parts.as_slice() {
                        [major, minor] => (major.to_string(), minor.to_string()),
                        _ => (parts.first().unwrap_or(&"").to_string(), "NA".to_string()),
                    };
                    put(&mut f, "distribution_version", v.clone());
                    put(&mut f, "distribution_major_version", major);
                    put(&mut f, "distribution_minor_version", minor);
                }
            } else {
                let v = data
                    .split_whitespace()
                    .find(|w| w.chars().all(|c| c.is_ascii_digit()))
                    .unwrap_or("NA");
                put(&mut f, "distribution_version", v.into());
            }
            Some(f)
        }
        "OpenWrt" => {
            if !data.contains("OpenWrt") {
                return None;
            }
            put(&mut f, "distribution", name.into());
            if let Some(v) = capture(r#"DISTRIB_RELEASE="(.*)""#, data) {
                put(&mut f, "distribution_version", v);
            }
            if let Some(v) = capture(r#"DISTRIB_CODENAME="(.*)""#, data) {
                put(&mut f, "distribution_release", v);
            }
            Some(f)
        }
        "Alpine" => {
            put(&mut f, "distribution", "Alpine".into());
            put(&mut f, "distribution_version", data.to_string());
            Some(f)
        }
        "SUSE" => parse_suse(data, path),
        "Debian" => parse_debian(data, path, collected_str("distribution_release"), distro),
        "Mandriva" => {
            if !data.contains("Mandriva") {
                return None;
            }
            if let Some(v) = capture(r#"DISTRIB_RELEASE="(.*)""#, data) {
                put(&mut f, "distribution_version", v);
            }
            if let Some(v) = capture(r#"DISTRIB_CODENAME="(.*)""#, data) {
                put(&mut f, "distribution_release", v);
            }
            put(&mut f, "distribution", name.into());
            Some(f)
        }
        "NA" => {
            for line in data.lines() {
                if let Some(d) = capture(r"^NAME=(.*)", line) {
                    put(&mut f, "distribution", d.trim_matches('"').to_string());
                }
                if let Some(v) = capture(r"^VERSION=(.*)", line) {
                    if collected_str("distribution_version") == "NA" {
                        put(
                            &mut f,
                            "distribution_version",
                            v.trim_matches('"').to_string(),
                        );
                    }
                }
            }
            Some(f)
        }
        "Coreos" => {
            if capitalize(id).to_lowercase() != "coreos" || data.is_empty() {
                return None;
            }
            if let Some(g) = capture(r"^GROUP=(.*)", data) {
                put(
                    &mut f,
                    "distribution_release",
                    g.trim_matches('"').to_string(),
                );
            }
            Some(f)
        }
        "Flatcar" => {
            if id != "flatcar" || data.is_empty() {
                return None;
            }
            if let Some(v) = capture(r"VERSION=(.*)", data) {
                let v = v.trim_matches('"').to_string();
                put(
                    &mut f,
                    "distribution_major_version",
                    v.split('.').next().unwrap_or("").to_string(),
                );
                put(&mut f, "distribution_version", v);
            }
            Some(f)
        }
        "ClearLinux" => {
            if let Some(pname) = capture(r#"NAME="(.*)""#, data) {
                if !pname.contains("Clear Linux") {
                    return None;
                }
                put(&mut f, "distribution", pname);
            }
            if let Some(v) = capture(r"VERSION_ID=(.*)", data) {
                put(&mut f, "distribution_major_version", v.clone());
                put(&mut f, "distribution_version", v);
            }
            if let Some(r) = capture(r"ID=(.*)", data) {
                put(&mut f, "distribution_release", r);
            }
            Some(f)
        }
        "CentOS" => {
            if data.contains("CentOS Stream") {
                put(&mut f, "distribution_release", "Stream".into());
                Some(f)
            } else if data.contains("TencentOS Server") {
                put(&mut f, "distribution", "TencentOS".into());
                Some(f)
            } else {
                None
            }
        }
        // Gentoo and others without a parser: Ansible's lookup fails and it moves on.
        _ => None,
    }
}

fn parse_suse(data: &str, path: &str) -> Option<Map> {
    let mut f = Map::new();
    let put = |f: &mut Map, k: &str, v: String| {
        f.insert(k.to_string(), Value::String(v));
    };
    let lower = data.to_lowercase();
    if !lower.contains("suse") {
        return None;
    }
    if path == "/etc/os-release" {
        for line in data.lines() {
            if let Some(d) = capture(r"^NAME=(.*)", line) {
                put(&mut f, "distribution", d.trim_matches('"').to_string());
            }
            if let Some(v) = capture(r#"^VERSION_ID="?([0-9]+\.?[0-9]*)"?"#, line) {
                put(
                    &mut f,
                    "distribution_major_version",
                    v.split('.').next().unwrap_or("").to_string(),
                );
                put(&mut f, "distribution_version", v);
            }
            if lower.contains("open") {
                if let Some(r) = capture(r#"^VERSION_ID="?[0-9]+\.?([0-9]*)"?"#, line) {
                    put(&mut f, "distribution_release", r);
                }
            } else if lower.contains("enterprise") && line.contains("VERSION_ID") {
                let r = capture(r#"^VERSION_ID="?[0-9]+\.?([0-9]*)"?"#, line).unwrap_or_default();
                put(
                    &mut f,
                    "distribution_release",
                    if r.is_empty() { "0".into() } else { r },
                );
            }
        }
    } else if path == "/etc/SuSE-release" && lower.contains("open") {
        if let Some(first) = data
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().next())
        {
            put(&mut f, "distribution", first.to_string());
        }
        for line in data.lines() {
            if let Some(r) = capture(r"CODENAME *= *([^\n]+)", line) {
                put(&mut f, "distribution_release", r.trim().to_string());
            }
        }
    }
    if let Some(variant) = capture(r#"(?m)^VARIANT_ID="?([^"\n]*)"?"#, data) {
        match variant.as_str() {
            "server-sap" | "sles-sap" => put(&mut f, "distribution", "SLES_SAP".into()),
            "transactional" => put(&mut f, "distribution", "SL-Micro".into()),
            _ => {}
        }
    }
    Some(f)
}

fn parse_debian(data: &str, path: &str, release_so_far: &str, distro: &Distro) -> Option<Map> {
    let _ = release_so_far; // Ansible's dpkg/tzdata fallback for an unknown release is not run.
    let mut f = Map::new();
    let put = |f: &mut Map, k: &str, v: String| {
        f.insert(k.to_string(), Value::String(v));
    };
    let version_id_quoted = |f: &mut Map, split_major: bool| {
        if let Some(v) = capture(r#"VERSION_ID="(.*)""#, data) {
            let major = if split_major {
                v.split('.').next().unwrap_or("").to_string()
            } else {
                v.clone()
            };
            f.insert("distribution_version".into(), Value::String(v));
            f.insert("distribution_major_version".into(), Value::String(major));
        }
    };
    if data.contains("Debian") || data.contains("Raspbian") {
        put(&mut f, "distribution", "Debian".into());
        if let Some(r) = capture(r"PRETTY_NAME=[^(]+ \(?([^)]+?)\)", data) {
            put(&mut f, "distribution_release", r);
        }
        for line in distro.debian_version.lines() {
            if let Some(caps) = re(r"(\d+)\.(\d+)").and_then(|r| r.captures(line.trim())) {
                if let Some(minor) = caps.get(2) {
                    put(&mut f, "distribution_minor_version", minor.as_str().into());
                }
            }
        }
    } else if data.contains("Ubuntu") {
        put(&mut f, "distribution", "Ubuntu".into());
    } else if data.contains("SteamOS") {
        put(&mut f, "distribution", "SteamOS".into());
    } else if (path == "/etc/lsb-release" || path == "/etc/os-release")
        && (data.contains("Kali") || data.contains("Parrot"))
    {
        let d = if data.contains("Kali") {
            "Kali"
        } else {
            "Parrot"
        };
        put(&mut f, "distribution", d.into());
        if let Some(r) = capture(r"DISTRIB_RELEASE=(.*)", data) {
            put(&mut f, "distribution_release", r);
        }
    } else if data.contains("Devuan") {
        put(&mut f, "distribution", "Devuan".into());
        if let Some(r) = capture(r#"PRETTY_NAME="?[^("]+ \(?([^) "]+)\)?"#, data) {
            put(&mut f, "distribution_release", r);
        }
        version_id_quoted(&mut f, false);
    } else if data.contains("Cumulus") {
        put(&mut f, "distribution", "Cumulus Linux".into());
        if let Some(v) = capture(r"VERSION_ID=(.*)", data) {
            let parts: Vec<&str> = v.split('.').collect();
            if parts.len() == 3 {
                put(&mut f, "distribution_major_version", parts[0].to_string());
                put(&mut f, "distribution_version", v.clone());
            }
        }
        if let Some(r) = capture(r#"VERSION="(.*)""#, data) {
            put(&mut f, "distribution_release", r);
        }
    } else if data.contains("Mint") {
        put(&mut f, "distribution", "Linux Mint".into());
        version_id_quoted(&mut f, true);
    } else if data.contains("UOS") || data.contains("Uos") || data.contains("uos") {
        put(&mut f, "distribution", "Uos".into());
        if let Some(r) = capture(r#"VERSION_CODENAME="?([^"]+)"?"#, data) {
            put(&mut f, "distribution_release", r);
        }
        version_id_quoted(&mut f, true);
    } else if data.contains("Deepin") || data.contains("deepin") {
        put(&mut f, "distribution", "Deepin".into());
        if let Some(r) = capture(r#"VERSION_CODENAME="?([^"]+)"?"#, data) {
            put(&mut f, "distribution_release", r);
        }
        version_id_quoted(&mut f, true);
    } else if data.contains("LMDE") {
        put(&mut f, "distribution", "Linux Mint Debian Edition".into());
    } else {
        return None;
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    }

    fn pick(facts: &Map) -> Value {
        let keys = [
            "distribution",
            "distribution_version",
            "distribution_release",
            "distribution_major_version",
            "os_family",
        ];
        Value::Object(
            keys.iter()
                .filter_map(|k| facts.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect(),
        )
    }

    const DEBIAN_10: &str = "PRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"10\"\nVERSION=\"10 (buster)\"\nVERSION_CODENAME=buster\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n";

    // Inputs and expected results are Ansible's own fixtures (test/units/.../distribution/fixtures).
    #[test]
    fn debian_10() {
        let f = distribution_facts(&files(&[("/etc/os-release", DEBIAN_10)]));
        assert_eq!(
            pick(&f),
            json!({"distribution": "Debian", "distribution_version": "10",
                   "distribution_release": "buster", "distribution_major_version": "10",
                   "os_family": "Debian"})
        );
    }

    #[test]
    fn debian_12_with_point_release() {
        let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        let f = distribution_facts(&files(&[
            ("/etc/os-release", os),
            ("/etc/debian_version", "12.11\n"),
        ]));
        assert_eq!(f["distribution_version"], "12.11");
        assert_eq!(f["distribution_major_version"], "12");
        assert_eq!(f["distribution_minor_version"], "11");
        assert_eq!(f["distribution_release"], "bookworm");
        assert_eq!(f["distribution_file_path"], "/etc/os-release");
        assert_eq!(f["distribution_file_variety"], "Debian");
        assert_eq!(f["distribution_file_parsed"], true);
    }

    #[test]
    fn arch_without_lsb_is_na() {
        let os = "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nID_LIKE=archlinux\nANSI_COLOR=\"0;36\"\n\n";
        let f = distribution_facts(&files(&[
            ("/etc/os-release", os),
            ("/etc/arch-release", ""),
        ]));
        assert_eq!(
            pick(&f),
            json!({"distribution": "Archlinux", "distribution_version": "NA",
                   "distribution_release": "NA", "distribution_major_version": "NA",
                   "os_family": "Archlinux"})
        );
        assert_eq!(f["distribution_file_path"], "/etc/arch-release");
        // No /etc/arch-release: the os-release alias still says Archlinux.
        let f = distribution_facts(&files(&[("/etc/os-release", os)]));
        assert_eq!(f["distribution"], "Archlinux");
    }

    #[test]
    fn arch_with_lsb_release_is_rolling() {
        let f = distribution_facts(&files(&[
            ("/etc/arch-release", "Arch Linux release\n"),
            ("/etc/lsb-release", "LSB_VERSION=1.4\nDISTRIB_ID=Arch\nDISTRIB_RELEASE=rolling\nDISTRIB_DESCRIPTION=\"Arch Linux\"\n"),
            ("/usr/lib/os-release", "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n"),
        ]));
        assert_eq!(f["distribution"], "Archlinux");
        assert_eq!(f["distribution_version"], "rolling");
        assert_eq!(f["distribution_major_version"], "rolling");
        assert_eq!(f["os_family"], "Archlinux");
    }

    #[test]
    fn ubuntu_fedora_rocky_centos_alpine() {
        let ubuntu = "NAME=\"Ubuntu\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\nUBUNTU_CODENAME=jammy\n";
        let f = distribution_facts(&files(&[
            ("/etc/os-release", ubuntu),
            ("/etc/debian_version", "bookworm/sid\n"),
        ]));
        assert_eq!(
            pick(&f),
            json!({"distribution": "Ubuntu", "distribution_version": "22.04",
                   "distribution_release": "jammy", "distribution_major_version": "22",
                   "os_family": "Debian"})
        );

        let fedora = "NAME=\"Fedora Linux\"\nVERSION=\"39 (Container Image)\"\nID=fedora\nVERSION_ID=39\nVERSION_CODENAME=\"\"\nPRETTY_NAME=\"Fedora Linux 39 (Container Image)\"\n";
        let f = distribution_facts(&files(&[
            ("/etc/os-release", fedora),
            ("/etc/redhat-release", "Fedora release 39 (Thirty Nine)\n"),
            ("/etc/fedora-release", "Fedora release 39 (Thirty Nine)\n"),
        ]));
        assert_eq!(
            pick(&f),
            json!({"distribution": "Fedora", "distribution_version": "39",
                   "distribution_release": "", "distribution_major_version": "39",
                   "os_family": "RedHat"})
        );

        let rocky = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n";
        let f = distribution_facts(&files(&[
            ("/etc/os-release", rocky),
            (
                "/etc/redhat-release",
                "Rocky Linux release 9.3 (Blue Onyx)\n",
            ),
        ]));
        assert_eq!(
            pick(&f),
            json!({"distribution": "Rocky", "distribution_version": "9.3",
                   "distribution_release": "Blue Onyx", "distribution_major_version": "9",
                   "os_family": "RedHat"})
        );

        let centos7 = "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n";
        let f = distribution_facts(&files(&[
            ("/etc/os-release", centos7),
            (
                "/etc/centos-release",
                "CentOS Linux release 7.9.2009 (Core)\n",
            ),
            (
                "/etc/redhat-release",
                "CentOS Linux release 7.9.2009 (Core)\n",
            ),
        ]));
        assert_eq!(f["distribution"], "CentOS");
        assert_eq!(f["distribution_version"], "7.9");
        assert_eq!(f["distribution_release"], "Core");

        let alpine = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n";
        let f = distribution_facts(&files(&[
            ("/etc/os-release", alpine),
            ("/etc/alpine-release", "3.19.1\n"),
        ]));
        assert_eq!(f["distribution"], "Alpine");
        assert_eq!(f["distribution_version"], "3.19.1");
        assert_eq!(f["os_family"], "Alpine");
    }

    #[test]
    fn release_line_parsing() {
        let info = parse_distro_release_line("CentOS Linux release 7.9.2009 (Core)");
        assert_eq!(info["name"], "CentOS Linux");
        assert_eq!(info["version_id"], "7.9.2009");
        assert_eq!(info["codename"], "Core");
    }
}
