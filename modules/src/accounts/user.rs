//! The `user` module: an account present (uid, groups, shell, home, comment, password hash,
//! expiry, lock, SSH key) or absent, with `useradd`/`usermod`/`userdel`, following the
//! decisions of Ansible's `user.py` for Linux.
//!
//! Round trips: one exec reads the account (`getent passwd`), its shadow entry, every group
//! (`getent group`), whether the home exists and, with `generate_ssh_key`, the key's files
//! and fingerprint; when something is to change, one more exec makes every change
//! (`useradd`/`usermod`, password, `chage`, missing home, `ssh-keygen`) and reads the account
//! again for the result.
//!
//! The password hash never appears in a command line, a script or the output: it goes on
//! the scripts' stdin (marked secret), the probe compares it with the shadow entry on the
//! target and says only whether they match, and the change sets it with `chpasswd -e` (where
//! Ansible passes it to `useradd -p`/`usermod -p`, visible in the process list).
//!
//! Deviations: a home whose parent does not exist is made by `mkdir -p` of the parent and
//! `useradd -m` (Ansible copies the skeleton itself, then runs `useradd -m`, which warns);
//! group lists keep the order given (Ansible's follows a Python set); `usermod` is assumed to
//! know `-a` (every shadow-utils since 2006); `home`, `shell` and `skeleton` are taken
//! literally (Ansible expands `~` and `$VAR` on the target); `local`, `ssh_key_passphrase`
//! and `password_expire_account_disable` are not supported; a password or name holding `:`
//! or a line break is refused before anything runs (`useradd`/`usermod` refuse it too).

use serde::Deserialize;

use super::{run_script, step_stderr, GroupDb, Passwd, STEPS};
use crate::files::common::{Records, PRELUDE};
use crate::{args, Ctx, Map, Module, ModuleError, Outcome, Script, Value};

/// `user`.
pub struct User;

