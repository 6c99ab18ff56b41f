//! Host addresses in inventories: `host:port` splitting and `[a:b(:step)]` range expansion, as Ansible's `parse_address` and `expand_hostname_range` do them.

use std::sync::LazyLock;

use regex::Regex;

/// A bracketed address with a port: `[::1]:22`, `[web[1:3]]:22`.
static BRACKETED_HOSTPORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[(.+)\]:([0-9]+)$").expect("static regex"));

/// A host or IPv4 address (ranges allowed) followed by `:port`.
static HOSTPORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$").expect("static regex"));

const NUMERIC_RANGE: &str = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]";
const HEX_RANGE: &str = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]";
const ALNUM_RANGE: &str = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";

static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    let part = format!(r"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{NUMERIC_RANGE})");
    Regex::new(&format!(r"(?i)^(?:{part}\.){{3}}{part}$")).expect("static regex")
});

static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    let c = format!(r"(?:[0-9a-f]{{1,4}}|{HEX_RANGE})");
    // The same alternatives as Ansible's pattern: uncompressed, every `a::b` split,
    // and the IPv4-in-IPv6 forms.
    let forms = [
        format!(r"(?:{c}:){{7}}{c}"),
        format!(r"(?:{c}:){{1,6}}:"),
        format!(r"(?:{c}:)(?::{c}){{1,6}}"),
        format!(r"(?:{c}:){{2}}(?::{c}){{1,5}}"),
        format!(r"(?:{c}:){{3}}(?::{c}){{1,4}}"),
        format!(r"(?:{c}:){{4}}(?::{c}){{1,3}}"),
        format!(r"(?:{c}:){{5}}(?::{c}){{1,2}}"),
        format!(r"(?:{c}:){{6}}(?::{c})"),
        format!(r":(?::{c}){{1,6}}"),
        format!(r"{c}?::"),
        format!(r"(?:0:){{6}}(?:{c}\.){{3}}{c}"),
        format!(r"::(?:ffff:)?(?:{c}\.){{3}}{c}"),
        format!(r"(?:0:){{5}}ffff:(?:{c}\.){{3}}{c}"),
    ];
    Regex::new(&format!("(?i)^(?:{})$", forms.join("|"))).expect("static regex")
});

/// One DNS label; Ansible's pattern also forbids a trailing `-`/`_`, checked separately
/// because the regex crate has no look-behind.
static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)^(?:\w|{ALNUM_RANGE})(?:[\w-]|{ALNUM_RANGE})*$"
    ))
    .expect("static regex")
});

fn is_hostname(address: &str) -> bool {
    !address.is_empty()
        && address
            .split('.')
            .all(|label| LABEL.is_match(label) && !label.ends_with(['-', '_']))
}

/// Split `address` into host and port the way Ansible's `parse_address` does.
/// `None` when it is not a recognisable host name or IP address (callers then use
/// the text unchanged, as Ansible does). Without `allow_ranges`, a `[` makes it fail.
pub(super) fn parse_address(address: &str, allow_ranges: bool) -> Option<(String, Option<i64>)> {
    let mut address = address.to_string();
    let mut port = None;
    // Both forms are tried in turn on what is left, as Ansible's loop does.
    for pattern in [&*BRACKETED_HOSTPORT, &*HOSTPORT] {
        if let Some(caps) = pattern.captures(&address) {
            let host = caps[1].to_string();
            port = Some(caps[2].parse::<i64>().ok()?);
            address = host;
        }
    }
    let valid = IPV4.is_match(&address) || IPV6.is_match(&address) || is_hostname(&address);
    if !valid || (!allow_ranges && address.contains('[')) {
        return None;
    }
    Some((address, port))
}

/// A host key from an inventory file: expands ranges and splits off a port.
pub(super) fn expand_host_pattern(pattern: &str) -> Result<(Vec<String>, Option<i64>), String> {
    let (host, port) = parse_address(pattern, true).unwrap_or_else(|| (pattern.to_string(), None));
    let names = if host.contains('[') {
        expand_ranges(&host)?
    } else {
        vec![host]
    };
    Ok((names, port))
}

/// More hosts than this from one name is almost surely a typo (`web[1:100000000]`);
/// Ansible would try to build them all.
const MAX_RANGE_HOSTS: usize = 1_000_000;

/// `db[01:10:3]-[a:c]` → db01-a, db01-b, …; the first range is expanded, then the rest recursively.
pub(super) fn expand_ranges(line: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    expand_into(line, line, &mut hosts)?;
    Ok(hosts)
}

