//! Network facts of the `setup` module (`network` subset): interfaces from sysfs, addresses
//! from `ip -o addr`, default routes from `ip route show default` (or `/proc/net/route`),
//! shaped as Ansible's Linux network collector shapes them.

use super::setup::{s, Gathered};
use crate::{Map, Value};

/// Dotted IPv4 netmask and network of an address with a prefix length.
fn ipv4_net(address: &str, prefix: u32) -> Option<(String, String)> {
    let ip: std::net::Ipv4Addr = address.parse().ok()?;
    let mask: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    };
    let net = u32::from(ip) & mask;
    Some((
        std::net::Ipv4Addr::from(mask).to_string(),
        std::net::Ipv4Addr::from(net).to_string(),
    ))
}

/// Ansible's Linux network facts from sysfs and `ip -o addr` / `ip route` output.
pub(super) fn network_facts(g: &Gathered) -> Map {
    const TYPES: &[(&str, &str)] = &[
        ("1", "ether"),
        ("32", "infiniband"),
        ("512", "ppp"),
        ("772", "loopback"),
        ("65534", "tunnel"),
    ];
    let mut interfaces: Vec<(String, Map)> = Vec::new();
    for (dev, attrs) in &g.interfaces {
        let mut i = Map::new();
        i.insert("device".into(), s(dev.clone()));
        if let Some(mac) = attrs
            .get("address")
            .filter(|m| !m.is_empty() && *m != "00:00:00:00:00:00")
        {
            i.insert("macaddress".into(), s(mac.clone()));
        }
        if let Some(Ok(mtu)) = attrs.get("mtu").map(|m| m.trim().parse::<i64>()) {
            i.insert("mtu".into(), Value::from(mtu));
        }
        if let Some(state) = attrs.get("operstate") {
            i.insert("active".into(), Value::Bool(state.trim() != "down"));
        }
        if let Some(module) = attrs.get("module") {
            i.insert("module".into(), s(module.rsplit('/').next().unwrap_or("")));
        }
        if let Some(t) = attrs.get("type") {
            let name = TYPES
                .iter()
                .find(|(k, _)| *k == t.trim())
                .map_or("unknown", |(_, v)| v);
            i.insert("type".into(), s(name));
        }
        if let Some(members) = attrs.get("bridge") {
            i.insert("type".into(), s("bridge"));
            i.insert(
                "interfaces".into(),
                Value::from(
                    members
                        .split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                ),
            );
        }
        if let Some(dev_link) = attrs.get("pciid") {
            i.insert("pciid".into(), s(dev_link.rsplit('/').next().unwrap_or("")));
        }
        if let Some(Ok(speed)) = attrs.get("speed").map(|v| v.trim().parse::<i64>()) {
            i.insert("speed".into(), Value::from(speed));
        }
        if let Some(flags) = attrs.get("flags") {
            if let Ok(bits) = i64::from_str_radix(flags.trim().trim_start_matches("0x"), 16) {
                i.insert("promisc".into(), Value::Bool(bits & 0x100 != 0));
            }
        }
        interfaces.push((dev.clone(), i));
    }
    let find = |list: &mut Vec<(String, Map)>, name: &str| -> usize {
        match list.iter().position(|(n, _)| n == name) {
            Some(p) => p,
            None => {
                list.push((name.to_string(), Map::new()));
                list.len() - 1
            }
        }
    };

    let mut default4 = Map::new();
    let mut default6 = Map::new();
    let mut all4: Vec<Value> = Vec::new();
    let mut all6: Vec<Value> = Vec::new();
    let parse_default = |text: &str, into: &mut Map| {
        if let Some(line) = text.lines().find(|l| l.starts_with("default")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            for w in words.windows(2) {
                match w[0] {
                    "dev" => into.insert("interface".into(), s(w[1])),
                    "src" => into.insert("address".into(), s(w[1])),
                    "via" => into.insert("gateway".into(), s(w[1])),
                    _ => None,
                };
            }
        }
    };
    parse_default(g.value("route4"), &mut default4);
    parse_default(g.value("route6"), &mut default6);

    for raw in g.value("ip_addr").lines() {
        let line = raw.split('\\').next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 4 {
            continue;
        }
        let device = words[1].split('@').next().unwrap_or("").to_string();
        let mac = interfaces
            .iter()
            .find(|(n, _)| *n == device)
            .and_then(|(_, i)| i.get("macaddress").cloned());
        let dev_info = interfaces
            .iter()
            .find(|(n, _)| *n == device)
            .map(|(_, i)| i.clone());
        let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1]);
        match words[2] {
            "inet" => {
                let (address, prefix) = words[3].split_once('/').unwrap_or((words[3], "32"));
                let broadcast = after("brd").unwrap_or("").to_string();
                let Some((netmask, network)) = ipv4_net(address, prefix.parse().unwrap_or(32))
                else {
                    continue;
                };
                let secondary = words.contains(&"secondary");
                let label = words.last().copied().unwrap_or(&device).to_string();
                let entry = serde_json::json!({
                    "address": address, "broadcast": broadcast, "netmask": netmask,
                    "network": network, "prefix": prefix,
                });
                let idx = find(&mut interfaces, &label);
                let iface = &mut interfaces[idx].1;
                if !secondary && !iface.contains_key("ipv4") {
                    iface.insert("ipv4".into(), entry.clone());
                } else if let Value::Array(list) = iface
                    .entry("ipv4_secondaries")
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    list.push(entry.clone());
                }
                if secondary && label != device {
                    let idx = find(&mut interfaces, &device);
                    if let Value::Array(list) = interfaces[idx]
                        .1
                        .entry("ipv4_secondaries")
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        list.push(entry.clone());
                    }
                }
                let is_default = default4.get("interface").and_then(Value::as_str)
                    == Some(device.as_str())
                    && match default4.get("address").and_then(Value::as_str) {
                        Some(a) => a == address,
                        None => !secondary,
                    };
                if is_default && !default4.contains_key("netmask") {
                    default4.insert("address".into(), s(address));
                    default4.insert("broadcast".into(), s(broadcast));
                    default4.insert("netmask".into(), entry["netmask"].clone());
                    default4.insert("network".into(), entry["network"].clone());
                    default4.insert("prefix".into(), s(prefix));
                    if let Some(m) = &mac {
                        default4.insert("macaddress".into(), m.clone());
                    }
                    if let Some(info) = &dev_info {
                        default4.insert(
                            "mtu".into(),
                            info.get("mtu").cloned().unwrap_or(Value::Null),
                        );
                        default4.insert(
                            "type".into(),
                            info.get("type").cloned().unwrap_or_else(|| s("unknown")),
                        );
                    }
                    default4.insert("alias".into(), s(label.clone()));
                }
                if !address.starts_with("127.") {
                    all4.push(s(address));
                }
            }
            "inet6" => {
                let (address, prefix) = if words.get(4) == Some(&"peer") {
                    (
                        words[3],
                        words
                            .get(5)
                            .and_then(|p| p.split_once('/'))
                            .map_or("", |(_, p)| p),
                    )
                } else {
                    words[3].split_once('/').unwrap_or((words[3], "128"))
                };
                let scope = after("scope").unwrap_or("").to_string();
                let entry =
                    serde_json::json!({"address": address, "prefix": prefix, "scope": scope});
                let idx = find(&mut interfaces, &device);
                if let Value::Array(list) = interfaces[idx]
                    .1
                    .entry("ipv6")
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    list.push(entry);
                }
                let is_default = default6.get("interface").and_then(Value::as_str)
                    == Some(device.as_str())
                    && match default6.get("address").and_then(Value::as_str) {
                        Some(a) => a == address,
                        None => scope == "global",
                    };
                if is_default && !default6.contains_key("prefix") {
                    default6.insert("address".into(), s(address));
                    default6.insert("prefix".into(), s(prefix));
                    default6.insert("scope".into(), s(scope));
                    if let Some(m) = &mac {
                        default6.insert("macaddress".into(), m.clone());
                    }
                    if let Some(info) = &dev_info {
                        default6.insert(
                            "mtu".into(),
                            info.get("mtu").cloned().unwrap_or(Value::Null),
                        );
                        default6.insert(
                            "type".into(),
                            info.get("type").cloned().unwrap_or_else(|| s("unknown")),
                        );
                    }
                }
                if address != "::1" {
                    all6.push(s(address));
                }
            }
            _ => {}
        }
    }

    // Without `ip`: the default gateway from the kernel's routing table.
    if !g.have.contains("ip") {
        for line in g
            .files
            .get("/proc/net/route")
            .map_or("", String::as_str)
            .lines()
            .skip(1)
        {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 2 && cols[1] == "00000000" {
                if let Ok(gw) = u32::from_str_radix(cols[2], 16) {
                    default4.insert("interface".into(), s(cols[0]));
                    default4.insert(
                        "gateway".into(),
                        s(std::net::Ipv4Addr::from(gw.swap_bytes()).to_string()),
                    );
                }
                break;
            }
        }
    }

    let mut reachable4: Vec<Value> = Vec::new();
    let mut reachable6: Vec<Value> = Vec::new();
    for line in g.value("local4").lines().chain(g.value("local6").lines()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"local") || words.len() < 2 {
            continue;
        }
        let list = if words[1].contains(':') {
            &mut reachable6
        } else {
            &mut reachable4
        };
        if !list.iter().any(|v| v == words[1]) {
            list.push(s(words[1]));
        }
    }

    let mut f = Map::new();
    let names: Vec<Value> = interfaces
        .iter()
        .map(|(n, _)| s(n.replace(':', "_")))
        .collect();
    f.insert("interfaces".into(), Value::Array(names));
    for (name, info) in interfaces {
        f.insert(name.replace(':', "_"), Value::Object(info));
    }
    f.insert("default_ipv4".into(), Value::Object(default4));
    f.insert("default_ipv6".into(), Value::Object(default6));
    f.insert("all_ipv4_addresses".into(), Value::Array(all4));
    f.insert("all_ipv6_addresses".into(), Value::Array(all6));
    f.insert(
        "locally_reachable_ips".into(),
        serde_json::json!({"ipv4": reachable4, "ipv6": reachable6}),
    );
    f
}