#[derive(Debug, Deserialize)]
struct UserArgs {
    #[serde(alias = "user")]
    name: String,
    state: Option<State>,
    uid: Option<i64>,
    #[serde(default)]
    non_unique: bool,
    group: Option<String>,
    groups: Option<Vec<String>>,
    comment: Option<String>,
    home: Option<String>,
    shell: Option<String>,
    password: Option<String>,
    /// BSD login classes: accepted and ignored on Linux, as Ansible does.
    #[allow(dead_code)]
    login_class: Option<String>,
    password_expire_max: Option<i64>,
    password_expire_min: Option<i64>,
    password_expire_warn: Option<i64>,
    /// macOS only: accepted and ignored.
    #[allow(dead_code)]
    hidden: Option<bool>,
    seuser: Option<String>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    remove: bool,
    #[serde(default = "yes", alias = "createhome")]
    create_home: bool,
    skeleton: Option<String>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    move_home: bool,
    #[serde(default)]
    append: bool,
    generate_ssh_key: Option<bool>,
    #[serde(default)]
    ssh_key_bits: i64,
    ssh_key_type: Option<String>,
    ssh_key_file: Option<String>,
    ssh_key_comment: Option<String>,
    update_password: Option<UpdatePassword>,
    expires: Option<f64>,
    password_lock: Option<bool>,
    #[serde(default)]
    local: bool,
    umask: Option<String>,
    uid_min: Option<i64>,
    uid_max: Option<i64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum UpdatePassword {
    Always,
    OnCreate,
}

/// Shell functions of the probe and change scripts. Inputs (quoted assignments before it):
/// `un` name, `uh` the `home` argument (may be empty), `upw` (1: compare the hash on stdin),
/// `uk` the SSH key file argument (empty: no key wanted), `kt` type, `kb` bits, `kc` comment
/// (`kdc` 1: the default one), `kf` (1: force).
const USER_SH: &str = r#"
u_passwd() {
  u_e=
  if u_x=$(getent passwd "$un" 2>/dev/null); then
    case $u_x in "$un":*) u_e=${u_x%%"$__nl"*}; __kv pw "$u_e";; esac
  fi
  if [ -n "$u_e" ]; then
    u_r=${u_e#*:*:}; u_uid=${u_r%%:*}; u_r=${u_r#*:}; u_gid=${u_r%%:*}
    u_home=${u_e#*:*:*:*:*:}; u_home=${u_home%:*}
  fi
}
u_shadow() {
  u_s=
  if u_x=$(getent shadow "$un" 2>/dev/null); then
    case $u_x in "$un":*) u_s=${u_x%%"$__nl"*};; esac
  fi
  u_x=
}
u_keypath() {
  __tilde "$uk"
  case $__o in
  /*) u_kf=$__o; u_kabs=1 ;;
  *) u_kabs=; case $u_home in */) u_kf=$u_home$__o ;; *) u_kf=$u_home/$__o ;; esac ;;
  esac
  case $u_kf in */*) u_kd=${u_kf%/*}; u_kd=${u_kd:-/} ;; *) u_kd=. ;; esac
}
u_keyinfo() {
  u_keypath; __kv kf "$u_kf"
  [ -e "$u_kd" ] && __kv kd 1
  [ -e "$u_kf.pub" ] && __kv px 1
  if [ -e "$u_kf" ]; then
    __kv kx 1
    if u_x=$(ssh-keygen -l -f "$u_kf" 2>/dev/null); then __kv fp "$u_x"
    else __kv fp "$(ssh-keygen -l -f "$u_kf" 2>&1 >/dev/null)"; fi
  fi
  if [ -r "$u_kf.pub" ]; then __kv pub "$(cat -- "$u_kf.pub")"; fi
}
u_strip() { __o=$1; while :; do case $__o in '!'*) __o=${__o#?} ;; *) break ;; esac; done; }
u_probe() {
  u_passwd
  if [ -n "$u_e" ]; then
    u_shadow
    u_h=${u_s#*:}; u_h=${u_h%%:*}
    [ -n "$u_s" ] && __kv sp "${u_s#*:*:}"
    u_p=${u_e#*:}; u_p=${u_p%%:*}
    [ ${#u_p} -gt 1 ] || u_p=$u_h
    case $u_p in '!'*) __kv locked 1 ;; esac
    if [ -n "$upw" ]; then
      u_w=; IFS= read -r u_w || :
      u_strip "$u_w"; u_w=$__o; u_strip "$u_p"
      if [ "$__o" = "$u_w" ]; then __kv pwsame 1; fi
      __o=; u_w=
    fi
    u_s=; u_h=; u_p=
    [ -e "${uh:-$u_home}" ] && __kv hx 1
    if [ -n "$uk" ]; then u_keyinfo; fi
  fi
  __kv grp "$(getent group 2>/dev/null)"
}
u_run() {
  __step "$1"; shift
  u_o=$("$@" </dev/null); u_rc=$?
  __kv rc "$u_rc"; __kv out "$u_o"
  return $u_rc
}
u_chage() {
  u_shadow; [ -n "$u_s" ] || return 0
  u_r=${u_s#*:*:*:}; u_s=
  c_min=${u_r%%:*}; u_r=${u_r#*:}; c_max=${u_r%%:*}; u_r=${u_r#*:}; c_warn=${u_r%%:*}
  set --
  if [ -n "$w_min" ] && [ "$w_min" != "${c_min:--1}" ]; then set -- "$@" -m "$w_min"; fi
  if [ -n "$w_max" ] && [ "$w_max" != "${c_max:--1}" ]; then set -- "$@" -M "$w_max"; fi
  if [ -n "$w_warn" ] && [ "$w_warn" != "${c_warn:--1}" ]; then set -- "$@" -W "$w_warn"; fi
  [ $# -gt 0 ] || return 0
  __step chage; chage "$@" "$un" </dev/null; u_rc=$?
  __kv chage "$u_rc"; return $u_rc
}
u_mkhome() {
  [ -e "$1" ] && return 0
  __step mkhome
  u_sk=${2:-/etc/skel}
  if [ -e "$u_sk" ] && [ "$u_sk" != /dev/null ]; then
    case $1 in */*) mkdir -p -- "${1%/*}/" ;; esac
    cp -RPp -- "$u_sk" "$1" || return 1
  else
    mkdir -p -- "$1" || return 1
  fi
  if [ -r /etc/login.defs ]; then
    u_m=755
    while read -r u_k u_v u_x; do
      case $u_k:$u_v:$u_x in
      HOME_MODE:*[!0-9]*:|HOME_MODE::) ;;
      HOME_MODE:*:) u_m=$u_v; break ;;
      UMASK:*[!0-9]*:|UMASK::) ;;
      UMASK:*:) u_m=$(printf '%o' $(( 0777 & ~0$u_v ))) ;;
      esac
    done </etc/login.defs
    chmod "$u_m" "$1" || return 1
  fi
  chown -R "$u_uid:$u_gid" -- "$1" || return 1
  __kv mkhome 1
}
u_keygen() {
  u_keypath
  if [ -z "$u_kabs" ] && [ ! -e "$u_home" ]; then __kv keyfail "User $un home directory does not exist"; return 1; fi
  if [ ! -e "$u_kd" ]; then
    if ! u_x=$(mkdir -m 700 -- "$u_kd" 2>&1) || ! u_x=$(chown "$u_uid:$u_gid" -- "$u_kd" 2>&1); then
      __kv keyfail "Failed to create $u_kd: ${u_x#*: }"; return 1
    fi
  fi
  u_ov=
  if [ -e "$u_kf" ]; then
    if [ -n "$kf" ]; then __kv warn "Overwriting existing ssh key private file \"$u_kf\""; u_ov=y
    else __kv warn "Found existing ssh key private file \"$u_kf\", no force, so skipping ssh-keygen generation"; return 0; fi
  fi
  if [ -e "$u_kf.pub" ]; then
    if [ -n "$kf" ]; then __kv warn "Overwriting existing ssh key public file \"$u_kf.pub\""; rm -f -- "$u_kf.pub"
    else __kv warn "Found existing ssh key public file \"$u_kf.pub\", no force, so skipping ssh-keygen generation"; return 0; fi
  fi
  set -- -t "$kt"
  [ "$kb" -gt 0 ] && set -- "$@" -b "$kb"
  if [ -n "$kdc" ]; then kc="ansible-generated on $(uname -n)"; fi
  set -- "$@" -C "$kc" -f "$u_kf" -N ''
  __step keygen
  if [ -n "$u_ov" ]; then u_o=$(echo y | ssh-keygen "$@"); else u_o=$(ssh-keygen "$@" </dev/null); fi
  u_rc=$?; __kv keygen "$u_rc"
  [ "$u_rc" = 0 ] || return 1
  chown "$u_uid:$u_gid" -- "$u_kf" "$u_kf.pub"
}
u_report() {
  u_passwd
  if [ -n "$u_e" ] && [ -n "$uk" ]; then u_keyinfo; fi
}
"#;

/// The account as the probe (or the change's report) found it.
#[derive(Debug, Default)]
struct Found {
    pw: Option<Passwd>,
    /// `lastchg:min:max:warn:inactive:expire:reserved` (no shadow entry readable: `None`).
    shadow: Option<Vec<String>>,
    locked: bool,
    password_same: bool,
    home_exists: bool,
    groups: GroupDb,
    key: KeyInfo,
}

#[derive(Debug, Default)]
struct KeyInfo {
    path: Option<String>,
    dir_exists: bool,
    exists: bool,
    pub_exists: bool,
    fingerprint: Option<String>,
    public: Option<String>,
}

