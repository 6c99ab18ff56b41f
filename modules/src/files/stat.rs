//! The `stat` module: everything Ansible's `stat` reports about one path, in one exec.
//!
//! `get_mime` and `get_attributes` are accepted so playbooks run unchanged, but their keys
//! (`mimetype`, `charset`, `attributes`, ...) are not produced: they need `file(1)` and
//! `lsattr`, which minimal targets lack, and almost nobody reads them.

use serde::Deserialize;
use serde_json::json;

use super::common::{
    perm_flag_keys, stat_keys, ChecksumAlgo, FileKind, Records, StatResult, PRELUDE,
};
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script};

/// `stat`.
pub struct Stat;

fn yes() -> bool {
    true
}

fn sha1() -> ChecksumAlgo {
    ChecksumAlgo::Sha1
}

#[derive(Debug, Deserialize)]
struct StatArgs {
    #[serde(alias = "dest", alias = "name")]
    path: String,
    #[serde(default)]
    follow: bool,
    #[serde(default = "yes")]
    get_checksum: bool,
    #[serde(default = "sha1", alias = "checksum", alias = "checksum_algo")]
    checksum_algorithm: ChecksumAlgo,
    #[serde(default, alias = "mime", alias = "mime_type", alias = "mime-type")]
    #[allow(dead_code)]
    get_mime: Option<bool>,
    #[serde(default, alias = "attr", alias = "attributes")]
    #[allow(dead_code)]
    get_attributes: Option<bool>,
}

