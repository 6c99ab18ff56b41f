//! The `timezone` module (`community.general.timezone`): the system's time zone (and where
//! possible whether the hardware clock keeps local time), as Ansible's `timezone.py` does it
//! on Linux.
//!
//! With a working `timedatectl` (systemd), `timedatectl status` is read and
//! `timedatectl set-timezone`/`set-local-rtc` set. Without, the zone is `/etc/timezone` and
//! the `/etc/localtime` symlink (Ansible's Debian way, minus `dpkg-reconfigure tzdata`), read
//! as Ansible reads them (`n/a` when the two disagree). The zone must exist under
//! `/usr/share/zoneinfo`. One exec reads; one more sets and reads again, and like Ansible the
//! module fails when the host still differs afterwards.
//!
//! Result as Ansible: `changed`, `diff` with `before`/`after` holding `name` (and `hwclock`),
//! shown as Ansible's callback shows such a diff (sorted JSON, 4-space indent), and `msg`
//! listing the commands run (`executed `...``).
//!
//! Deviations, on purpose:
//! - `hwclock` is ignored, with a warning, on a container (it has no hardware clock of its
//!   own), and refused on hosts without `timedatectl` (Ansible runs `hwclock --systohc`).
//! - A zone name that is absolute or climbs out with `..` is refused as unavailable, even
//!   when it names a file.
//! - The registered `diff` is a list of one text diff (the engine's shape), not Ansible's
//!   dict of dicts.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::files::common::{Records, PRELUDE};
use crate::services::systemd::CAPTURE;
use crate::{args, Cmd, Ctx, FileDiff, Map, Module, ModuleError, Outcome, Script};

/// `timezone`.
pub struct Timezone;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
enum Hwclock {
    #[serde(rename = "local")]
    Local,
    #[serde(rename = "UTC")]
    Utc,
}

impl Hwclock {
    fn word(self) -> &'static str {
        match self {
            Hwclock::Local => "local",
            Hwclock::Utc => "UTC",
        }
    }
}

#[derive(Debug, Deserialize)]
struct TimezoneArgs {
    name: Option<String>,
    #[serde(alias = "rtc")]
    hwclock: Option<Hwclock>,
}

/// Shell functions: `__tzread P` records the zone (and the RTC setting) under prefix `P`.
/// Inputs: `$z` (the planned zone, may be empty).
const READ: &str = r#"__tzread() {
  if [ -n "$__tdc" ]; then __cap "$1.st" timedatectl status; return; fi
  if [ -f /etc/timezone ]; then
    if [ -r /etc/timezone ]; then __kvc "$1.etc" cat /etc/timezone; else __kv "$1.etc_unreadable" 1; fi
  fi
  if [ -L /etc/localtime ]; then
    __kv "$1.link" "$(readlink /etc/localtime)"
    if [ -e /etc/localtime ]; then __kv "$1.link_ok" 1; fi
  elif [ -n "$z" ] && cmp -s /etc/localtime "/usr/share/zoneinfo/$z" 2>/dev/null; then
    __kv "$1.same" 1
  fi
}
"#;

/// Which way the host is read and set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Timedatectl,
    Files,
}

/// Ansible's `re.search(pattern, text, re.M).group(1)`.
fn search(pattern: &str, text: &str) -> Option<String> {
    let re = regex::Regex::new(&format!("(?m){pattern}")).ok()?;
    re.captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

/// Ansible's `module.boolean` on `RTC in local TZ` (`yes`/`no`).
fn rtc_is_local(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "y" | "yes" | "on" | "1" | "true" | "t"
    )
}