impl Found {
    fn parse(records: &Records) -> Found {
        Found {
            pw: records.get("pw").and_then(Passwd::parse),
            shadow: records
                .get("sp")
                .map(|s| s.split(':').map(str::to_string).collect()),
            locked: records.get("locked").is_some(),
            password_same: records.get("pwsame").is_some(),
            home_exists: records.get("hx").is_some(),
            groups: GroupDb::parse(records.get("grp").unwrap_or_default()),
            key: KeyInfo {
                path: records.get("kf").map(str::to_string),
                dir_exists: records.get("kd").is_some(),
                exists: records.get("kx").is_some(),
                pub_exists: records.get("px").is_some(),
                fingerprint: records.get("fp").map(|f| f.trim().to_string()),
                public: records.get("pub").map(|p| p.trim().to_string()),
            },
        }
    }
    /// A shadow field as Python's `getspnam` gives it: -1 when empty.
    fn shadow_field(&self, index: usize) -> Option<i64> {
        self.shadow.as_ref().map(|f| {
            f.get(index)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(-1)
        })
    }
}

/// Python's `time.strftime('%Y-%m-%d', time.gmtime(seconds))`.
fn gm_date(seconds: f64) -> String {
    let days = (seconds / 86400.0).floor() as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Ansible's warning for a password that does not look like a crypt hash.
fn looks_unhashed(password: &str) -> bool {
    if ["*", "!", "*************"].contains(&password) {
        return false;
    }
    if password.contains([':', '*', '!']) || !password.contains('$') {
        return true;
    }
    let fields: Vec<&str> = password.split('$').collect();
    if fields.len() < 3 {
        return true;
    }
    let last = fields[fields.len() - 1];
    let bad_chars = last
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '='));
    let expected_len = match fields[1] {
        "1" => Some(22),
        "5" | "y" => Some(43),
        "6" => Some(86),
        _ => None,
    };
    bad_chars || expected_len.is_some_and(|n| last.len() != n)
}

/// What the change script is to do, besides reading the account again.
#[derive(Debug, Default)]
struct Plan {
    /// `useradd`/`usermod`/`userdel` and its arguments (empty: none).
    argv: Vec<String>,
    /// The line for `chpasswd -e` (`name:hash`), sent as the secret stdin.
    password: Option<String>,
    /// `chage` wanted values (compared again on the target after `useradd`/`usermod`).
    chage: Option<[Option<i64>; 3]>,
    /// Create the home if it is missing (this path, or the account's home when empty).
    mkhome: Option<String>,
    /// Create the parent of the new home first.
    mkparent: Option<String>,
    keygen: bool,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.argv.is_empty()
            && self.password.is_none()
            && self.chage.is_none()
            && self.mkhome.is_none()
            && !self.keygen
    }
}

/// The SSH key settings with Ansible's defaults.
struct KeySpec {
    file: String,
    kind: String,
    bits: i64,
    comment: Option<String>,
}

impl KeySpec {
    fn new(a: &UserArgs) -> KeySpec {
        let kind = a.ssh_key_type.clone().unwrap_or_else(|| "rsa".into());
        KeySpec {
            file: a
                .ssh_key_file
                .clone()
                .unwrap_or_else(|| format!(".ssh/id_{kind}")),
            kind,
            bits: a.ssh_key_bits,
            comment: a.ssh_key_comment.clone(),
        }
    }
}

/// The probe and change scripts share their inputs.
fn inputs(a: &UserArgs, key: Option<&KeySpec>, compare_password: bool) -> Script {
    let mut s = Script::new()
        .raw(PRELUDE)
        .raw(STEPS)
        .set("un", &a.name)
        .set("uh", a.home.as_deref().unwrap_or(""))
        .set("upw", if compare_password { "1" } else { "" })
        .set("uk", key.map(|k| k.file.as_str()).unwrap_or(""));
    if let Some(k) = key {
        s = s
            .set("kt", &k.kind)
            .set("kb", k.bits.to_string())
            .set("kc", k.comment.as_deref().unwrap_or(""))
            .set("kdc", if k.comment.is_none() { "1" } else { "" })
            .set("kf", if a.force { "1" } else { "" });
    }
    s.raw(USER_SH)
}

impl Module for User {
    fn name(&self) -> &'static str {
        "user"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<UserArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: UserArgs = args::parse("user", raw)?;
        if a.local {
            return Ok(Outcome::failed(
                "local: true (libuser's luseradd/lusermod) is not supported",
            ));
        }
        if a.name.contains([':', '\n', '\r']) {
            return Ok(Outcome::failed(format!(
                "invalid user name '{}'",
                a.name.replace(['\n', '\r'], " ")
            ))
            .with("name", a.name.as_str()));
        }
        if a.password
            .as_deref()
            .is_some_and(|p| p.contains([':', '\n', '\r']))
        {
            return Ok(
                Outcome::failed("invalid password hash: it holds ':' or a line break")
                    .with("name", a.name.as_str()),
            );
        }
        let mut warnings: Vec<Value> = Vec::new();
        if a.password.as_deref().is_some_and(looks_unhashed) {
            warnings.push(Value::from("The input password appears not to have been hashed. The 'password' argument must be encrypted for this module to work properly."));
        }
        if a.groups.is_none() && a.append {
            warnings.push(Value::from("'append' is set, but no 'groups' are specified. Use 'groups' for appending new groups.This will change to an error in Ansible 2.14."));
        }
        let state = a.state.unwrap_or(State::Present);
        let key =
            (state == State::Present && a.generate_ssh_key == Some(true)).then(|| KeySpec::new(&a));
        let compare_password = state == State::Present && a.password.is_some();

        let mut probe = inputs(&a, key.as_ref(), compare_password).need("getent");
        if key.is_some() {
            probe = probe.need("ssh-keygen");
        }
        probe = probe.raw("u_probe\n");
        let stdin = a
            .password
            .as_ref()
            .filter(|_| compare_password)
            .map(|p| format!("{p}\n").into_bytes());
        let out = run_script(ctx, probe, stdin, true)?;
        let found = Found::parse(&Records::parse(&out.stdout));

        let mut outcome = Outcome::ok().with("name", a.name.as_str()).with(
            "state",
            if state == State::Present {
                "present"
            } else {
                "absent"
            },
        );

