//! The `git` module: clone and update a repository ON THE TARGET with its `git`, in one exec
//! (Ansible's module makes a dozen `git` calls from Python; here one script makes them).
//!
//! SSH access goes through `GIT_SSH_COMMAND`, built with every word quoted: `ssh`, the
//! user's `ssh_opts` (split like a shell would), `-o StrictHostKeyChecking=accept-new` or
//! `=no` for `accept_newhostkey`/`accept_hostkey`, `-o BatchMode=yes`, and `-i KEY -o
//! IdentitiesOnly=yes` for `key_file` (a leading `~/` is the target user's home).
//!
//! Results as Ansible's: `before` (null for a clone), `after`, `remote_url_changed` (when
//! updating), `changed` when `after` differs from `before`, a clone happened, local
//! modifications were discarded (`force`), submodules changed or the remote's URL was set.
//! Local modifications without `force` fail with Ansible's message, in check mode too.
//! Check mode changes nothing: `git ls-remote` says what `after` would be (for a tag, the
//! commit it points at; for a commit id, the id itself).
//!
//! Where we differ from Ansible, on purpose:
//! - After a fetch, whether `version` is a branch is decided from the fetched
//!   `refs/remotes/<remote>/<version>` (Ansible asks the server again with `ls-remote`).
//! - No `--diff` output (Ansible shows `git diff before after`).
//! - `archive`, `separate_git_dir` and `gpg_allowlist` are not supported.

use serde::Deserialize;

use crate::commands::support::python_shlex_split;
use crate::files::common::{Records, PRELUDE};
use crate::net::TEMP_DIR;
use crate::{args, quote, Cmd, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `git`.
pub struct Git;

fn yes() -> bool {
    true
}
fn head() -> String {
    "HEAD".into()
}
fn origin() -> String {
    "origin".into()
}

#[derive(Debug, Deserialize)]
struct GitArgs {
    dest: Option<String>,
    #[serde(alias = "name")]
    repo: String,
    #[serde(default = "head")]
    version: String,
    #[serde(default = "origin")]
    remote: String,
    refspec: Option<String>,
    reference: Option<String>,
    #[serde(default)]
    force: bool,
    depth: Option<u32>,
    #[serde(default = "yes")]
    clone: bool,
    #[serde(default = "yes")]
    update: bool,
    #[serde(default)]
    verify_commit: bool,
    #[serde(default, alias = "gpg_whitelist")]
    gpg_allowlist: Vec<String>,
    #[serde(default)]
    accept_hostkey: bool,
    #[serde(default)]
    accept_newhostkey: bool,
    key_file: Option<String>,
    ssh_opts: Option<String>,
    executable: Option<String>,
    #[serde(default)]
    bare: bool,
    #[serde(default = "yes")]
    recursive: bool,
    #[serde(default)]
    single_branch: bool,
    #[serde(default)]
    track_submodules: bool,
    umask: Option<Value>,
    archive: Option<String>,
    archive_prefix: Option<String>,
    separate_git_dir: Option<String>,
}

impl Module for Git {
    fn name(&self) -> &'static str {
        "git"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<GitArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: GitArgs = args::parse("git", args)?;
        if a.accept_hostkey && a.accept_newhostkey {
            return Err(ModuleError::Args(
                "parameters are mutually exclusive: accept_hostkey|accept_newhostkey".into(),
            ));
        }
        if a.archive_prefix.is_some() && a.archive.is_none() {
            return Err(ModuleError::Args(
                "missing parameter(s) required by 'archive_prefix': archive".into(),
            ));
        }
        for (name, given) in [
            ("archive", a.archive.is_some()),
            ("separate_git_dir", a.separate_git_dir.is_some()),
            ("gpg_allowlist", !a.gpg_allowlist.is_empty()),
        ] {
            if given {
                return Err(ModuleError::Args(format!(
                    "git: {name} is not supported by play"
                )));
            }
        }
        let umask = match &a.umask {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match u32::from_str_radix(s.trim(), 8) {
                Ok(bits) if bits <= 0o777 => Some(format!("{bits:03o}")),
                _ => return Ok(Outcome::failed("umask must be an octal integer")),
            },
            Some(_) => {
                return Ok(Outcome::failed(
                    "umask must be defined as a quoted octal integer",
                ))
            }
        };
        if a.dest.as_deref().is_none_or(str::is_empty) && a.clone {
            return Ok(Outcome::failed(
                "the destination directory must be specified unless clone=no",
            ));
        }
        let ssh_command = ssh_command(&a).map_err(ModuleError::Args)?;

        let mut s = Script::new().raw(PRELUDE);
        s = match &a.executable {
            Some(exe) => s
                .set("G", exe)
                .raw("\ncommand -v \"$G\" >/dev/null 2>&1 || { __kv fail exe; exit 1; }\n"),
            None => s.need("git").raw("G=git\n"),
        };
        if let Some(umask) = &umask {
            s = s.raw("umask").arg(umask).raw("\n");
        }
        s = s
            .set("GIT_SSH_COMMAND", &ssh_command)
            .raw("; export GIT_SSH_COMMAND; GIT_TERMINAL_PROMPT=0; export GIT_TERMINAL_PROMPT\n")
            .raw(TEMP_DIR)
            .set("repo", &a.repo)
            .raw(";")
            .set("d", a.dest.as_deref().unwrap_or(""))
            .raw(";")
            .set("v", &a.version)
            .raw(";")
            .set("rem", &a.remote)
            .raw(";")
            .set("refspec", a.refspec.as_deref().unwrap_or(""))
            .raw(";")
            .set("reference", a.reference.as_deref().unwrap_or(""))
            .raw(";")
            .set(
                "depth",
                a.depth
                    .filter(|d| *d > 0)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
            )
            .raw(";")
            .set("force", flag(a.force))
            .raw(";")
            .set("clone", flag(a.clone))
            .raw(";")
            .set("update", flag(a.update))
            .raw(";")
            .set("bare", flag(a.bare))
            .raw(";")
            .set("recursive", flag(a.recursive))
            .raw(";")
            .set("track", flag(a.track_submodules))
            .raw(";")
            .set("single", flag(a.single_branch))
            .raw(";")
            .set("verify", flag(a.verify_commit))
            .raw(";")
            .set("check", flag(ctx.check))
            .raw(SCRIPT);
        let out = ctx.host.exec(&Cmd::script(s))?;
        crate::tools::missing_tool(&out)?;
        let r = Records::parse(&out.stdout);
        Ok(outcome(&a, &r, &out.stderr_str()))
    }
}