/// The values Ansible's `get` returns for each asked key, from the records under `prefix`.
fn read_values(
    r: &Records,
    prefix: &str,
    backend: Backend,
    planned: &BTreeMap<&'static str, String>,
) -> Result<BTreeMap<&'static str, String>, String> {
    let mut values = BTreeMap::new();
    match backend {
        Backend::Timedatectl => {
            let rc = r.get(&format!("{prefix}.st.rc")).unwrap_or("1");
            let status = r.get(&format!("{prefix}.st")).unwrap_or_default();
            if rc != "0" {
                let err = r.get(&format!("{prefix}.st.err")).unwrap_or_default();
                return Err(format!(
                    "timedatectl status failed (rc={rc}): {}",
                    err.trim()
                ));
            }
            if planned.contains_key("name") {
                let name = search(r"^\s*Time ?zone\s*:\s*([^\s]+)", status)
                    .ok_or("timedatectl status shows no time zone")?;
                values.insert("name", name);
            }
            if planned.contains_key("hwclock") {
                let rtc = search(r"^\s*RTC in local TZ\s*:\s*([^\s]+)", status)
                    .ok_or("timedatectl status shows no RTC setting")?;
                let word = if rtc_is_local(&rtc) { "local" } else { "UTC" };
                values.insert("hwclock", word.to_string());
            }
        }
        Backend::Files => {
            if let Some(plan) = planned.get("name") {
                values.insert("name", read_file_zone(r, prefix, plan)?);
            }
        }
    }
    Ok(values)
}

/// Ansible's `NosystemdTimezone.get('name')`: `/etc/timezone`, checked against
/// `/etc/localtime` when it already names the planned zone.
fn read_file_zone(r: &Records, prefix: &str, planned: &str) -> Result<String, String> {
    if r.get(&format!("{prefix}.etc_unreadable")).is_some() {
        return Err(
            "tried to configure name using a file \"/etc/timezone\", but could not read it".into(),
        );
    }
    let value = match r.get(&format!("{prefix}.etc")) {
        None => return Ok("n/a".into()),
        Some(text) => match search(r"^([^\s]+)", text) {
            Some(v) => v,
            None if prefix == "before" => return Ok("n/a".into()),
            None => {
                return Err("tried to configure name using a file \"/etc/timezone\", but could not find a valid value in it".into())
            }
        },
    };
    if value != planned {
        return Ok(value);
    }
    match r.get(&format!("{prefix}.link")) {
        Some(link) => {
            if r.get(&format!("{prefix}.link_ok")).is_none() {
                return Ok("n/a".into());
            }
            match search(r"(?:/(?:usr/share|etc)/zoneinfo/)(.*)", link) {
                Some(tz) if tz != planned => Ok(tz),
                Some(_) => Ok(value),
                None => Ok("n/a".into()),
            }
        }
        None if r.get(&format!("{prefix}.same")).is_some() => Ok(value),
        None => Ok("n/a".into()),
    }
}

/// Ansible's `_edit_file`: the first line matching `^([^\s]+)` replaced by `line`, the other
/// matches deleted (the line goes first when none matched); and how many were deleted.
fn edit_timezone_file(text: &str, line: &str) -> (String, usize) {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let matched: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.chars().next().is_some_and(|c| !c.is_whitespace()))
        .map(|(i, _)| i)
        .collect();
    let at = matched.first().copied().unwrap_or(0);
    for i in matched.iter().rev() {
        lines.remove(*i);
    }
    lines.insert(at, line.to_string());
    (lines.concat(), matched.len())
}

/// A dict diff as Ansible's callback prints it: sorted JSON with a 4-space indent.
fn json_text(values: &BTreeMap<&'static str, String>) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = serde::Serialize::serialize(values, &mut ser);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    text
}

/// Ansible's `abort`: the error, then the commands already run.
fn abort(msg: &str, log: &[String]) -> Outcome {
    let mut text = format!("Error message:\n{msg}");
    if !log.is_empty() {
        text.push_str("\nOther message(s):\n");
        text.push_str(&log.join("\n"));
    }
    Outcome::failed(text)
}

/// A zone name that could only name a file outside the zoneinfo tree.
fn implausible_zone(name: &str) -> bool {
    name.is_empty()
        || name.starts_with('/')
        || name.contains('\n')
        || name.split('/').any(|part| part == ".." || part.is_empty())
}