        if state == State::Absent {
            if found.pw.is_none() {
                return Ok(with_warnings(outcome, warnings));
            }
            if ctx.check {
                return Ok(with_warnings(Outcome::changed(true), warnings));
            }
            let mut argv = vec!["userdel".to_string()];
            if a.force {
                argv.push("-f".into());
            }
            if a.remove {
                argv.push("-r".into());
            }
            argv.push(a.name.clone());
            let plan = Plan {
                argv,
                ..Plan::default()
            };
            let (records, stderr) = match change(ctx, &a, key.as_ref(), &plan)? {
                Ok(done) => done,
                Err(failed) => return Ok(failed),
            };
            outcome.changed = true;
            outcome = outcome.with("force", a.force).with("remove", a.remove);
            outcome = with_output(outcome, &records, &stderr);
            return Ok(with_warnings(outcome, warnings));
        }

        let created = found.pw.is_none();
        let plan = if created {
            if ctx.check {
                return Ok(with_warnings(Outcome::changed(true), warnings));
            }
            match create_plan(&a, &found, key.is_some()) {
                Ok(plan) => plan,
                Err(msg) => return Ok(Outcome::failed(msg).with("name", a.name.as_str())),
            }
        } else {
            match modify_plan(&a, &found, key.as_ref(), ctx.check, &mut warnings) {
                Ok(plan) => plan,
                Err(msg) => return Ok(Outcome::failed(msg).with("name", a.name.as_str())),
            }
        };

        let mut after = found;
        if !plan.is_empty() {
            outcome.changed = true;
            if !ctx.check {
                let (records, stderr) = match change(ctx, &a, key.as_ref(), &plan)? {
                    Ok(done) => done,
                    Err(failed) => return Ok(failed),
                };
                warnings.extend(records.all("warn").map(Value::from));
                // The report reads the account again; the groups stay as probed.
                let groups = std::mem::take(&mut after.groups);
                after = Found::parse(&records);
                after.groups = groups;
                outcome = with_output(outcome, &records, &stderr);
                // Steps the target decides itself (chage, the home, the key) may find
                // nothing to do; a task that planned only those changed nothing then.
                outcome.changed = !plan.argv.is_empty()
                    || plan.password.is_some()
                    || ["chage", "mkhome", "keygen"]
                        .iter()
                        .any(|k| records.get(k).is_some());
            }
        }
        if created {
            outcome = outcome
                .with("system", a.system)
                .with("create_home", a.create_home);
        } else {
            outcome = outcome
                .with("append", a.append)
                .with("move_home", a.move_home);
        }
        if a.password.is_some() {
            outcome = outcome.with("password", "NOT_LOGGING_PASSWORD");
        }
        if let Some(pw) = &after.pw {
            outcome = outcome
                .with("uid", pw.uid)
                .with("group", pw.gid)
                .with("comment", pw.gecos.as_str())
                .with("home", pw.home.as_str())
                .with("shell", pw.shell.as_str());
            if let Some(g) = &a.groups {
                outcome = outcome.with("groups", g.join(","));
            }
            if key.is_some() {
                let k = &after.key;
                outcome = outcome
                    .with(
                        "ssh_fingerprint",
                        if k.exists {
                            k.fingerprint.clone().unwrap_or_default()
                        } else {
                            String::new()
                        },
                    )
                    .with("ssh_key_file", k.path.clone().unwrap_or_default())
                    .with("ssh_public_key", k.public.clone());
            }
        }
        Ok(with_warnings(outcome, warnings))
    }
}

fn with_warnings(mut outcome: Outcome, warnings: Vec<Value>) -> Outcome {
    if !warnings.is_empty() {
        outcome = outcome.with("warnings", warnings);
    }
    outcome
}

/// `stdout`/`stderr` of the account command, as Ansible reports them when not empty.
fn with_output(mut outcome: Outcome, records: &Records, stderr: &str) -> Outcome {
    if let Some(out) = records.get("out").filter(|o| !o.is_empty()) {
        outcome = outcome.with("stdout", out);
    }
    if !stderr.is_empty() {
        outcome = outcome.with("stderr", stderr);
    }
    outcome
}

/// The group for `-g`: it must exist (a gid or a name).
fn primary_group<'a>(
    a: &UserArgs,
    found: &'a Found,
) -> Result<Option<&'a super::GroupEntry>, String> {
    match &a.group {
        None => Ok(None),
        Some(g) => match found.groups.lookup(g) {
            Some(entry) => Ok(Some(entry)),
            None => Err(format!("Group {g} does not exist")),
        },
    }
}