fn flag(on: bool) -> &'static str {
    if on {
        "1"
    } else {
        ""
    }
}

/// `GIT_SSH_COMMAND` as Ansible builds it, every word quoted for the shell git runs it with.
fn ssh_command(a: &GitArgs) -> Result<String, String> {
    let mut opts = a.ssh_opts.clone().unwrap_or_default();
    let has = |opts: &str, s: &str| opts.contains(s);
    if a.accept_hostkey
        && !has(&opts, "-o StrictHostKeyChecking=no")
        && !has(&opts, "-o StrictHostKeyChecking=accept-new")
    {
        opts.push_str(" -o StrictHostKeyChecking=no");
    }
    if a.accept_newhostkey
        && !has(&opts, "-o StrictHostKeyChecking=no")
        && !has(&opts, "-o StrictHostKeyChecking=accept-new")
    {
        opts.push_str(" -o StrictHostKeyChecking=accept-new");
    }
    if !has(&opts, "BatchMode=yes") {
        opts.push_str(" -o BatchMode=yes");
    }
    let words = python_shlex_split(&opts).map_err(|e| format!("ssh_opts: {e}"))?;
    let mut cmd = String::from("ssh");
    for w in &words {
        cmd.push(' ');
        cmd.push_str(&quote(w));
    }
    if let Some(key) = a.key_file.as_deref().filter(|k| !k.is_empty()) {
        cmd.push_str(" -i ");
        match key.strip_prefix("~/") {
            Some(rest) => {
                cmd.push_str("\"$HOME\"/");
                cmd.push_str(&quote(rest));
            }
            None => cmd.push_str(&quote(key)),
        }
        if !words.iter().any(|w| w.contains("IdentitiesOnly=yes")) {
            cmd.push_str(" -o IdentitiesOnly=yes");
        }
    }
    Ok(cmd)
}