impl Module for Timezone {
    fn name(&self) -> &'static str {
        "timezone"
    }
    fn collections(&self) -> &'static [&'static str] {
        &["community.general"]
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<TimezoneArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: TimezoneArgs = args::parse("timezone", raw)?;
        if a.name.is_none() && a.hwclock.is_none() {
            return Err(ModuleError::Args(
                "one of the following is required: hwclock, name".into(),
            ));
        }
        let mut planned: BTreeMap<&'static str, String> = BTreeMap::new();
        if let Some(name) = &a.name {
            planned.insert("name", name.clone());
        }
        if let Some(h) = a.hwclock {
            planned.insert("hwclock", h.word().to_string());
        }
        let zone = a.name.clone().unwrap_or_default();

        let probe = Script::new()
            .raw(PRELUDE)
            .raw(CAPTURE)
            .raw(READ)
            .set("z", &zone)
            .raw(
                "\nif [ -n \"$z\" ] && [ -f \"/usr/share/zoneinfo/$z\" ]; then __kv zone 1; fi\n\
                 if systemd-detect-virt --container --quiet 2>/dev/null || [ -e /run/systemd/container ] || [ -e /.dockerenv ]; then __kv container 1; fi\n\
                 __tdc=\n\
                 if command -v timedatectl >/dev/null 2>&1 && __cap before.st timedatectl status; then __tdc=$(command -v timedatectl); __kv tdc \"$__tdc\"\n\
                 else __tzread before; fi\n",
            );
        let out = ctx.host.exec(&Cmd::script(probe))?;
        let r = Records::parse(&out.stdout);
        let backend = match r.get("tdc") {
            Some(_) => Backend::Timedatectl,
            None => Backend::Files,
        };
        let timedatectl = r.get("tdc").unwrap_or("timedatectl").to_string();
        let mut warnings: Vec<String> = Vec::new();
        if planned.contains_key("hwclock") {
            if r.get("container").is_some() {
                planned.remove("hwclock");
                warnings.push(
                    "hwclock is ignored: the target is a container, which has no hardware clock of its own"
                        .into(),
                );
            } else if backend == Backend::Files {
                return Ok(abort(
                    "hwclock is only supported through timedatectl here, and this host has no working timedatectl",
                    &[],
                ));
            }
        }
        if a.name.is_some() && (implausible_zone(&zone) || r.get("zone").is_none()) {
            return Ok(abort(
                &format!("given timezone \"{zone}\" is not available"),
                &[],
            ));
        }
        let before = match read_values(&r, "before", backend, &planned) {
            Ok(v) => v,
            Err(msg) => return Ok(abort(&msg, &[])),
        };
        let mut log: Vec<String> = Vec::new();
        let after = if ctx.check || before == planned {
            planned.clone()
        } else {
            let mut script = Script::new()
                .raw(PRELUDE)
                .raw(CAPTURE)
                .raw(READ)
                .set("z", &zone)
                .raw("\n")
                .set(
                    "__tdc",
                    if backend == Backend::Timedatectl {
                        timedatectl.as_str()
                    } else {
                        ""
                    },
                )
                .raw("\n");
            for (key, want) in &planned {
                if before.get(key) == Some(want) {
                    continue;
                }
                match (backend, *key) {
                    (Backend::Timedatectl, "name") => {
                        script = script
                            .raw("__cap set.name \"$__tdc\" set-timezone")
                            .arg(want)
                            .raw("|| exit 1\n");
                        log.push(format!("executed `{timedatectl} set-timezone {want}`"));
                    }
                    (Backend::Timedatectl, _) => {
                        let yes = if want == "local" { "yes" } else { "no" };
                        script = script
                            .raw("__cap set.hwclock \"$__tdc\" set-local-rtc")
                            .arg(yes)
                            .raw("|| exit 1\n");
                        log.push(format!("executed `{timedatectl} set-local-rtc {yes}`"));
                    }
                    (Backend::Files, _) => {
                        let current = r.get("before.etc").map(|t| format!("{t}\n"));
                        let (content, deleted) = edit_timezone_file(
                            current.as_deref().unwrap_or(""),
                            &format!("{want}\n"),
                        );
                        script = script
                            .set("c", &content)
                            .raw(
                                "\n__cap set.file sh -c 'printf %s \"$1\" >/etc/timezone' sh \"$c\" || exit 1\n\
                                 __cap set.link ln -sf -- \"/usr/share/zoneinfo/$z\" /etc/localtime || exit 1\n",
                            );
                        log.push(format!(
                            "Added 1 line and deleted {deleted} line(s) on /etc/timezone"
                        ));
                    }
                }
            }
            script = script.raw("__tzread after\n");
            let out = ctx.host.exec(&Cmd::script(script))?;
            let r = Records::parse(&out.stdout);
            for step in ["set.name", "set.hwclock", "set.file", "set.link"] {
                if let Some(rc) = r.get(&format!("{step}.rc")).filter(|rc| *rc != "0") {
                    let err = r.get(&format!("{step}.err")).unwrap_or_default();
                    return Ok(abort(
                        &format!("command failed (rc={rc}): {}", err.trim()),
                        &log,
                    ));
                }
            }
            let after = match read_values(&r, "after", backend, &planned) {
                Ok(v) => v,
                Err(msg) => return Ok(abort(&msg, &log)),
            };
            if after != planned {
                return Ok(abort(
                    &format!(
                        "still not desired state, though changes have made - planned: {}, after: {}",
                        py_dict(&planned),
                        py_dict(&after)
                    ),
                    &log,
                ));
            }
            after
        };
        let mut outcome = Outcome::changed(before != after);
        outcome.diffs.push(FileDiff {
            before: json_text(&before),
            after: json_text(&after),
            ..FileDiff::default()
        });
        if !log.is_empty() {
            outcome.msg = Some(log.join("\n"));
        }
        if !warnings.is_empty() {
            outcome = outcome.with("warnings", warnings);
        }
        Ok(outcome)
    }
}

