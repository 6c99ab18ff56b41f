//! The `group` module: a group present (with a gid) or absent, through `groupadd`,
//! `groupmod` and `groupdel`, as Ansible's `group.py` does on Linux.
//!
//! Round trips: one exec reads the group (`getent group NAME`, whose answer must carry
//! that name: a numeric name is not a gid here, as for Python's `grp.getgrnam`); one more
//! changes it and reads it again. `local: true` (libuser's `lgroupadd`) is not supported.

use serde::Deserialize;

use super::{run_script, step_stderr, GroupEntry, STEPS};
use crate::files::common::{Records, PRELUDE};
use crate::{args, Ctx, Map, Module, ModuleError, Outcome, Script};

/// `group`.
pub struct Group;

#[derive(Debug, Deserialize)]
struct GroupArgs {
    name: String,
    state: Option<State>,
    gid: Option<i64>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    non_unique: bool,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    local: bool,
    gid_min: Option<i64>,
    gid_max: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Present,
    Absent,
}

/// Prints the group named `$n` as record `g` (nothing when there is none).
const READ: &str = "\ng_read() { if e=$(getent group \"$n\" 2>/dev/null); then case $e in \"$n\":*) __kv g \"${e%%\"$__nl\"*}\";; esac; fi; }\n";

fn read_group(records: &Records) -> Option<GroupEntry> {
    records.get("g").and_then(GroupEntry::parse)
}

impl Module for Group {
    fn name(&self) -> &'static str {
        "group"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<GroupArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: GroupArgs = args::parse("group", raw)?;
        if a.non_unique && a.gid.is_none() {
            return Err(ModuleError::Args(
                "non_unique is True but all of the following are missing: gid".into(),
            ));
        }
        if a.local {
            if a.force {
                return Ok(Outcome::failed("force is not a valid option for local, force=True and local=True are mutually exclusive"));
            }
            return Ok(Outcome::failed(
                "local: true (libuser's lgroupadd/lgroupmod/lgroupdel) is not supported",
            ));
        }
        let state = a.state.unwrap_or(State::Present);
        let probe = Script::new()
            .raw(PRELUDE)
            .need("getent")
            .set("n", &a.name)
            .raw(READ)
            .raw("g_read\n");
        let current = read_group(&Records::parse(
            &run_script(ctx, probe, None, false)?.stdout,
        ));