/// The whole task. Inputs (quoted assignments before it): `G` (git), `repo`, `d`, `v`
/// (version), `rem`, `refspec`, `reference`, `depth`, and the flags `force`, `clone`,
/// `update`, `bare`, `recursive`, `track`, `single`, `verify`, `check` ("1" or empty).
///
/// Records: `dest`, `repo` (as given to git), `mode` (`clone-check`, `noupdate`,
/// `update-check`, or nothing for a real run), `lsr` (`ls-remote` output), `hb` (the branch
/// HEAD follows), `before`, `after`, `cloned`, `mods`, `reset`, `rurl` (the remote's URL),
/// `urlchg`, `subchg`, `warn`; a failure records `fail` (what failed), `rc`, `out`, `err`, `cmd`.
const SCRIPT: &str = r#"
__run() {
  __l=$1; shift
  __ro=$("$@" 2>"$T/e"; echo ".$?"); __rc=${__ro##*.}; __ro=${__ro%.*}
  if [ "$__rc" != 0 ]; then
    __kv fail "$__l"; __kv rc "$__rc"; __kv out "$__ro"; __kvc err cat "$T/e"; __kv cmd "$*"; exit 1
  fi
}
__headbranch() {
  __hf=$rp/HEAD
  if "$G" -C "$d" branch --no-color -a 2>/dev/null | grep -q '^\* .*\(no branch\|detached from\|detached at\)'; then
    __hf=$rp/refs/remotes/$rem/HEAD
  fi
  __o=; [ -r "$__hf" ] && IFS= read -r __o <"$__hf"
  case $__o in *"refs/remotes/$rem"*) __o=${__o%%"refs/remotes/$rem"*}${__o#*"refs/remotes/$rem"};; esac
  __o=${__o##* }
  case $__o in */*/*) __o=${__o#*/}; __o=${__o#*/};; */*) __o=${__o#*/};; esac
}
__tilde "$repo"; case $__o in /*) repo=file://$__o;; esac
__kv repo "$repo"
if [ -n "$d" ]; then
  __tilde "$d"; d=$__o; case $d in /*) ;; *) d=$PWD/$d;; esac
  if [ -n "$bare" ]; then rp=$d
  elif [ -f "$d/.git" ]; then
    rp=$(sed -n 's/^gitdir: *//p' "$d/.git" | head -n 1)
    case $rp in /*) ;; '') __kv fail gitfile; exit 1;; *) rp=$d/$rp;; esac
  else rp=$d/.git; fi
  __kv dest "$d"
fi
if { [ -n "$d" ] && [ ! -e "$rp/config" ]; } || { [ -z "$d" ] && [ -z "$clone" ]; }; then
  if [ -n "$check" ] || [ -z "$clone" ]; then
    __run lsremote "$G" ls-remote -- "$repo"
    __kv lsr "$__ro"; __kv mode clone-check; exit 0
  fi
  case $d in */*) __p=${d%/*}; mkdir -p -- "${__p:-/}" 2>/dev/null;; esac
  __bt=
  if { [ -n "$depth" ] || [ -n "$single" ]; } && [ "$v" != HEAD ]; then
    __run lsremote "$G" ls-remote -- "$repo" "refs/heads/$v" "refs/tags/$v"
    case $__ro in *"$v"*) __bt=1;; esac
  fi
  if [ -n "$bare" ]; then set -- clone --bare; else set -- clone --origin "$rem"; fi
  if [ -n "$depth" ]; then
    if [ "$v" = HEAD ] || [ -n "$refspec" ]; then set -- "$@" --depth "$depth"
    elif [ -n "$__bt" ]; then set -- "$@" --depth "$depth" --branch "$v"
    else __kv warn depth; fi
  fi
  [ -z "$reference" ] || set -- "$@" --reference "$reference"
  if [ -n "$single" ]; then set -- "$@" --single-branch; [ -z "$__bt" ] || set -- "$@" --branch "$v"; fi
  __run clone "$G" "$@" -- "$repo" "$d"
  if [ -n "$bare" ] && [ "$rem" != origin ]; then __run clone "$G" -C "$d" remote add -- "$rem" "$repo"; fi
  if [ -n "$refspec" ]; then
    set -- fetch; [ -z "$depth" ] || set -- "$@" --depth "$depth"
    __run clone "$G" -C "$d" "$@" -- "$rem" "$refspec"
  fi
  __kv cloned 1
elif [ -z "$update" ]; then
  __kvc before "$G" -C "$d" rev-parse HEAD
  __kv mode noupdate; exit 0
else
  __mods=
  if [ -z "$bare" ]; then
    __run status "$G" -C "$d" status --porcelain
    if printf '%s\n' "$__ro" | grep -v '^??' | grep -q .; then __mods=1; __kv mods 1; fi
  fi
  __kvc before "$G" -C "$d" rev-parse HEAD
  if [ -n "$__mods" ]; then
    if [ -z "$force" ]; then __kv fail localmods; exit 1; fi
    if [ -z "$check" ]; then __run reset "$G" -C "$d" reset --hard HEAD; __kv reset 1; fi
  fi
  __url=$("$G" -C "$d" ls-remote --get-url "$rem" 2>/dev/null) || __url=
  __kv rurl "$__url"
  if [ -n "$check" ]; then
    __run lsremote "$G" -C "$d" ls-remote -- "$rem"
    __kv lsr "$__ro"; __headbranch; __kv hb "$__o"; __kv mode update-check; exit 0
  fi
  if [ "$__url" != "$repo" ]; then
    __run seturl "$G" -C "$d" remote set-url -- "$rem" "$repo"
    [ -z "$__url" ] || __kv urlchg 1
  fi
  set -- fetch; __rs=
  if [ -n "$depth" ]; then
    __headbranch; __cur=$__o
    if [ -n "$refspec" ]; then __rs=1; set -- "$@" --depth "$depth" -- "$rem" "$refspec"
    elif [ "$v" = HEAD ]; then __rs=1; set -- "$@" --depth "$depth" -- "$rem" "$__cur"
    else
      __run lsremote "$G" -C "$d" ls-remote -- "$repo" "refs/heads/$v"
      case $__ro in
      *"$v"*)
        __rs=1; set -- "$@" --depth "$depth" -- "$rem"
        [ "$__cur" = "$v" ] || set -- "$@" "+refs/heads/$v:refs/heads/$v"
        set -- "$@" "+refs/heads/$v:refs/remotes/$rem/$v";;
      *)
        __run lsremote "$G" -C "$d" ls-remote -- "$repo" "refs/tags/$v"
        case $__ro in *"$v"*) __rs=1; set -- "$@" --depth "$depth" -- "$rem" "+refs/tags/$v:refs/tags/$v";; esac;;
      esac
    fi
  fi
  if [ -z "$__rs" ]; then
    if [ -n "$bare" ]; then
      set -- "$@" ${force:+--force} -- "$rem" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
    else
      set -- "$@" --tags ${force:+--force} -- "$rem"
    fi
    [ -z "$refspec" ] || set -- "$@" "$refspec"
  fi
  __run fetch "$G" -C "$d" "$@"
fi
if [ -z "$bare" ]; then
  if [ "$v" = HEAD ]; then
    __headbranch; __b=$__o; __kv hb "$__b"
    __run checkoutb "$G" -C "$d" checkout --force "$__b" --
    __run checkoutb "$G" -C "$d" reset --hard "$rem/$__b" --
  else
    __isrb=
    if "$G" -C "$d" show-ref --verify --quiet "refs/remotes/$rem/$v"; then __isrb=1
    elif [ -n "$depth" ] && "$G" -C "$d" ls-remote --exit-code -h -- "$rem" "refs/heads/$v" >/dev/null 2>&1; then __isrb=1; fi
    if [ -n "$__isrb" ]; then
      __islb=; "$G" -C "$d" show-ref --verify --quiet "refs/heads/$v" && __islb=1
      if [ -n "$depth" ] && [ -z "$__islb" ]; then
        __run fetchbranch "$G" -C "$d" fetch "--depth=$depth" -- "$rem" "+refs/heads/$v:refs/heads/$v" "+refs/heads/$v:refs/remotes/$rem/$v"
        __islb=
      fi
      if [ -z "$__islb" ]; then
        __run checkout "$G" -C "$d" checkout --track -b "$v" "$rem/$v" --
      else
        __run checkoutb "$G" -C "$d" checkout --force "$v" --
        __run checkout "$G" -C "$d" reset --hard "$rem/$v" --
      fi
    else
      __run checkout "$G" -C "$d" checkout --force "$v" --
    fi
  fi
  if [ -n "$verify" ]; then
    if [ "$("$G" -C "$d" cat-file -t "$v" 2>/dev/null)" = tag ]; then
      __run verify "$G" -C "$d" verify-tag -- "$v"
    else
      __run verify "$G" -C "$d" verify-commit -- "$v"
    fi
  fi
  if [ -n "$recursive" ] && [ -f "$d/.gitmodules" ]; then
    __sub=
    for __p in $("$G" -C "$d" config -f .gitmodules --get-regexp '\.path$' | awk '{print $2}'); do
      [ -e "$d/$__p/.git" ] || __sub=1
    done
    if [ -z "$__sub" ]; then
      __run submodules "$G" -C "$d" submodule foreach "$G" fetch
      if [ -n "$track" ]; then
        __s1=$("$G" -C "$d" submodule foreach "$G" rev-parse HEAD 2>/dev/null)
        __s2=$("$G" -C "$d" submodule foreach "$G" rev-parse "$rem/master" 2>/dev/null)
        [ "$__s1" = "$__s2" ] || __sub=1
      elif "$G" -C "$d" submodule status | grep -q '^[^ ]'; then __sub=1; fi
    fi
    if [ -n "$__sub" ]; then
      __kv subchg 1
      __run submodules "$G" -C "$d" submodule sync
      set -- submodule update --init --recursive
      [ -z "$track" ] || set -- "$@" --remote
      [ -z "$force" ] || set -- "$@" --force
      __run submodules "$G" -C "$d" "$@"
    fi
  fi
fi
__kvc after "$G" -C "$d" rev-parse HEAD
"#;

/// Ansible's result from the script's records.
fn outcome(a: &GitArgs, r: &Records, stderr: &str) -> Outcome {
    let dest = r
        .get("dest")
        .unwrap_or(a.dest.as_deref().unwrap_or(""))
        .to_string();
    let repo = r.get("repo").unwrap_or(&a.repo).to_string();
    let before = r
        .get("before")
        .map(|b| Value::String(b.trim_end().to_string()));
    if let Some(what) = r.get("fail") {
        let before_value = before.clone().unwrap_or(Value::Null);
        let err = r.get("err").unwrap_or_default().trim_end().to_string();
        let out = r.get("out").unwrap_or_default().to_string();
        let hb = r.get("hb").unwrap_or_default();
        let msg = match what {
            "localmods" => {
                return Outcome::failed(format!(
                    "Local modifications exist in the destination: {dest} (force=no)."
                ))
                .with("before", before_value)
            }
            "tmpdir" => format!(
                "could not create a temporary directory: {}",
                stderr.trim()
            ),
            "exe" => format!(
                "Failed to find required executable \"{}\"",
                a.executable.as_deref().unwrap_or("git")
            ),
            "gitfile" => "Current repo does not have a valid reference to a separate Git dir or it refers to the invalid path".into(),
            "fetch" => format!("Failed to download remote objects and refs: {out} {err}"),
            "seturl" => format!("Failed to set a new url {repo} for {}: {out} {err}", a.remote),
            "checkoutb" => format!("Failed to checkout branch {}", if hb.is_empty() { &a.version } else { hb }),
            "checkout" => format!("Failed to checkout {}", a.version),
            "fetchbranch" => format!("Failed to fetch branch from remote: {}", a.version),
            "verify" => format!("Failed to verify GPG signature of commit/tag \"{}\"", a.version),
            "submodules" => format!("Failed to init/update submodules: {out}{err}"),
            _ => err.clone(),
        };
        let mut o = Outcome::failed(msg);
        if let Some(rc) = r.get("rc").and_then(|rc| rc.parse::<i64>().ok()) {
            o = o
                .with("rc", rc)
                .with("stdout", out.as_str())
                .with("stderr", r.get("err").unwrap_or_default())
                .with("cmd", r.get("cmd").unwrap_or_default());
        }
        return o;
    }
    let mut o = Outcome::ok();
    if r.get("warn") == Some("depth") {
        o = o.with(
            "warnings",
            Value::Array(vec![Value::String(
                "Ignoring depth argument. Shallow clones are only available for HEAD, branches, tags or in combination with refspec.".into(),
            )]),
        );
    }
    match r.get("mode") {
        Some("clone-check") => {
            let lsr = r.get("lsr").unwrap_or_default();
            return match remote_head(lsr, &a.version, None) {
                Some(after) => o_changed(o, true)
                    .with("before", Value::Null)
                    .with("after", after),
                None => Outcome::failed(format!(
                    "Could not determine remote revision for {}",
                    a.version
                )),
            };
        }
        Some("noupdate") => {
            let b = before.unwrap_or(Value::String(String::new()));
            return o.with("before", b.clone()).with("after", b);
        }
        Some("update-check") => {
            let lsr = r.get("lsr").unwrap_or_default();
            let rurl = r.get("rurl").unwrap_or_default();
            let url_changed = !rurl.is_empty() && rurl != repo;
            return match remote_head(lsr, &a.version, r.get("hb")) {
                Some(after) => {
                    let changed = before.as_ref().and_then(Value::as_str) != Some(after.as_str())
                        || url_changed;
                    o_changed(o, changed)
                        .with("before", before.unwrap_or(Value::Null))
                        .with("remote_url_changed", url_changed)
                        .with("after", after)
                }
                None => Outcome::failed(format!(
                    "Could not determine remote revision for {}",
                    a.version
                )),
            };
        }
        _ => {}
    }
    let after = r.get("after").unwrap_or_default().trim_end().to_string();
    let cloned = r.get("cloned").is_some();
    let url_changed = r.get("urlchg").is_some();
    let sub_changed = r.get("subchg").is_some();
    let mods = r.get("reset").is_some();
    let before_str = before.as_ref().and_then(Value::as_str).map(str::to_string);
    let changed = cloned
        || before_str.as_deref() != Some(after.as_str())
        || mods
        || sub_changed
        || url_changed;
    o = o_changed(o, changed).with("before", before.unwrap_or(Value::Null));
    if !cloned {
        o = o.with("remote_url_changed", url_changed);
    }
    if sub_changed {
        o = o.with("submodules_changed", true);
    }
    if mods {
        o.msg = Some(format!(
            "Local modifications exist in the destination: {dest}"
        ));
    }
    o.with("after", after)
}

fn o_changed(mut o: Outcome, changed: bool) -> Outcome {
    o.changed = changed;
    o
}

/// Ansible's `get_remote_head` over an `ls-remote` listing: HEAD (or the branch HEAD follows,
/// `head_branch`), a branch, a tag (the commit an annotated tag points at), else `version`
/// itself (a commit id).
fn remote_head(listing: &str, version: &str, head_branch: Option<&str>) -> Option<String> {
    let refs: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once('\t')).collect();
    let find = |name: &str| {
        refs.iter()
            .find(|(_, r)| *r == name)
            .map(|(sha, _)| sha.to_string())
    };
    if version == "HEAD" {
        return match head_branch {
            Some(b) => find(&format!("refs/heads/{b}")),
            None => find("HEAD"),
        };
    }
    if let Some(sha) = find(&format!("refs/heads/{version}")) {
        return Some(sha);
    }
    let peeled = find(&format!("refs/tags/{version}^{{}}"));
    let tag = find(&format!("refs/tags/{version}"));
    if peeled.is_some() || tag.is_some() {
        return peeled.or(tag);
    }
    Some(version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn git_args(v: Value) -> GitArgs {
        let Value::Object(m) = v else {
            panic!("object")
        };
        args::parse("git", &m).expect("parses")
    }

    #[test]
    fn ssh_commands_quote_keys_and_options() {
        let a = git_args(json!({
            "repo": "ssh://h/r", "dest": "/d", "key_file": "/k e'y",
            "accept_newhostkey": true, "ssh_opts": "-o UserKnownHostsFile='/a b/kh'",
        }));
        assert_eq!(
            ssh_command(&a).expect("builds"),
            "ssh -o 'UserKnownHostsFile=/a b/kh' -o 'StrictHostKeyChecking=accept-new' -o 'BatchMode=yes' -i \"/k e'y\" -o IdentitiesOnly=yes"
        );
        let a = git_args(
            json!({"repo": "r", "dest": "/d", "key_file": "~/.ssh/id", "accept_hostkey": true}),
        );
        assert_eq!(
            ssh_command(&a).expect("builds"),
            "ssh -o 'StrictHostKeyChecking=no' -o 'BatchMode=yes' -i \"$HOME\"/.ssh/id -o IdentitiesOnly=yes"
        );
    }

    #[test]
    fn remote_heads_like_ansible() {
        let lsr = "aaa\tHEAD\naaa\trefs/heads/main\nbbb\trefs/heads/dev\nccc\trefs/tags/v1\nddd\trefs/tags/v1^{}\neee\trefs/tags/v2";
        assert_eq!(remote_head(lsr, "HEAD", None).as_deref(), Some("aaa"));
        assert_eq!(
            remote_head(lsr, "HEAD", Some("dev")).as_deref(),
            Some("bbb")
        );
        assert_eq!(remote_head(lsr, "dev", None).as_deref(), Some("bbb"));
        assert_eq!(remote_head(lsr, "v1", None).as_deref(), Some("ddd"));
        assert_eq!(remote_head(lsr, "v2", None).as_deref(), Some("eee"));
        assert_eq!(
            remote_head(lsr, "1234abc", None).as_deref(),
            Some("1234abc")
        );
        assert_eq!(remote_head("", "HEAD", None), None);
    }
}

#[cfg(test)]
mod repo_tests {
    use super::*;
    use crate::local::LocalHost;
    use serde_json::json;
    use std::path::Path;
    use std::process::Command;

    fn run(check: bool, args: Value) -> Map {
        let mut host = LocalHost::new("localhost");
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check,
            diff: false,
            facts: &facts,
        };
        let Value::Object(map) = args else {
            panic!("object")
        };
        match Git.run(&mut ctx, &map) {
            Ok(o) => o.to_result(),
            Err(e) => {
                let mut m = Map::new();
                m.insert("error".into(), Value::String(e.to_string()));
                m
            }
        }
    }

    fn git(dir: &Path, args: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "git -c user.name=t -c user.email=t@e -c init.defaultBranch=main {args}"
            ))
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A work repository with one commit, tagged v1 (annotated), and a branch `dev`.
    fn origin(dir: &Path) -> std::path::PathBuf {
        let src = dir.join("origin repo");
        std::fs::create_dir(&src).expect("mkdir");
        git(&src, "init -q");
        std::fs::write(src.join("README"), "one\n").expect("write");
        git(
            &src,
            "add README && git -c user.name=t -c user.email=t@e commit -q -m one",
        );
        git(&src, "tag -a v1 -m v1 && git branch dev");
        src
    }

    #[test]
    fn clone_update_pin_and_local_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = origin(dir.path());
        let repo = src.to_str().expect("utf-8");
        let dest = dir.path().join("checkout 'x' $(y)");
        let d = dest.to_str().expect("utf-8");
        let first = git(&src, "rev-parse HEAD");
        let args = json!({"repo": repo, "dest": d});

        let r = run(true, args.clone());
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(r["before"], Value::Null);
        assert_eq!(r["after"], first);
        assert!(!dest.exists(), "check mode cloned");

        let r = run(false, args.clone());
        assert_eq!(
            (
                r["changed"].clone(),
                r["before"].clone(),
                r["after"].clone()
            ),
            (json!(true), Value::Null, json!(first)),
            "{r:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("README")).expect("read"),
            "one\n"
        );
        let r = run(false, args.clone());
        assert_eq!(r["changed"], false, "{r:?}");
        assert_eq!(r["remote_url_changed"], false);
        assert_eq!(r["before"], first);

        std::fs::write(src.join("README"), "two\n").expect("write");
        git(&src, "commit -q -am two");
        let second = git(&src, "rev-parse HEAD");
        let r = run(true, args.clone());
        assert_eq!(
            (r["changed"].clone(), r["after"].clone()),
            (json!(true), json!(second)),
            "{r:?}"
        );
        assert_eq!(git(&dest, "rev-parse HEAD"), first, "check mode updated");
        let r = run(false, args.clone());
        assert_eq!(
            (
                r["changed"].clone(),
                r["before"].clone(),
                r["after"].clone()
            ),
            (json!(true), json!(first), json!(second)),
            "{r:?}"
        );

        // Pinned to the annotated tag: the commit it points at.
        let pinned = json!({"repo": repo, "dest": d, "version": "v1"});
        let r = run(true, pinned.clone());
        assert_eq!(
            (r["changed"].clone(), r["after"].clone()),
            (json!(true), json!(first)),
            "{r:?}"
        );
        let r = run(false, pinned.clone());
        assert_eq!(
            (r["changed"].clone(), r["after"].clone()),
            (json!(true), json!(first)),
            "{r:?}"
        );
        let r = run(false, pinned.clone());
        assert_eq!(r["changed"], false, "{r:?}");
        // A branch.
        let r = run(false, json!({"repo": repo, "dest": d, "version": "dev"}));
        assert_eq!(
            (r["changed"].clone(), r["after"].clone()),
            (json!(false), json!(first)),
            "{r:?}"
        );
        assert_eq!(git(&dest, "rev-parse --abbrev-ref HEAD"), "dev");

        // Local modifications: refused without force (in check mode too), discarded with it.
        std::fs::write(dest.join("README"), "local\n").expect("write");
        for check in [true, false] {
            let r = run(check, args.clone());
            assert_eq!(r["failed"], true, "{r:?}");
            assert_eq!(
                r["msg"],
                format!("Local modifications exist in the destination: {d} (force=no).")
            );
            assert_eq!(r["before"], first);
        }
        // HEAD is the branch checked out (dev), as in Ansible.
        let r = run(false, json!({"repo": repo, "dest": d, "force": true}));
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(r["after"], first);
        assert_eq!(
            r["msg"],
            format!("Local modifications exist in the destination: {d}")
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("README")).expect("read"),
            "one\n"
        );
        let r = run(false, json!({"repo": repo, "dest": d, "version": "main"}));
        assert_eq!(
            (r["changed"].clone(), r["after"].clone()),
            (json!(true), json!(second)),
            "{r:?}"
        );

        // update: no only reports.
        let r = run(
            false,
            json!({"repo": repo, "dest": d, "update": false, "version": "v1"}),
        );
        assert_eq!(
            (r["changed"].clone(), r["after"].clone()),
            (json!(false), json!(second)),
            "{r:?}"
        );
    }

    #[test]
    fn bare_shallow_remote_url_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = origin(dir.path());
        let repo = src.to_str().expect("utf-8");
        let bare = dir.path().join("bare.git");
        let b = bare.to_str().expect("utf-8");
        let r = run(false, json!({"repo": repo, "dest": b, "bare": true}));
        assert_eq!(r["changed"], true, "{r:?}");
        assert!(bare.join("HEAD").exists());
        let r = run(false, json!({"repo": repo, "dest": b, "bare": true}));
        assert_eq!(r["changed"], false, "{r:?}");

        let shallow = dir.path().join("shallow");
        let s = shallow.to_str().expect("utf-8");
        let r = run(
            false,
            json!({"repo": format!("file://{repo}"), "dest": s, "depth": 1, "version": "dev"}),
        );
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(git(&shallow, "rev-parse --abbrev-ref HEAD"), "dev");
        // Another URL for the same remote: set, and reported.
        let r = run(false, json!({"repo": b, "dest": s, "version": "dev"}));
        assert_eq!(r["remote_url_changed"], true, "{r:?}");
        assert_eq!(r["changed"], true);
        assert_eq!(
            git(&shallow, "remote get-url origin"),
            format!("file://{b}")
        );

        let r = run(
            false,
            json!({"repo": format!("{}/missing", dir.path().display()), "dest": format!("{}/m", dir.path().display())}),
        );
        assert_eq!(r["failed"], true);
        assert!(
            r["msg"]
                .as_str()
                .is_some_and(|m| m.contains("does not exist")
                    || m.contains("not appear to be a git repository")),
            "{r:?}"
        );
        let r = run(
            false,
            json!({"repo": repo, "dest": format!("{}/c", dir.path().display()), "version": "nope"}),
        );
        assert_eq!(r["msg"], "Failed to checkout nope", "{r:?}");
        let r = run(false, json!({"repo": repo}));
        assert_eq!(
            r["msg"],
            "the destination directory must be specified unless clone=no"
        );
        let r = run(
            false,
            json!({"repo": repo, "dest": "/x", "accept_hostkey": true, "accept_newhostkey": true}),
        );
        assert_eq!(
            r["error"],
            "parameters are mutually exclusive: accept_hostkey|accept_newhostkey"
        );
    }
}

#[cfg(test)]
mod submodule_tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::{FileAttrs, Host, HostError, Output};
    use serde_json::json;
    use std::process::Command;

    /// LocalHost with git allowed to fetch submodules over file:// (git refuses by default).
    struct FileTransport(LocalHost);
    impl Host for FileTransport {
        fn name(&self) -> &str {
            "localhost"
        }
        fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
            self.0.exec(
                &cmd.clone()
                    .env("GIT_CONFIG_COUNT", "1")
                    .env("GIT_CONFIG_KEY_0", "protocol.file.allow")
                    .env("GIT_CONFIG_VALUE_0", "always"),
            )
        }
        fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError> {
            self.0.put(data, dest, attrs)
        }
        fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
            self.0.get(path)
        }
    }

    fn run(args: Value) -> Map {
        let mut host = FileTransport(LocalHost::new("localhost"));
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut host,
            check: false,
            diff: false,
            facts: &facts,
        };
        let Value::Object(map) = args else {
            panic!("object")
        };
        Git.run(&mut ctx, &map).expect("runs").to_result()
    }

    #[test]
    fn submodules_are_initialised_and_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = "set -e; g='git -c user.name=t -c user.email=t@e -c init.defaultBranch=main -c protocol.file.allow=always'
            $g init -q lib; echo v1 > lib/f; $g -C lib add f; $g -C lib commit -q -m v1
            $g init -q app; echo app > app/a; $g -C app add a
            $g -C app submodule -q add \"$PWD/lib\" lib; $g -C app commit -q -m app";
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let app = dir.path().join("app");
        let dest = dir.path().join("clone");
        let args =
            json!({"repo": app.to_str().expect("utf-8"), "dest": dest.to_str().expect("utf-8")});
        let r = run(args.clone());
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(r["submodules_changed"], true, "{r:?}");
        assert_eq!(
            std::fs::read_to_string(dest.join("lib/f")).expect("submodule"),
            "v1\n"
        );
        let r = run(args.clone());
        assert_eq!(r["changed"], false, "{r:?}");
        assert_eq!(r.get("submodules_changed"), None);
        let r = run(
            json!({"repo": app.to_str().expect("utf-8"), "dest": dest.to_str().expect("utf-8"), "recursive": false}),
        );
        assert_eq!(r["changed"], false, "{r:?}");
    }
}