/// The `groups` argument as Ansible splits it: items of the comma-joined list, empty ones
/// dropped, then stripped, each once.
fn wanted_groups(a: &UserArgs) -> Option<Vec<String>> {
    let joined = a.groups.as_ref()?.join(",");
    let mut out: Vec<String> = Vec::new();
    for g in joined.split(',').filter(|g| !g.is_empty()) {
        let g = g.trim().to_string();
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Some(out)
}

fn password_line(a: &UserArgs) -> Option<String> {
    a.password.as_ref().map(|p| {
        let hash = if a.password_lock == Some(true) {
            format!("!{p}")
        } else {
            p.clone()
        };
        format!("{}:{hash}\n", a.name)
    })
}

fn chage_wanted(a: &UserArgs) -> Option<[Option<i64>; 3]> {
    let w = [
        a.password_expire_min,
        a.password_expire_max,
        a.password_expire_warn,
    ];
    w.iter().any(Option::is_some).then_some(w)
}

/// `useradd` as Ansible's `create_user_useradd` builds it (the password set afterwards).
fn create_plan(a: &UserArgs, found: &Found, keygen: bool) -> Result<Plan, String> {
    let mut argv = vec!["useradd".to_string()];
    if let Some(uid) = a.uid {
        argv.extend(["-u".into(), uid.to_string()]);
        if a.non_unique {
            argv.push("-o".into());
        }
    }
    if let Some(se) = &a.seuser {
        argv.extend(["-Z".into(), se.clone()]);
    }
    if let Some(g) = &a.group {
        primary_group(a, found)?;
        argv.extend(["-g".into(), g.clone()]);
    } else if found.groups.lookup(&a.name).is_some() {
        argv.push("-N".into());
    }
    if let Some(groups) = wanted_groups(a).filter(|g| !g.is_empty()) {
        for g in &groups {
            if found.groups.lookup(g).is_none() {
                return Err(format!("Group {g} does not exist"));
            }
        }
        argv.extend(["-G".into(), groups.join(",")]);
    }
    if let Some(c) = &a.comment {
        argv.extend(["-c".into(), c.clone()]);
    }
    let mut mkparent = None;
    if let Some(h) = &a.home {
        if a.create_home {
            mkparent = Some(h.clone());
        }
        argv.extend(["-d".into(), h.clone()]);
    }
    if let Some(s) = &a.shell {
        argv.extend(["-s".into(), s.clone()]);
    }
    if let Some(e) = a.expires {
        argv.push("-e".into());
        argv.push(if e < 0.0 { String::new() } else { gm_date(e) });
    }
    if a.create_home {
        argv.push("-m".into());
        if let Some(k) = &a.skeleton {
            argv.extend(["-k".into(), k.clone()]);
        }
        if let Some(u) = &a.umask {
            argv.extend(["-K".into(), format!("UMASK={u}")]);
        }
    } else {
        argv.push("-M".into());
    }
    if a.system {
        argv.push("-r".into());
    }
    if let Some(min) = a.uid_min {
        argv.extend(["-K".into(), format!("UID_MIN={min}")]);
    }
    if let Some(max) = a.uid_max {
        argv.extend(["-K".into(), format!("UID_MAX={max}")]);
    }
    argv.push(a.name.clone());
    Ok(Plan {
        argv,
        password: password_line(a),
        chage: chage_wanted(a),
        mkhome: a.create_home.then(String::new),
        mkparent,
        keygen,
    })
}

/// `usermod` as Ansible's `modify_user_usermod` builds it from the account found, and the
/// other changes `main()` makes after it.
fn modify_plan(
    a: &UserArgs,
    found: &Found,
    key: Option<&KeySpec>,
    check: bool,
    warnings: &mut Vec<Value>,
) -> Result<Plan, String> {
    let Some(pw) = &found.pw else {
        return Ok(Plan::default());
    };
    let mut args: Vec<String> = Vec::new();
    if let Some(uid) = a.uid.filter(|u| *u != pw.uid) {
        args.extend(["-u".into(), uid.to_string()]);
        if a.non_unique {
            args.push("-o".into());
        }
    }
    if let Some(g) = primary_group(a, found)? {
        if g.gid != pw.gid {
            args.extend(["-g".into(), g.gid.to_string()]);
        }
    }
    if let Some(wanted) = wanted_groups(a) {
        let current = found.groups.memberships(&a.name);
        let mut names: Vec<String> = Vec::new();
        if wanted.is_empty() {
            if !current.is_empty() && !a.append {
                args.extend(["-G".into(), String::new()]);
            }
        } else {
            for g in &wanted {
                match found.groups.lookup(g) {
                    Some(entry) => {
                        if !names.contains(&entry.name) {
                            names.push(entry.name.clone());
                        }
                    }
                    None => return Err(format!("Group {g} does not exist")),
                }
            }
            let missing = names.iter().any(|n| !current.contains(n));
            let extra = current.iter().any(|c| !names.contains(c));
            let need = if a.append { missing } else { missing || extra };
            if need {
                if a.append {
                    args.push("-a".into());
                }
                args.extend(["-G".into(), names.join(",")]);
            }
        }
    }
    if let Some(c) = a.comment.as_ref().filter(|c| **c != pw.gecos) {
        args.extend(["-c".into(), c.clone()]);
    }
    if let Some(h) = a.home.as_ref().filter(|h| **h != pw.home) {
        args.extend(["-d".into(), h.clone()]);
        if a.move_home {
            args.push("-m".into());
        }
    }
    if let Some(s) = a.shell.as_ref().filter(|s| **s != pw.shell) {
        args.extend(["-s".into(), s.clone()]);
    }
    if let Some(e) = a.expires {
        // Python's `user_password()[1] or '0'`: no readable shadow entry reads as 0.
        let current = found.shadow_field(5).unwrap_or(0);
        if e < 0.0 {
            if current >= 0 {
                args.extend(["-e".into(), String::new()]);
            }
        } else if current < 0 || gm_date(current as f64 * 86400.0) != gm_date(e) {
            args.extend(["-e".into(), gm_date(e)]);
        }
    }
    if a.password_lock == Some(true) && !found.locked {
        args.push("-L".into());
    } else if a.password_lock == Some(false) && found.locked {
        args.push("-U".into());
    }
    let mut password = None;
    if a.update_password != Some(UpdatePassword::OnCreate)
        && a.password.is_some()
        && !found.password_same
    {
        args.retain(|x| x != "-L" && x != "-U");
        password = password_line(a);
    }
    let mut argv = Vec::new();
    if !args.is_empty() {
        argv.push("usermod".to_string());
        argv.extend(args);
        argv.push(a.name.clone());
    }

    let chage = chage_wanted(a).filter(|w| {
        let current = [
            found.shadow_field(1),
            found.shadow_field(2),
            found.shadow_field(3),
        ];
        w.iter()
            .zip(current)
            .any(|(want, cur)| want.is_some() && cur.is_some() && *want != cur)
    });
    // The home Ansible checks afterwards: the one asked for, or the account's.
    let mkhome = (a.create_home && !found.home_exists).then(String::new);
    let keygen = match key {
        None => false,
        Some(_) => keygen_predicted(a, found, check, warnings),
    };
    Ok(Plan {
        argv,
        password,
        chage: chage.map(|_| chage_wanted(a).unwrap_or([None; 3])),
        mkhome,
        mkparent: None,
        keygen,
    })
}

/// Whether `ssh_key_gen` would generate (or, in check mode, report a change) for the key the
/// probe found; the warnings it gives when it skips.
fn keygen_predicted(a: &UserArgs, found: &Found, check: bool, warnings: &mut Vec<Value>) -> bool {
    let k = &found.key;
    let path = k.path.clone().unwrap_or_default();
    if !k.dir_exists {
        return true;
    }
    if k.exists {
        if a.force {
            if check {
                warnings.push(Value::from(format!(
                    "Overwriting existing ssh key private file \"{path}\""
                )));
            }
            return true;
        }
        warnings.push(Value::from(format!(
            "Found existing ssh key private file \"{path}\", no force, so skipping ssh-keygen generation"
        )));
        return false;
    }
    if k.pub_exists {
        if a.force {
            if check {
                warnings.push(Value::from(format!(
                    "Overwriting existing ssh key public file \"{path}.pub\""
                )));
            }
            return true;
        }
        warnings.push(Value::from(format!(
            "Found existing ssh key public file \"{path}.pub\", no force, so skipping ssh-keygen generation"
        )));
        return false;
    }
    true
}

/// Run the change script. `Ok(Err(outcome))`: a step failed, with Ansible's failure.
fn change(
    ctx: &mut Ctx<'_>,
    a: &UserArgs,
    key: Option<&KeySpec>,
    plan: &Plan,
) -> Result<Result<(Records, String), Outcome>, ModuleError> {
    let mut s = inputs(a, key, false).need("getent");
    if let Some(tool) = plan.argv.first() {
        s = s.need(match tool.as_str() {
            "useradd" => "useradd",
            "userdel" => "userdel",
            _ => "usermod",
        });
    }
    if plan.password.is_some() {
        s = s.need("chpasswd");
    }
    if plan.chage.is_some() {
        s = s.need("chage");
    }
    if key.is_some() {
        // The report reads the key's fingerprint even when no key is generated.
        s = s.need("ssh-keygen");
    }
    if let Some(home) = &plan.mkparent {
        s = s
            .set("u_np", home)
            .raw("\ncase $u_np in */*) u_np=${u_np%/*}; [ -z \"$u_np\" ] || [ -d \"$u_np\" ] || mkdir -p -- \"$u_np\" ;; esac\n");
    }
    if !plan.argv.is_empty() {
        s = s.raw("\nu_run cmd").cmd(&plan.argv).raw("|| exit 0\n");
    }
    if plan.argv.first().map(String::as_str) == Some("userdel") {
        let out = run_script(ctx, s, None, false)?;
        return finish(a, &out, "cmd");
    }
    if plan.password.is_some() {
        s = s.raw(
            "__step chpasswd; chpasswd -e; u_rc=$?; __kv pwrc \"$u_rc\"; [ \"$u_rc\" = 0 ] || exit 0\n",
        );
    }
    // What follows needs the account (Ansible's `if user.user_exists()`).
    s = s.raw("u_passwd\nif [ -n \"$u_e\" ]; then :\n");
    if let Some([min, max, warn]) = plan.chage {
        let v = |x: Option<i64>| x.map(|x| x.to_string()).unwrap_or_default();
        s = s
            .set("w_min", v(min))
            .set("w_max", v(max))
            .set("w_warn", v(warn))
            .raw("\nu_chage || exit 0\n");
    }
    if plan.mkhome.is_some() {
        s = s
            .set("u_sk", a.skeleton.as_deref().unwrap_or(""))
            .raw("\nu_mkhome \"${uh:-$u_home}\" \"$u_sk\" || { __kv homefail 1; exit 0; }\n");
    }
    if plan.keygen {
        s = s.raw("u_keygen || exit 0\n");
    }
    s = s.raw("fi\nu_report\n");
    let stdin = plan.password.clone().map(String::into_bytes);
    let out = run_script(ctx, s, stdin, true)?;
    finish(a, &out, "cmd")
}

/// The records and the account command's stderr, or the failure of the step that failed.
fn finish(
    a: &UserArgs,
    out: &crate::Output,
    step: &str,
) -> Result<Result<(Records, String), Outcome>, ModuleError> {
    Ok(step_result(out, step).map_err(|(msg, rc)| {
        Outcome::failed(msg)
            .with("name", a.name.as_str())
            .with("rc", rc)
    }))
}

/// The records and the account command's stderr, or which step failed: its message and status.
fn step_result(out: &crate::Output, step: &str) -> Result<(Records, String), (String, i64)> {
    let records = Records::parse(&out.stdout);
    let stderr = out.stderr_str();
    let fail = |msg: String, rc: i64| Err((msg, rc));
    let rc = |key: &str| {
        records
            .get(key)
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0)
    };
    if records.get("rc").is_some_and(|r| r != "0") {
        return fail(step_stderr(&stderr, step), rc("rc"));
    }
    if records.get("pwrc").is_some_and(|r| r != "0") {
        return fail(step_stderr(&stderr, "chpasswd"), rc("pwrc"));
    }
    if records.get("chage").is_some_and(|r| r != "0") {
        return fail(step_stderr(&stderr, "chage"), rc("chage"));
    }
    if records.get("homefail").is_some() {
        return fail(step_stderr(&stderr, "mkhome").trim().to_string(), 1);
    }
    if let Some(msg) = records.get("keyfail") {
        return fail(msg.to_string(), 1);
    }
    if records.get("keygen").is_some_and(|r| r != "0") {
        return fail(step_stderr(&stderr, "keygen"), rc("keygen"));
    }
    if !out.success() && records.get("rc").is_none() {
        return fail(stderr.trim().to_string(), i64::from(out.status));
    }
    Ok((records, step_stderr(&stderr, step)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::fake::FakeTools;
    use serde_json::json;

    const HASH: &str = "$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy.g.";

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(gm_date(0.0), "1970-01-01");
        assert_eq!(gm_date(1_700_000_000.0), "2023-11-14");
        assert_eq!(gm_date(951_782_400.0), "2000-02-29");
        assert_eq!(gm_date(-86_400.5), "1969-12-30");
    }

    #[test]
    fn unhashed_passwords_are_noticed() {
        assert!(!looks_unhashed(HASH));
        assert!(!looks_unhashed("!"));
        assert!(looks_unhashed("secret"));
        assert!(looks_unhashed("$6$salt$short"));
        assert!(!looks_unhashed(
            "$y$j9T$abc$0123456789012345678901234567890123456789012"
        ));
    }

    /// Fake account tools over passwd/group/shadow files in the test directory: `getent`
    /// reads them; `useradd`, `usermod`, `userdel`, `chpasswd`, `chage` only log.
    fn fake_accounts(host: &FakeTools, passwd: &str, group: &str, shadow: &str) {
        for (name, text) in [("passwd", passwd), ("group", group), ("shadow", shadow)] {
            std::fs::write(host.path(name), text).expect("db");
        }
        let dir = host.dir.path().display().to_string();
        host.tool(
            "getent",
            false,
            &format!("f='{dir}'/$1; if [ $# = 1 ]; then cat \"$f\"; else grep \"^$2:\" \"$f\" || exit 2; fi"),
        );
        for tool in ["useradd", "usermod", "userdel", "chage"] {
            host.tool(tool, false, "exit 0");
        }
        host.tool("chpasswd", true, "exit 0");
    }

    fn logged(host: &FakeTools) -> Vec<String> {
        host.log()
            .lines()
            .filter(|l| !l.starts_with("getent"))
            .map(str::to_string)
            .collect()
    }

    const GROUPS: &str = "root:x:0:\nsudo:x:27:\nadm:x:4:alice\nstaff:x:50:\nalice:x:1001:\n";

    #[test]
    fn a_new_user_gets_useradd_then_chpasswd_on_stdin() {
        let mut host = FakeTools::new();
        fake_accounts(&host, "root:x:0:0:root:/root:/bin/sh\n", GROUPS, "");
        let args = json!({"name": "alice", "groups": "sudo, adm", "shell": "/bin/bash",
            "comment": "Alice $(id)", "home": "/srv/alice", "password": HASH, "uid": 1500});
        let r = host.run(&User, args.clone(), true, false).expect("runs");
        assert!(r.changed && r.result.is_empty(), "{r:?}");
        assert!(logged(&host).is_empty());
        let r = host.run(&User, args, false, false).expect("runs");
        assert!(r.changed, "{r:?}");
        assert_eq!(
            logged(&host),
            vec![
                "useradd [-u] [1500] [-N] [-G] [sudo,adm] [-c] [Alice $(id)] [-d] [/srv/alice] [-s] [/bin/bash] [-m] [alice]".to_string(),
                "chpasswd [-e]".to_string(),
                format!("< alice:{HASH}"),
            ]
        );
        assert_eq!(r.result["password"], json!("NOT_LOGGING_PASSWORD"));
        assert_eq!(r.result["create_home"], json!(true));
    }

    #[test]
    fn an_existing_user_is_modified_only_where_it_differs() {
        let mut host = FakeTools::new();
        fake_accounts(
            &host,
            "alice:x:1001:1001:Alice:/home/alice:/bin/sh\n",
            GROUPS,
            &format!("alice:{HASH}:19000:0:99999:7:::\n"),
        );
        let home = host.path("home");
        let passwd = format!("alice:x:1001:1001:Alice:{}:/bin/sh\n", home.display());
        std::fs::write(host.path("passwd"), &passwd).expect("passwd");
        std::fs::create_dir(&home).expect("home");
        // Converged: one exec, nothing logged.
        let same = json!({"name": "alice", "groups": ["adm"], "shell": "/bin/sh", "password": HASH, "comment": "Alice"});
        host.execs = 0;
        let r = host.run(&User, same, false, false).expect("runs");
        assert!(!r.changed, "{r:?}");
        assert_eq!(host.execs, 1);
        assert!(logged(&host).is_empty(), "{:?}", logged(&host));
        assert_eq!(
            serde_json::Value::Object(r.result.clone()),
            json!({"name": "alice", "state": "present", "append": false, "move_home": false,
                "password": "NOT_LOGGING_PASSWORD", "uid": 1001, "group": 1001, "comment": "Alice",
                "home": home.to_str(), "shell": "/bin/sh", "groups": "adm"})
        );
        // Changed: groups, shell, group (by gid), lock; a new hash goes to chpasswd.
        let other = HASH.replace("salt", "pepper");
        let args = json!({"name": "alice", "groups": "sudo", "append": true, "shell": "/bin/bash",
            "group": "staff", "password": other, "password_lock": true});
        let r = host.run(&User, args.clone(), true, false).expect("runs");
        assert!(r.changed);
        assert!(
            logged(&host).is_empty(),
            "check mode ran {:?}",
            logged(&host)
        );
        let r = host.run(&User, args, false, false).expect("runs");
        assert!(r.changed);
        assert_eq!(
            logged(&host),
            vec![
                "usermod [-g] [50] [-a] [-G] [sudo] [-s] [/bin/bash] [alice]".to_string(),
                "chpasswd [-e]".to_string(),
                format!("< alice:!{other}"),
            ]
        );
    }

    #[test]
    fn unknown_groups_fail_with_ansibles_words() {
        let mut host = FakeTools::new();
        fake_accounts(&host, "", GROUPS, "");
        let r = host
            .run(
                &User,
                json!({"name": "bob", "groups": ["sudo", "nosuch"]}),
                false,
                false,
            )
            .expect("runs");
        assert!(r.failed);
        assert_eq!(r.msg.as_deref(), Some("Group nosuch does not exist"));
        let r = host
            .run(
                &User,
                json!({"name": "bob", "group": "nogroup"}),
                false,
                false,
            )
            .expect("runs");
        assert_eq!(r.msg.as_deref(), Some("Group nogroup does not exist"));
        assert!(logged(&host).is_empty());
    }

    #[test]
    fn removal_and_expiry() {
        let mut host = FakeTools::new();
        fake_accounts(
            &host,
            "bob:x:1002:1002::/nonexistent:/bin/sh\n",
            GROUPS,
            "bob:!:19000:0:99999:7:::\n",
        );
        let r = host
            .run(
                &User,
                json!({"name": "bob", "expires": 1_700_000_000, "create_home": false}),
                false,
                false,
            )
            .expect("runs");
        assert!(r.changed);
        assert_eq!(logged(&host), vec!["usermod [-e] [2023-11-14] [bob]"]);
        host.clear_log();
        let r = host
            .run(
                &User,
                json!({"name": "bob", "state": "absent", "remove": true}),
                false,
                false,
            )
            .expect("runs");
        assert!(r.changed);
        assert_eq!(logged(&host), vec!["userdel [-r] [bob]"]);
        assert_eq!(r.result["remove"], json!(true));
    }

    #[test]
    fn bad_passwords_never_reach_the_target() {
        let mut host = FakeTools::new();
        fake_accounts(&host, "", GROUPS, "");
        let r = host
            .run(
                &User,
                json!({"name": "eve", "password": "x\nroot:$6$evil"}),
                false,
                false,
            )
            .expect("runs");
        assert!(r.failed);
        assert_eq!(host.execs, 0);
        assert!(!format!("{r:?}").contains("evil"));
    }

    #[test]
    fn the_hash_is_compared_on_the_target_and_never_in_the_script() {
        struct Spy<'a> {
            inner: &'a mut FakeTools,
            scripts: Vec<String>,
        }
        impl crate::Host for Spy<'_> {
            fn name(&self) -> &str {
                "spy"
            }
            fn exec(&mut self, cmd: &crate::Cmd) -> Result<crate::Output, crate::HostError> {
                self.scripts.push(cmd.display());
                self.inner.exec(cmd)
            }
            fn put(
                &mut self,
                d: &[u8],
                p: &str,
                a: &crate::FileAttrs,
            ) -> Result<(), crate::HostError> {
                self.inner.put(d, p, a)
            }
            fn get(&mut self, p: &str) -> Result<Vec<u8>, crate::HostError> {
                self.inner.get(p)
            }
        }
        let mut fake = FakeTools::new();
        fake_accounts(&fake, "", GROUPS, "");
        let mut spy = Spy {
            inner: &mut fake,
            scripts: Vec::new(),
        };
        let facts = Map::new();
        let mut ctx = Ctx {
            host: &mut spy,
            check: false,
            diff: true,
            facts: &facts,
        };
        let args = json!({"name": "carol", "password": HASH});
        let r = User
            .run(&mut ctx, args.as_object().expect("object"))
            .expect("runs");
        assert!(r.changed, "{r:?}");
        assert_eq!(spy.scripts.len(), 2);
        for s in &spy.scripts {
            assert!(!s.contains("IxDD3je"), "the hash is in a script:\n{s}");
            assert!(s.ends_with("<<< ********"), "stdin not secret: {s}");
        }
        assert!(!format!("{r:?}").contains("IxDD3je"));
    }

    #[test]
    fn an_ssh_key_is_generated_once_and_reported() {
        let mut host = FakeTools::new();
        let home = host.path("home dir");
        std::fs::create_dir(&home).expect("home");
        let ids = |flag: &str| {
            let out = std::process::Command::new("id")
                .arg(flag)
                .output()
                .expect("id");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        fake_accounts(
            &host,
            &format!(
                "dave:x:{}:{}::{}:/bin/sh\n",
                ids("-u"),
                ids("-g"),
                home.display()
            ),
            GROUPS,
            "",
        );
        host.tool(
            "ssh-keygen",
            false,
            "if [ \"$1\" = -l ]; then echo \"256 SHA256:fake $3 (ED25519)\"; exit 0; fi\n\
             while [ $# -gt 0 ]; do case $1 in -f) f=$2; shift;; -C) c=$2; shift;; esac; shift; done\n\
             echo private > \"$f\"; echo \"ssh-ed25519 AAAAfake $c\" > \"$f.pub\"",
        );
        let args = json!({"name": "dave", "generate_ssh_key": true, "ssh_key_type": "ed25519",
            "ssh_key_comment": "dave's key"});
        let r = host.run(&User, args.clone(), true, false).expect("runs");
        assert!(r.changed);
        assert!(!home.join(".ssh").exists(), "check mode made ~/.ssh");
        let r = host.run(&User, args.clone(), false, false).expect("runs");
        assert!(r.changed, "{r:?}");
        let key = home.join(".ssh/id_ed25519");
        assert!(logged(&host).contains(&format!(
            "ssh-keygen [-t] [ed25519] [-C] [dave's key] [-f] [{}] [-N] []",
            key.display()
        )));
        assert_eq!(
            r.result["ssh_public_key"],
            json!("ssh-ed25519 AAAAfake dave's key")
        );
        assert_eq!(r.result["ssh_key_file"], json!(key.to_str()));
        assert_eq!(
            r.result["ssh_fingerprint"],
            json!(format!("256 SHA256:fake {} (ED25519)", key.display()))
        );
        host.execs = 0;
        let r = host.run(&User, args, false, false).expect("runs");
        assert!(!r.changed);
        assert_eq!(host.execs, 1);
        assert_eq!(
            r.result["warnings"],
            json!([format!("Found existing ssh key private file \"{}\", no force, so skipping ssh-keygen generation", key.display())])
        );
    }

    #[test]
    fn a_new_hash_alone_is_set_without_usermod() {
        let mut host = FakeTools::new();
        fake_accounts(
            &host,
            "erin:x:1003:1003::/:/bin/sh\n",
            GROUPS,
            "erin:$6$old$hash:19000:0:99999:7:::\n",
        );
        let r = host
            .run(
                &User,
                json!({"name": "erin", "password": HASH}),
                false,
                false,
            )
            .expect("runs");
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(
            logged(&host),
            vec!["chpasswd [-e]".to_string(), format!("< erin:{HASH}")]
        );
    }
}