fn expand_into(original: &str, line: &str, hosts: &mut Vec<String>) -> Result<(), String> {
    let bad = |why: &str| format!("invalid host range in '{original}': {why}");
    // Ansible replaces the first '[' and then the first ']' by '|' and splits on '|';
    // anything but three parts is a malformed range.
    let replaced = line.replacen('[', "|", 1).replacen(']', "|", 1);
    let parts: Vec<&str> = replaced.split('|').collect();
    let [head, range, tail] = parts[..] else {
        return Err(bad("expected one [begin:end] or [begin:end:step]"));
    };
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(bad("a host range must be begin:end or begin:end:step"));
    }
    let begin = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(bad("a host range must specify an end value"));
    }
    let step_text = bounds.get(2).copied().unwrap_or("1");
    let step: i64 = step_text
        .trim()
        .parse()
        .map_err(|_| bad("the step must be a number"))?;
    if step == 0 {
        return Err(bad("the step must not be zero"));
    }
    // A leading zero means "pad every number to this width".
    let width = if begin.starts_with('0') && begin.len() > 1 {
        if begin.len() != end.len() {
            return Err(bad(
                "begin and end must have the same width when zero-padded",
            ));
        }
        Some(begin.len())
    } else {
        None
    };

    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let items: Vec<String> =
        match (LETTERS.find(begin), LETTERS.find(end)) {
            (Some(b), Some(e)) => {
                if b > e {
                    return Err(bad("begin must not be after end"));
                }
                if step < 0 {
                    Vec::new()
                } else {
                    LETTERS[b..=e]
                        .chars()
                        .step_by(step as usize)
                        .map(String::from)
                        .collect()
                }
            }
            _ => {
                let b: i64 = begin.trim().parse().map_err(|_| {
                    bad("begin and end must both be numbers or both single letters")
                })?;
                let e: i64 = end.trim().parse().map_err(|_| {
                    bad("begin and end must both be numbers or both single letters")
                })?;
                let stop = e
                    .checked_add(1)
                    .ok_or_else(|| bad("the end is too large"))?;
                // One past the cap is enough to report it below without building them all.
                python_range(b, stop, step)
                    .take(MAX_RANGE_HOSTS + 1)
                    .map(|n| match width {
                        Some(w) => zero_fill(n, w),
                        None => n.to_string(),
                    })
                    .collect()
            }
        };

    for item in items {
        let name = format!("{head}{item}{tail}");
        if name.contains('[') {
            expand_into(original, &name, hosts)?;
        } else {
            hosts.push(name);
        }
        if hosts.len() > MAX_RANGE_HOSTS {
            return Err(bad(&format!(
                "it expands to more than {MAX_RANGE_HOSTS} hosts"
            )));
        }
    }
    Ok(())
}

/// Python's `range(start, stop, step)` (step is never zero here).
fn python_range(start: i64, stop: i64, step: i64) -> impl Iterator<Item = i64> {
    // `None` once stepping would overflow i64: the range ends there.
    let mut next = Some(start);
    std::iter::from_fn(move || {
        let current = next?;
        let more = if step > 0 {
            current < stop
        } else {
            current > stop
        };
        if !more {
            return None;
        }
        next = current.checked_add(step);
        Some(current)
    })
}

/// Python's `str(n).zfill(width)`: the sign stays in front of the zeros.
fn zero_fill(n: i64, width: usize) -> String {
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    let pad = width.saturating_sub(digits.len() + sign.len());
    format!("{sign}{}{digits}", "0".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_split_from_names_and_ipv4_but_not_bare_ipv6() {
        assert_eq!(
            parse_address("web1:2222", false),
            Some(("web1".into(), Some(2222)))
        );
        assert_eq!(
            parse_address("10.0.0.1:22", false),
            Some(("10.0.0.1".into(), Some(22)))
        );
        assert_eq!(
            parse_address("[::1]:22", false),
            Some(("::1".into(), Some(22)))
        );
        assert_eq!(
            parse_address("fe80::1:22", false),
            Some(("fe80::1:22".into(), None))
        );
        assert_eq!(
            parse_address("web.example.com", false),
            Some(("web.example.com".into(), None))
        );
        // Not host names: a trailing dash, a glob.
        assert_eq!(parse_address("web-", false), None);
        assert_eq!(parse_address("web*", true), None);
        // Ranges only where allowed.
        assert_eq!(parse_address("web[1:3]", false), None);
        assert_eq!(
            parse_address("web[1:3]:22", true),
            Some(("web[1:3]".into(), Some(22)))
        );
    }

    #[test]
    fn ranges_expand_numbers_letters_steps_and_padding() {
        let expand = |s: &str| expand_ranges(s).expect("expands");
        assert_eq!(expand("web[01:03]"), ["web01", "web02", "web03"]);
        assert_eq!(expand("db-[a:c]"), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand("h[1:10:4]"), ["h1", "h5", "h9"]);
        assert_eq!(expand("h[:2]"), ["h0", "h1", "h2"]);
        assert_eq!(
            expand("r[1:2]-[a:b].x"),
            ["r1-a.x", "r1-b.x", "r2-a.x", "r2-b.x"]
        );
        assert_eq!(expand("h[3:1]"), Vec::<String>::new());
    }

    #[test]
    fn bad_ranges_are_errors() {
        for bad in [
            "h[1:]",
            "h[1]",
            "h[001:10]",
            "h[c:a]",
            "h[1:a]",
            "h[1:3:0]",
            "h[1:3",
        ] {
            assert!(expand_ranges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn huge_and_overflowing_ranges_stop_cleanly() {
        assert_eq!(
            expand_ranges("h[0:1000]-[0:1000]"),
            Err(
                "invalid host range in 'h[0:1000]-[0:1000]': it expands to more than 1000000 hosts"
                    .into()
            )
        );
        assert_eq!(
            expand_ranges("h[9223372036854775805:9223372036854775806]"),
            Ok(vec![
                "h9223372036854775805".to_string(),
                "h9223372036854775806".to_string()
            ])
        );
        assert!(expand_ranges("h[1:9223372036854775807]").is_err());
    }
}