impl Module for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<StatArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: StatArgs = args::parse("stat", args)?;
        let mut script = Script::new()
            .raw(PRELUDE)
            .set("p", &a.path)
            .set("sum", a.checksum_algorithm.command())
            .raw("\n__tilde \"$p\"; p=$__o\n");
        script = if a.follow {
            script.raw("__kstL st \"$p\"\n")
        } else {
            script.raw(
                "__kst st \"$p\"\n\
                 if [ -L \"$p\" ]; then __kvc tgt readlink -- \"$p\"; __kvc real readlink -f -- \"$p\"; fi\n",
            )
        };
        // Printed as the record itself: `__acc` is all builtins, no fork needed.
        script = script.raw("printf 'acc='; __acc \"$p\"; printf '\\0'\n");
        if a.get_checksum {
            script = script.raw("__sumv \"$sum\" \"$p\"; __kv sum \"$__o\"\n");
        }
        let out = ctx.host.exec(&Cmd::script(script))?;
        let records = Records::parse(&out.stdout);
        let st = match records.stat("st") {
            StatResult::Present(st) => st,
            StatResult::Absent => {
                return Ok(Outcome::ok().with("stat", json!({"exists": false})));
            }
            StatResult::Error(msg) => return Ok(Outcome::failed(msg)),
        };

        let mut s = Map::new();
        s.insert("exists".into(), json!(true));
        s.insert("path".into(), json!(a.path));
        stat_keys(&st, &mut s);
        perm_flag_keys(st.perm, &mut s);
        let mut put = |k: &str, v: serde_json::Value| {
            s.insert(k.to_string(), v);
        };
        if let Some(blocks) = st.blocks {
            put("blocks", json!(blocks));
        }
        if let Some(block_size) = st.block_size {
            put("block_size", json!(block_size));
        }
        if let Some(rdev) = st.rdev {
            put("device_type", json!(rdev));
        }
        let access = records.get("acc").unwrap_or("---").as_bytes();
        put("readable", json!(access.first() == Some(&b'r')));
        put("writeable", json!(access.get(1) == Some(&b'w')));
        put("executable", json!(access.get(2) == Some(&b'x')));
        if st.kind == FileKind::Link {
            put("lnk_source", json!(records.get("real").unwrap_or_default()));
            put("lnk_target", json!(records.get("tgt").unwrap_or_default()));
        }
        if let Some(name) = &st.owner {
            put("pw_name", json!(name));
        }
        if let Some(name) = &st.group {
            put("gr_name", json!(name));
        }
        // Ansible only sums regular files (a link's target is not summed without `follow`).
        if st.kind == FileKind::File {
            if let Some(sum) = records.get("sum").filter(|s| !s.is_empty()) {
                put("checksum", json!(sum));
            }
        }
        Ok(Outcome::ok().with("stat", serde_json::Value::Object(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testkit;
    use crate::Value;

    fn run(args: Value, check: bool) -> Result<Outcome, ModuleError> {
        testkit::run(&Stat, args, check, true)
    }

    fn stat_of(outcome: &Outcome) -> &Map {
        match outcome.result.get("stat") {
            Some(Value::Object(m)) => m,
            other => panic!("no stat dict: {other:?}"),
        }
    }

    #[test]
    fn regular_file_with_hostile_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a 'b' \"c\" $(x) `y`\nz");
        std::fs::write(&path, b"x").expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .expect("chmod");
        let p = path.to_str().expect("utf-8");
        for check in [false, true] {
            let out = run(json!({"path": p}), check).expect("runs");
            assert!(!out.changed && !out.failed);
            let s = stat_of(&out);
            assert_eq!(s["exists"], json!(true));
            assert_eq!(s["path"], json!(p));
            assert_eq!(s["mode"], json!("0640"));
            assert_eq!(s["isreg"], json!(true));
            assert_eq!(s["islnk"], json!(false));
            assert_eq!(s["size"], json!(1));
            assert_eq!(
                s["checksum"],
                json!("11f6ad8ec52a2984abaafd7c3b516503785c2072")
            );
            assert_eq!(s["rusr"], json!(true));
            assert_eq!(s["roth"], json!(false));
            assert_eq!(s["readable"], json!(true));
            assert_eq!(s["executable"], json!(false));
            assert!(s["mtime"].as_f64().is_some_and(|t| t > 1.0e9));
            assert!(s.contains_key("pw_name") && s.contains_key("inode"));
        }
    }

    #[test]
    fn checksum_algorithm_and_opt_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        let p = path.to_str().expect("utf-8");
        let out = run(json!({"path": p, "checksum_algorithm": "md5"}), false).expect("runs");
        assert_eq!(
            stat_of(&out)["checksum"],
            json!("9dd4e461268c8034f5c8564e155c67a6")
        );
        let out = run(json!({"path": p, "get_checksum": "no"}), false).expect("runs");
        assert!(!stat_of(&out).contains_key("checksum"));
    }

    #[test]
    fn links_directories_and_missing_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        std::fs::write(&target, b"abc").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("target", &link).expect("symlink");
        let l = link.to_str().expect("utf-8");

        let out = run(json!({"path": l}), false).expect("runs");
        let s = stat_of(&out);
        assert_eq!(s["islnk"], json!(true));
        assert_eq!(s["isreg"], json!(false));
        assert_eq!(s["lnk_target"], json!("target"));
        assert_eq!(s["lnk_source"], json!(target.to_str().expect("utf-8")));
        assert!(!s.contains_key("checksum"));

        let out = run(json!({"path": l, "follow": true}), false).expect("runs");
        let s = stat_of(&out);
        assert_eq!(
            (s["islnk"].clone(), s["size"].clone()),
            (json!(false), json!(3))
        );

        let d = dir.path().to_str().expect("utf-8");
        let out = run(json!({"name": d}), false).expect("runs");
        assert_eq!(stat_of(&out)["isdir"], json!(true));

        let missing = format!("{d}/nope");
        let out = run(json!({"path": missing}), false).expect("runs");
        assert_eq!(out.result["stat"], json!({"exists": false}));
        assert!(!out.changed);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let err = run(json!({"path": "/x", "get_md5": true}), false).expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("Unsupported parameters for (stat) module: get_md5."),
            "{err}"
        );
        let err = run(json!({}), false).expect_err("refused");
        assert_eq!(err.to_string(), "missing required arguments: path");
    }

    #[test]
    fn a_leading_tilde_is_the_targets_home() {
        let home = std::env::var("HOME").expect("HOME");
        let dir = tempfile::tempdir_in(&home).expect("tempdir in HOME");
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        let name = dir
            .path()
            .file_name()
            .expect("name")
            .to_str()
            .expect("utf-8");
        let out = run(json!({"path": format!("~/{name}/f")}), false).expect("runs");
        assert_eq!(stat_of(&out)["exists"], json!(true));
        assert_eq!(stat_of(&out)["size"], json!(1));
    }
}