/// Python's `str()` of a dict of strings, for Ansible's "still not desired state" message.
fn py_dict(values: &BTreeMap<&'static str, String>) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|(k, v)| {
            format!(
                "{}: {}",
                crate::pyfmt::str_repr(k),
                crate::pyfmt::str_repr(v)
            )
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::scripted::{records, ScriptedHost};

    const STATUS: &str = "               Local time: Mon 2024-01-01 12:00:00 UTC\n\
                                         Time zone: Etc/UTC (UTC, +0000)\n\
                          System clock synchronized: no\n\
                                    RTC in local TZ: no";

    #[test]
    fn timedatectl_sets_the_zone_and_reads_it_again() {
        let after = STATUS.replace("Etc/UTC (UTC, +0000)", "Europe/Paris (CET, +0100)");
        let mut host = ScriptedHost::new()
            .reply(
                &records(&[
                    ("zone", "1"),
                    ("container", "1"),
                    ("tdc", "/usr/bin/timedatectl"),
                    ("before.st.rc", "0"),
                    ("before.st", STATUS),
                ]),
                "",
                0,
            )
            .reply(
                &records(&[
                    ("set.name.rc", "0"),
                    ("after.st.rc", "0"),
                    ("after.st", &after),
                ]),
                "",
                0,
            );
        let out = host
            .run(
                &Timezone,
                serde_json::json!({"name": "Europe/Paris", "hwclock": "UTC"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert!(out.changed, "{out:?}");
        assert!(host.commands[1].contains("set-timezone Europe/Paris"));
        assert!(!host.commands[1].contains("set-local-rtc"));
        assert_eq!(out.diffs[0].before, "{\n    \"name\": \"Etc/UTC\"\n}\n");
        assert_eq!(out.diffs[0].after, "{\n    \"name\": \"Europe/Paris\"\n}\n");
        assert_eq!(
            out.msg.as_deref(),
            Some("executed `/usr/bin/timedatectl set-timezone Europe/Paris`")
        );
        assert_eq!(
            out.result["warnings"][0],
            "hwclock is ignored: the target is a container, which has no hardware clock of its own"
        );
    }

    #[test]
    fn an_unknown_zone_is_named() {
        let mut host =
            ScriptedHost::new().reply(&records(&[("tdc", "/usr/bin/timedatectl")]), "", 0);
        let out = host
            .run(
                &Timezone,
                serde_json::json!({"name": "Mars/Olympus"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert_eq!(
            out.msg.as_deref(),
            Some("Error message:\ngiven timezone \"Mars/Olympus\" is not available")
        );
        let out = ScriptedHost::new()
            .reply(&records(&[("zone", "1")]), "", 0)
            .run(
                &Timezone,
                serde_json::json!({"name": "../../etc/passwd"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert!(out.failed);
    }

    #[test]
    fn the_file_backend_reads_like_ansible() {
        let planned = BTreeMap::from([("name", "Europe/Paris".to_string())]);
        let r = Records::parse(&records(&[
            ("before.etc", "Europe/Paris"),
            ("before.link", "/usr/share/zoneinfo/Etc/UTC"),
            ("before.link_ok", "1"),
        ]));
        let v = read_values(&r, "before", Backend::Files, &planned).expect("reads");
        assert_eq!(v["name"], "Etc/UTC");
        let r = Records::parse(&records(&[
            ("before.etc", "Europe/Paris"),
            ("before.same", "1"),
        ]));
        let v = read_values(&r, "before", Backend::Files, &planned).expect("reads");
        assert_eq!(v["name"], "Europe/Paris");
        let r = Records::parse(&records(&[]));
        let v = read_values(&r, "before", Backend::Files, &planned).expect("reads");
        assert_eq!(v["name"], "n/a");
        assert_eq!(
            edit_timezone_file("# x\nEtc/UTC\nOther\n", "Europe/Paris\n"),
            ("Europe/Paris\n".to_string(), 3)
        );
        assert_eq!(
            edit_timezone_file(" \n", "Europe/Paris\n"),
            ("Europe/Paris\n \n".to_string(), 0)
        );
    }

    #[test]
    fn check_mode_reports_the_plan_without_a_second_exec() {
        let mut host = ScriptedHost::new().reply(
            &records(&[
                ("zone", "1"),
                ("tdc", "/usr/bin/timedatectl"),
                ("before.st.rc", "0"),
                ("before.st", STATUS),
            ]),
            "",
            0,
        );
        let out = host
            .run(
                &Timezone,
                serde_json::json!({"name": "Asia/Tokyo"}),
                true,
                &Map::new(),
            )
            .expect("runs");
        assert!(out.changed);
        assert_eq!(host.commands.len(), 1);
        assert!(out.diffs[0].after.contains("Asia/Tokyo"));
    }
}

#[cfg(test)]
mod local_tests {
    use super::*;
    use crate::local::LocalHost;

    /// The probe script on this machine's shell, in check mode (it only reads).
    #[test]
    fn the_probe_reads_this_machine() {
        let mut host = LocalHost::new("localhost");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: true,
            diff: true,
            facts: &facts,
        };
        let args = serde_json::json!({"name": "Etc/UTC"});
        let serde_json::Value::Object(args) = args else {
            panic!()
        };
        let out = Timezone.run(&mut ctx, &args).expect("runs");
        assert!(!out.failed, "{out:?}");
        assert_eq!(out.diffs[0].after, "{\n    \"name\": \"Etc/UTC\"\n}\n");
        let args = serde_json::json!({"name": "Nowhere/Atlantis"});
        let serde_json::Value::Object(args) = args else {
            panic!()
        };
        let out = Timezone.run(&mut ctx, &args).expect("runs");
        assert!(out.failed);
    }
}