        let mut outcome = Outcome::ok().with("name", a.name.as_str()).with(
            "state",
            if state == State::Present {
                "present"
            } else {
                "absent"
            },
        );
        let (tool, argv): (&'static str, Vec<String>) = match (state, &current) {
            (State::Absent, None) => return Ok(outcome),
            (State::Absent, Some(_)) => {
                if ctx.check {
                    return Ok(Outcome::changed(true));
                }
                let mut argv = vec!["groupdel".to_string()];
                if a.force {
                    argv.push("-f".into());
                }
                argv.push(a.name.clone());
                ("groupdel", argv)
            }
            (State::Present, None) => {
                if ctx.check {
                    return Ok(Outcome::changed(true));
                }
                let mut argv = vec!["groupadd".to_string()];
                if let Some(gid) = a.gid {
                    argv.extend(["-g".into(), gid.to_string()]);
                    if a.non_unique {
                        argv.push("-o".into());
                    }
                }
                if a.system {
                    argv.push("-r".into());
                }
                if let Some(min) = a.gid_min {
                    argv.extend(["-K".into(), format!("GID_MIN={min}")]);
                }
                if let Some(max) = a.gid_max {
                    argv.extend(["-K".into(), format!("GID_MAX={max}")]);
                }
                argv.push(a.name.clone());
                ("groupadd", argv)
            }
            (State::Present, Some(g)) => match a.gid {
                Some(gid) if gid != g.gid => {
                    let mut argv = vec!["groupmod".to_string(), "-g".into(), gid.to_string()];
                    if a.non_unique {
                        argv.push("-o".into());
                    }
                    argv.push(a.name.clone());
                    ("groupmod", argv)
                }
                _ => {
                    return Ok(outcome.with("system", a.system).with("gid", g.gid));
                }
            },
        };
        outcome.changed = true;
        if ctx.check {
            // Only a gid change gets here in check mode: Ansible reports the current gid.
            if let Some(g) = &current {
                outcome = outcome.with("system", a.system).with("gid", g.gid);
            }
            return Ok(outcome);
        }
        let script = Script::new()
            .raw(PRELUDE)
            .raw(STEPS)
            .need(tool)
            .need("getent")
            .set("n", &a.name)
            .raw(READ)
            .raw("\n__step cmd; o=$(")
            .cmd(&argv)
            .raw("</dev/null); r=$?; __kv rc \"$r\"; __kv out \"$o\"; [ \"$r\" = 0 ] && g_read\n");
        let out = run_script(ctx, script, None, false)?;
        let records = Records::parse(&out.stdout);
        let err = step_stderr(&out.stderr_str(), "cmd");
        if records.get("rc") != Some("0") {
            let msg = if err.is_empty() {
                out.stderr_str()
            } else {
                err
            };
            return Ok(Outcome::failed(msg).with("name", a.name.as_str()));
        }
        if let Some(o) = records.get("out").filter(|o| !o.is_empty()) {
            outcome = outcome.with("stdout", o);
        }
        if !err.is_empty() {
            outcome = outcome.with("stderr", err);
        }
        if let Some(g) = read_group(&records) {
            outcome = outcome.with("system", a.system).with("gid", g.gid);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::fake::FakeTools;
    use serde_json::json;

    /// Fake group tools over a group file in the test directory.
    fn fake_groups(host: &FakeTools, initial: &str) {
        let db = host.path("group");
        std::fs::write(&db, initial).expect("test value");
        let db = db.display();
        host.tool("getent", false, &format!("grep \"^$2:\" '{db}' || exit 2"));
        host.tool(
            "groupadd",
            false,
            &format!(
                "for n; do :; done; g=2000; [ \"$1\" = -g ] && g=$2; echo \"$n:x:$g:\" >> '{db}'"
            ),
        );
        host.tool(
            "groupmod",
            false,
            &format!("for n; do :; done; sed -i \"s/^$n:x:[0-9]*:/$n:x:$2:/\" '{db}'"),
        );
        host.tool(
            "groupdel",
            false,
            &format!("for n; do :; done; case $n in busy) echo \"groupdel: cannot remove the primary group of user 'x'\" >&2; exit 8;; esac; sed -i \"/^$n:/d\" '{db}'"),
        );
    }

    #[test]
    fn a_group_is_created_with_its_gid_changed_and_removed() {
        let mut host = FakeTools::new();
        fake_groups(&host, "root:x:0:\n");
        let args = json!({"name": "devs", "gid": 3001, "system": true});
        let r = host
            .run(&Group, args.clone(), true, false)
            .expect("test value");
        assert!(r.changed && r.result.is_empty());
        assert_eq!(host.log(), "getent [group] [devs]\n");
        host.clear_log();
        let r = host
            .run(&Group, args.clone(), false, false)
            .expect("test value");
        assert!(r.changed);
        assert_eq!(
            host.log(),
            "getent [group] [devs]\ngroupadd [-g] [3001] [-r] [devs]\ngetent [group] [devs]\n"
        );
        assert_eq!(
            serde_json::Value::Object(r.result),
            json!({"name": "devs", "state": "present", "system": true, "gid": 3001})
        );
        host.execs = 0;
        let r = host.run(&Group, args, false, false).expect("test value");
        assert!(!r.changed);
        assert_eq!(host.execs, 1);

        let r = host
            .run(
                &Group,
                json!({"name": "devs", "gid": 3002, "non_unique": true}),
                false,
                false,
            )
            .expect("test value");
        assert!(r.changed);
        assert!(
            host.log().contains("groupmod [-g] [3002] [-o] [devs]"),
            "{}",
            host.log()
        );
        assert_eq!(r.result["gid"], json!(3002));

        let r = host
            .run(
                &Group,
                json!({"name": "devs", "state": "absent", "force": true}),
                false,
                false,
            )
            .expect("test value");
        assert!(r.changed);
        assert!(host.log().contains("groupdel [-f] [devs]"));
        assert_eq!(
            serde_json::Value::Object(r.result),
            json!({"name": "devs", "state": "absent"})
        );
        assert!(
            !host
                .run(
                    &Group,
                    json!({"name": "devs", "state": "absent"}),
                    false,
                    false
                )
                .expect("test value")
                .changed
        );
    }

    #[test]
    fn failures_carry_the_tools_message() {
        let mut host = FakeTools::new();
        fake_groups(&host, "busy:x:5:\n");
        let r = host
            .run(
                &Group,
                json!({"name": "busy", "state": "absent"}),
                false,
                false,
            )
            .expect("test value");
        assert!(r.failed);
        assert_eq!(
            r.msg.as_deref(),
            Some("groupdel: cannot remove the primary group of user 'x'\n")
        );
        let e = host
            .run(
                &Group,
                json!({"name": "x", "non_unique": true}),
                false,
                false,
            )
            .expect_err("fails");
        assert_eq!(
            e.to_string(),
            "non_unique is True but all of the following are missing: gid"
        );
    }

    #[test]
    fn a_hostile_name_arrives_intact() {
        let mut host = FakeTools::new();
        fake_groups(&host, "");
        let name = "a b'$(id)";
        let _ = host
            .run(&Group, json!({"name": name}), false, false)
            .expect("test value");
        assert!(
            host.log().contains(&format!("groupadd [{name}]")),
            "{}",
            host.log()
        );
    }
}
