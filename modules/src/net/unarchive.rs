//! The `unarchive` module: unpack a tar (plain, gzip, bzip2, xz, zstd) or zip archive into an
//! existing directory ON THE TARGET, only when its contents differ from what is there.
//!
//! The archive is a controller file (the engine reads it, vault-decrypted, and passes it as
//! `_content_b64`/`_src`; it is uploaded with `Host::put_new` into a temporary file in
//! `dest` and removed afterwards), a path on the target (`remote_src: true`), or a URL the
//! target downloads (`remote_src: true`, curl or wget, into a private temporary directory).
//!
//! Whether to unpack is decided as Ansible decides it, in one exec with the unpacking:
//! - tar (GNU tar): `tar --diff` against `dest`; a missing file, or a difference in contents,
//!   size, modification time, link target, (as root, without `owner`/`group`) owner and
//!   group, or (without `mode`) mode means unpacking.
//! - zip: each member of `unzip -Z -T -s` is compared with what `dest` has: type, mtime,
//!   size, CRC-32 (computed on the target by `gzip`, whose trailer holds it), permissions
//!   (the archive's, or `mode`), owner and group; `keep_newer` leaves newer files alone.
//!
//! After unpacking (and on every real run, as Ansible), `mode`, `owner` and `group` are
//! applied to every member and to the top-level directories (`chmod`/`chown -c`, which say
//! whether anything changed). `list_files` adds `files`.
//!
//! Where we differ from Ansible, on purpose:
//! - Check mode works for tar archives too (`tar --diff` only reads); Ansible skips them.
//! - A symbolic `mode` is applied by the target's `chmod`, and does not make a zip member
//!   differ by itself.
//! - Zip members are compared to the second, ignoring Ansible's clamping of timestamps
//!   before 1980 and after 2107; no `--diff` output is produced.
//! - The handler is chosen by the archive's first bytes (then `tar --list`, `unzip -l`),
//!   not by trying each tool in turn.

use base64::Engine;
use serde::Deserialize;

use super::{need_fetcher, Request, Response, Stdin, FETCH, TEMP_DIR};
use crate::files::common::{last_reason, ModeSpec, Records, WantAttrs, PRELUDE};
use crate::{args, Cmd, Ctx, HostError, Map, Module, ModuleError, Outcome, Script, Value};

/// `unarchive`.
pub struct Unarchive;

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct UnarchiveArgs {
    src: String,
    dest: String,
    #[serde(default)]
    remote_src: bool,
    copy: Option<bool>,
    creates: Option<String>,
    #[serde(default)]
    list_files: bool,
    #[serde(default)]
    keep_newer: bool,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    extra_opts: Vec<String>,
    #[serde(default = "yes")]
    validate_certs: bool,
    #[serde(default)]
    #[allow(dead_code)]
    io_buffer_size: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    decrypt: Option<bool>,
    mode: Option<Value>,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    unsafe_writes: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    attributes: Option<String>,
    /// The controller file's bytes (the engine's action reads `src`).
    _content_b64: Option<String>,
    /// The controller path they came from.
    _src: Option<String>,
}

impl Module for Unarchive {
    fn name(&self) -> &'static str {
        "unarchive"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<UnarchiveArgs>()
    }

    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: UnarchiveArgs = args::parse("unarchive", args)?;
        if !a.include.is_empty() && !a.exclude.is_empty() {
            return Err(ModuleError::Args(
                "parameters are mutually exclusive: include|exclude".into(),
            ));
        }
        let remote_src = match (a.copy, args.contains_key("remote_src")) {
            (Some(_), true) => {
                return Err(ModuleError::Args(
                    "parameters are mutually exclusive: ('copy', 'remote_src')".into(),
                ))
            }
            (Some(copy), false) => !copy,
            (None, _) => a.remote_src,
        };
        let want = WantAttrs::parse(a.mode.as_ref(), a.owner.as_deref(), a.group.as_deref())
            .map_err(ModuleError::Args)?;
        let upload = match (&a._content_b64, remote_src) {
            (Some(b64), false) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| ModuleError::Failed(format!("bad _content_b64: {e}")))?,
            ),
            (None, false) => {
                if a.src.contains("://") {
                    return Ok(Outcome::failed(format!(
                        "Unsupported option, an URI src ({}) is only supported when remote_src is True",
                        super::mask_url(&a.src)
                    )));
                }
                return Ok(Outcome::failed(format!(
                    "Source '{}' failed to transfer",
                    a.src
                )));
            }
            (_, true) => None,
        };

        // `creates`, and a dest to resolve on the target, are looked at before uploading.
        let mut dest = a.dest.clone();
        if upload.is_some() && (a.creates.is_some() || !dest.starts_with('/')) {
            match pre_check(ctx, &a)? {
                Ok(resolved) => dest = resolved,
                Err(done) => return Ok(done),
            }
        }
        let temp = upload
            .as_ref()
            .map(|_| crate::files::common::join_path(&dest, &temp_name()));
        if let (Some(data), Some(temp)) = (&upload, &temp) {
            match ctx.host.put_new(data, temp, 0o600) {
                Ok(()) => {}
                Err(HostError::Transfer(msg)) => {
                    // Most likely no such directory: say it as Ansible does.
                    return match pre_check(ctx, &a)? {
                        Err(done) => Ok(done),
                        Ok(_) => Ok(Outcome::failed(msg)),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }

        let cmd = main_script(ctx.check, &a, &dest, temp.as_deref(), &want, remote_src)?;
        let out = ctx.host.exec(&cmd)?;
        crate::tools::missing_tool(&out)?;
        let r = Records::parse(&out.stdout);
        Ok(outcome(&a, &r, &out.stderr_str(), &dest, temp.as_deref()))
    }
}

fn temp_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(".play-tmp-{}-{nanos}", std::process::id())
}

/// `creates` (skip) and `dest` (must be a directory) as the action plugin checks them; the
/// expanded `dest` when the task goes on.
fn pre_check(ctx: &mut Ctx<'_>, a: &UnarchiveArgs) -> Result<Result<String, Outcome>, ModuleError> {
    let s = Script::new()
        .raw(PRELUDE)
        .set("d", &a.dest)
        .raw(";")
        .set("c", a.creates.as_deref().unwrap_or(""))
        .raw(CHECK_PATHS)
        .raw("__kv dest \"$d\"\n");
    let out = ctx.host.exec(&Cmd::script(s))?;
    let r = Records::parse(&out.stdout);
    Ok(match early_end(&r, &a.dest) {
        Some(done) => Err(done),
        None => Ok(r.get("dest").unwrap_or(&a.dest).to_string()),
    })
}

/// `creates` then `dest`: records `skip` or `notdir` and exits, else sets `d` (expanded and
/// made absolute).
const CHECK_PATHS: &str = r#"
if [ -n "$c" ]; then __tilde "$c"; if [ -e "$__o" ]; then __kv skip "$__o"; exit 0; fi; fi
__tilde "$d"; d=$__o; case $d in /*) ;; *) d=$PWD/$d;; esac
if [ ! -d "$d" ]; then __kv notdir 1; exit 0; fi
"#;

fn early_end(r: &Records, dest: &str) -> Option<Outcome> {
    if let Some(path) = r.get("skip") {
        let mut o = Outcome::ok().with_msg(format!("skipped, since {path} exists"));
        o.skipped = true;
        return Some(o);
    }
    if r.get("notdir").is_some() {
        return Some(Outcome::failed(format!(
            "dest '{dest}' must be an existing dir"
        )));
    }
    None
}

/// The zip member listing as Ansible filters `zipinfo` lines, one per member:
/// `TYPE<TAB>PERMS<TAB>SIZE<TAB>TIMESTAMP<TAB>NAME`.
const ZIP_ENTRIES: &str = r#"{
  n = split($0, f, " ")
  if (n < 8) next
  if (length(f[1]) != 7 && length(f[1]) != 8 && length(f[1]) != 10) next
  if (length(f[7]) != 15) next
  t = substr(f[1], 1, 1); p = substr(f[1], 2)
  if (index("dl-?", t) == 0) next
  if (p ~ /[^rwxstah-]/) next
  name = $0
  for (i = 0; i < 7; i++) sub(/^[ \t]*[^ \t]+[ \t]+/, "", name)
  printf "%s\t%s\t%s\t%s\t%s\n", t, p, f[4], f[7], name
}"#;

/// Members whose dest file is a regular file of the member's size: their paths, for the CRC.
const ZIP_CRC_CANDIDATES: &str = r#"BEGIN { d = ENVIRON["__d"] }
FNR == 1 { part++ }
part == 1 { split($0, e, "\t"); size[d "/" e[5]] = e[3]; next }
{
  line = $0; n = split(line, f, " ")
  for (i = 0; i < 9; i++) sub(/^[ \t]*[^ \t]+[ \t]+/, "", line)
  if (substr(f[1], 1, length(f[1]) - 3) == "8" && (line in size) && size[line] == f[2]) print line
}"#;

/// Ansible's `ZipArchive.is_unarchived` over: `unzip -v` (CRCs), the members, `stat` of
/// their dest paths (`%f %s %u %g %U %G %y %n`) and the dest files' CRCs. Prints `D\t<itemized>
/// <name>` per differing member, `X\t<name>` per member left alone for being newer,
/// `C` when anything differs, `E\t<message>` for an ownership that cannot be had.
const ZIP_VERDICT: &str = r#"function perm2oct(s,   k, m, c) {
  m = 0
  for (k = 1; k <= 9; k++) { c = substr(s, k, 1); if (index("rwxst", c)) m += 2 ^ (9 - k) }
  return m
}
function andnot(a, b,   r, bit) {
  r = 0
  for (bit = 2048; bit >= 1; bit /= 2) {
    if (a >= bit) { a -= bit; if (b >= bit) b -= bit; else r += bit } else if (b >= bit) b -= bit
  }
  return r
}
function hex2dec(h,   k, v) { v = 0; for (k = 1; k <= length(h); k++) v = v * 16 + index("0123456789abcdef", substr(h, k, 1)) - 1; return v }
function strip(line, n,   i) { for (i = 0; i < n; i++) sub(/^[ \t]*[^ \t]+[ \t]+/, "", line); return line }
BEGIN { d = ENVIRON["__d"] }
FNR == 1 { part++ }
part == 1 {
  n = split($0, f, " ")
  if (n >= 8 && length(f[7]) == 8 && f[7] ~ /^[0-9a-f]+$/) crc[strip($0, 7)] = f[7]
  next
}
part == 2 { split($0, e, "\t"); cnt++; et[cnt] = e[1]; ep[cnt] = e[2]; es[cnt] = e[3]; ets[cnt] = e[4]; en[cnt] = e[5]; next }
part == 3 {
  n = split($0, f, " "); p = strip($0, 9)
  sraw[p] = hex2dec(tolower(f[1])); ssize[p] = f[2]; suid[p] = f[3]; sgid[p] = f[4]; sown[p] = f[5]; sgrp[p] = f[6]
  dt = f[7]; gsub(/-/, "", dt); tm = f[8]; frac = tm; sub(/^[^.]*/, "", frac); sub(/\..*/, "", tm); gsub(/:/, "", tm)
  smt[p] = dt "." tm; sfrac[p] = (frac ~ /[1-9]/)
  next
}
part == 4 { split($0, c, "\t"); dcrc[c[2]] = c[1]; next }
END {
  changed = 0
  if (uid != 0 && (fo != rn || fu != uid)) { print "E\tCannot change ownership of " en[1] " to " fo ", as user " rn; exit }
  for (i = 1; i <= cnt; i++) {
    name = en[i]; path = d "/" name; t = et[i]; perm = ep[i]
    if (substr(name, length(name)) == "/") ftype = "d"; else if (t == "l") ftype = "L"; else ftype = "f"
    fumask = 0
    if (length(perm) == 6) { if (substr(name, length(name)) == "/" || perm == "rwx---") perm = "rwxrwxrwx"; else perm = "rw-rw-rw-"; fumask = umask }
    else if (length(perm) == 7) { if (perm == "rwxa---") perm = "rwxrwxrwx"; else perm = "rw-rw-rw-"; fumask = umask }
    if (!(path in sraw)) { changed = 1; print "D\t>" ftype "++++++.?? " name; continue }
    kind = int(sraw[path] / 4096)
    isdir = (kind == 4); isreg = (kind == 8); islnk = (kind == 10)
    if ((ftype == "d" && !isdir) || (ftype == "f" && !isreg) || (ftype == "L" && !islnk)) { changed = 1; print "D\tc" ftype "++++++.?? " name; continue }
    it2 = "."; it3 = "."; it4 = "."; it5 = "."; it6 = "."; change = 0
    if (isreg) {
      if (keep) {
        if (ets[i] > smt[path]) { change = 1; it4 = "t" }
        else if (ets[i] < smt[path] || sfrac[path]) { print "X\t" name; continue }
      } else if (ets[i] != smt[path] || sfrac[path]) { change = 1; it4 = "t" }
      if (es[i] != ssize[path]) { change = 1; it3 = "s" }
      if (!(path in dcrc) || dcrc[path] != crc[name]) { change = 1; it2 = "c" }
    }
    if (ftype != "L") {
      if (mode != "") want = mode + 0
      else if (sym) want = -1
      else if (t == "?") want = perm2oct(perm)
      else want = andnot(perm2oct(perm), fumask)
      have = sraw[path] % 4096
      if (want >= 0 && want != have) { change = 1; it5 = "p" }
    }
    if (sown[path] != "UNKNOWN") { if (sown[path] != fo) { change = 1; it6 = "o" } }
    else if (suid[path] != fu) { change = 1; it6 = "o" }
    if (sgrp[path] != "UNKNOWN") { if (sgrp[path] != fg) { change = 1; it6 = "g" } }
    else if (sgid[path] != fgid) { change = 1; it6 = "g" }
    if (change) { changed = 1; print "D\t." ftype it2 it3 it4 it5 it6 "..?? " name }
  }
  if (changed) print "C"
}"#;

/// Everything after the archive is on the target (see the module docs). Inputs: `d`, `s`
/// (the archive; empty with `url`), `url`, `check`, `keep`, `list`, `m`/`mnum`/`sym`/`o`/`g`,
/// `up` (s is our upload: removed at the end), the tar/zip functions. Records: `dest`,
/// `src`, `handler`, `names` (the members), `changed`, `xrc`/`xout`/`xerr`, `attr`,
/// or `fail` with what failed.
const MAIN: &str = r#"
__kv dest "$d"
if [ -n "$url" ]; then
  __fn=${url%%[?#]*}; __fn=${__fn##*/}; __fn=${__fn:-archive}
  s=$T/$__fn
  __fetch "$s" "$T/hdr"
  __code "$T/hdr"
  if [ "$__frc" != 0 ] || [ "${__o:-0}" -ge 400 ] 2>/dev/null || [ "${__o:-0}" = 000 ]; then __fail download; fi
else
  __tilde "$s"; s=$__o; case $s in /*) ;; *) s=$PWD/$s;; esac
fi
__kv src "$s"
[ -e "$s" ] || __fail nosrc
[ -r "$s" ] || __fail unreadable
[ -s "$s" ] || __fail empty
__m=$(od -An -tx1 -N 6 -- "$s" | tr -d ' \n')
case $__m in
504b0304*|504b0506*|504b0708*) kind=zip;;
1f8b*) kind=tgz;;
425a68*) kind=tbz;;
fd377a585a00*) kind=txz;;
28b52ffd*) kind=tzst;;
*) kind=tar;;
esac
if [ "$kind" = tar ] && ! tar -tf "$s" >/dev/null 2>&1 && command -v unzip >/dev/null 2>&1 && unzip -l "$s" >/dev/null 2>&1; then kind=zip; fi
"#;

const TAR_PART: &str = r#"
tar --version 2>/dev/null | head -n 1 | grep -q GNU || __fail gnutar
case $kind in tgz) zf=-z; __kv handler TgzArchive;; tbz) zf=-j; __kv handler TarBzipArchive;; txz) zf=-J; __kv handler TarXzArchive;; tzst) zf=--use-compress-program=zstd; __kv handler TarZstdArchive;; *) zf=; __kv handler TarArchive;; esac
(cd "$d" && __tar --list) >"$T/names" 2>"$T/lerr" || { __kvc lerr cat "$T/lerr"; __fail list; }
sed 's|^/||' "$T/names" >"$T/n2" && mv -f "$T/n2" "$T/names"
[ -s "$T/names" ] || __fail nofiles
__kvc names cat "$T/names"
(cd "$d" && __tar --diff) >"$T/diff" 2>&1
__pat=': (Mod time differs|Warning: Cannot stat: No such file or directory|Symlink differs|Contents differ|Size differs)$|: Invalid owner|: Invalid group'
if [ "$(id -u)" = 0 ]; then [ -n "$o" ] || __pat="$__pat|: Uid differs\$"; [ -n "$g" ] || __pat="$__pat|: Gid differs\$"; fi
[ -n "$m" ] || __pat="$__pat|: Mode differs\$"
if grep -v ': : Warning: Cannot stat: No such file or directory$' "$T/diff" | grep -Eq -- "$__pat"; then
  __kv changed 1
  if [ -z "$check" ]; then
    (cd "$d" && __tar --extract) >"$T/xo" 2>"$T/xe"; __x=$?
    __kv xrc "$__x"; __kvc xout cat "$T/xo"; __kvc xerr cat "$T/xe"
    [ "$__x" = 0 ] || __fail extract
  fi
fi
"#;

const ZIP_PART: &str = r#"
__kv handler ZipArchive
__zl >"$T/zl" 2>"$T/ze"; __zrc=$?
if [ "$__zrc" != 0 ] && [ "$__zrc" != 11 ]; then __kvc lerr cat "$T/ze"; __fail list; fi
unzip -v "$s" >"$T/zv" 2>/dev/null
awk "$ZIP_ENTRIES" "$T/zl" >"$T/ent"
cut -f 5 "$T/ent" >"$T/names"
__kvc names cat "$T/names"
uid=$(id -u); rn=$(id -un); rg=$(id -g); rgn=$(id -gn)
if [ -n "$o" ]; then fo=$(id -un -- "$o" 2>/dev/null) || fo=$rn; fu=$(id -u -- "$o" 2>/dev/null) || fu=$uid; else fo=$rn; fu=$uid; fi
fg=$rgn; fgid=$rg
if [ -n "$g" ]; then __ge=$(getent group -- "$g" 2>/dev/null) && { fg=${__ge%%:*}; __t=${__ge#*:}; __t=${__t#*:}; fgid=${__t%%:*}; }; fi
: >"$T/st"; : >"$T/dcrc"
if [ -s "$T/ent" ]; then
  __d=$d awk -F '\t' '{ print ENVIRON["__d"] "/" $5 }' "$T/ent" | tr '\n' '\0' | xargs -0 stat -c '%f %s %u %g %U %G %y %n' -- >"$T/st" 2>/dev/null
  __d=$d awk "$ZIP_CRC_CANDIDATES" "$T/ent" "$T/st" | while IFS= read -r __p; do
    __c=$(gzip -1 -c <"$__p" | tail -c 8 | od -An -tx1 -N 4 | awk '{ print $4 $3 $2 $1 }')
    printf '%s\t%s\n' "$__c" "$__p"
  done >"$T/dcrc"
fi
__um=$(umask); __um=$((__um))
__d=$d awk -v keep="$keep" -v mode="$mnum" -v sym="$sym" -v umask="$__um" -v uid="$uid" -v rn="$rn" -v fo="$fo" -v fu="$fu" -v fg="$fg" -v fgid="$fgid" \
  "$ZIP_VERDICT" "$T/zv" "$T/ent" "$T/st" "$T/dcrc" >"$T/verdict"
__e=$(awk -F '\t' '$1 == "E" { print $2 }' "$T/verdict")
[ -z "$__e" ] || { __kv err "$__e"; __fail owner; }
if grep -q '^C$' "$T/verdict" || [ "$__zrc" != 0 ]; then
  __kv changed 1
  __kvc zdiff awk -F '\t' '$1 == "D" { print $2 }' "$T/verdict"
  if [ -z "$check" ]; then
    awk -F '\t' '$1 == "X" { print $2 }' "$T/verdict" >"$T/newer"
    set --
    while IFS= read -r __n; do set -- "$@" "$__n"; done <"$T/newer"
    __zx "$@" >"$T/xo" 2>"$T/xe"; __x=$?
    __kv xrc "$__x"; __kvc xout cat "$T/xo"; __kvc xerr cat "$T/xe"
    [ "$__x" = 0 ] || [ "$__x" = 1 ] || __fail extract
  fi
fi
"#;

/// Owner, group and mode on every member and top-level directory (not in check mode).
const ATTRS_PART: &str = r#"
if [ -z "$check" ] && [ -n "$o$g$m" ]; then
  { cat "$T/names"; awk -F / 'NF > 1 && $1 != "" && $1 != "." { print $1 }' "$T/names" | sort -u; } >"$T/all"
  (cd "$d" && while IFS= read -r __n; do [ -z "$__n" ] || printf '%s\0' "$__n"; done <"$T/all") >"$T/n0"
  # chmod follows links: never onto what a member links to.
  (cd "$d" && while IFS= read -r __n; do [ -z "$__n" ] || [ -L "${__n%/}" ] || printf '%s\0' "$__n"; done <"$T/all") >"$T/n1"
  if [ -n "$o" ]; then (cd "$d" && xargs -0 -r chown -h -c -- "$o" <"$T/n0") >"$T/a1" 2>"$T/ae" || { __kvc err cat "$T/ae"; __fail chown; }; [ ! -s "$T/a1" ] || __kv attr 1; fi
  if [ -n "$g" ]; then (cd "$d" && xargs -0 -r chgrp -h -c -- "$g" <"$T/n0") >"$T/a1" 2>"$T/ae" || { __kvc err cat "$T/ae"; __fail chgrp; }; [ ! -s "$T/a1" ] || __kv attr 1; fi
  if [ -n "$m" ]; then (cd "$d" && xargs -0 -r chmod -c -- "$m" <"$T/n1") >"$T/a1" 2>"$T/ae" || { __kvc err cat "$T/ae"; __fail chmod; }; [ ! -s "$T/a1" ] || __kv attr 1; fi
fi
"#;

fn main_script(
    check: bool,
    a: &UnarchiveArgs,
    dest: &str,
    temp: Option<&str>,
    want: &WantAttrs,
    remote_src: bool,
) -> Result<Cmd, ModuleError> {
    let url = (remote_src && a.src.contains("://")).then_some(a.src.as_str());
    let (mnum, sym, m) = match &want.mode {
        Some(ModeSpec::Bits(bits)) => (bits.to_string(), "", format!("{bits:o}")),
        Some(ModeSpec::Symbolic(s)) => (String::new(), "1", s.clone()),
        None => (String::new(), "", String::new()),
    };
    let mut s = Script::new().raw(PRELUDE);
    let mut stdin = Stdin::default();
    let mut request = None;
    if let Some(url) = url {
        let mut r = Request::get(url);
        r.validate_certs = a.validate_certs;
        r.validate().map_err(ModuleError::Failed)?;
        r.stdin_parts(&mut stdin);
        s = need_fetcher(s).raw(FETCH).raw(super::PLACE);
        request = Some(r);
    }
    s = s.need("od").raw(TEMP_DIR).then(stdin.script());
    // tar and unzip command lines with the task's options, as shell functions.
    s = s.raw("__tar() { tar \"$@\" -C \"$d\" ${zf:+\"$zf\"}");
    if !a.extra_opts.is_empty() {
        s = s.raw("--show-transformed-names").cmd(&a.extra_opts);
    }
    if a.keep_newer {
        s = s.raw("--keep-newer-files");
    }
    for x in &a.exclude {
        s = s.arg(format!("--exclude={}", x.trim_end_matches('/')));
    }
    if let Some(o) = &want.owner {
        s = s.arg(format!("--owner={o}"));
    }
    if let Some(g) = &want.group {
        s = s.arg(format!("--group={g}"));
    }
    s = s.raw("-f \"$s\"").cmd(&a.include).raw("; }\n");
    s = s.raw("__zl() { unzip -Z -T -s \"$s\"").cmd(&a.include);
    if !a.exclude.is_empty() {
        s = s.raw("-x").cmd(&a.exclude);
    }
    s = s
        .raw("; }\n__zx() { unzip -o")
        .cmd(&a.extra_opts)
        .raw("\"$s\"")
        .cmd(&a.include);
    s = if a.exclude.is_empty() {
        s.raw("${1+-x} \"$@\"")
    } else {
        s.raw("-x").cmd(&a.exclude).raw("\"$@\"")
    };
    s = s.raw("-d \"$d\"; }\n");
    s = s
        .set("ZIP_ENTRIES", ZIP_ENTRIES)
        .raw(";")
        .set("ZIP_CRC_CANDIDATES", ZIP_CRC_CANDIDATES)
        .raw(";")
        .set("ZIP_VERDICT", ZIP_VERDICT)
        .raw(";")
        .set("d", dest)
        .raw(";")
        .set(
            "c",
            if temp.is_some() {
                ""
            } else {
                a.creates.as_deref().unwrap_or("")
            },
        )
        .raw(";")
        .set(
            "s",
            if url.is_some() {
                ""
            } else {
                temp.unwrap_or(&a.src)
            },
        )
        .raw(";")
        .set("up", temp.unwrap_or(""))
        .raw(";")
        .set("url", url.map(super::mask_url).unwrap_or_default())
        .raw(";")
        .set("check", if check { "1" } else { "" })
        .raw(";")
        .set("keep", if a.keep_newer { "1" } else { "" })
        .raw(";")
        .set("mnum", mnum)
        .raw(";")
        .set("sym", sym)
        .raw(";")
        .set("m", m)
        .raw(";")
        .set("o", want.owner.as_deref().unwrap_or(""))
        .raw(";")
        .set("g", want.group.as_deref().unwrap_or(""))
        .raw("\nif [ -n \"$up\" ]; then trap 'rm -rf -- \"$T\"; rm -f -- \"$up\"' EXIT; fi\n")
        .raw(CHECK_PATHS)
        .raw(MAIN)
        .raw("case $kind in\nzip)\n")
        .need("unzip")
        .need("gzip")
        .raw(ZIP_PART)
        .raw(";;\n*)\n")
        .need("tar")
        .raw("case $kind in tgz)\n")
        .need("gzip")
        .raw(";; tbz)\n")
        .need("bzip2")
        .raw(";; txz)\n")
        .need("xz")
        .raw(";; tzst)\n")
        .need("zstd")
        .raw(";; esac\n")
        .raw(TAR_PART)
        .raw(";;\nesac\n")
        .raw(ATTRS_PART)
        .raw("__kst dst \"$d\"\n");
    let secret = request.as_ref().is_some_and(Request::has_secret);
    let mut cmd = Cmd::script(s);
    if request.is_some() {
        cmd = if secret {
            cmd.secret_stdin(stdin.bytes())
        } else {
            cmd.stdin(stdin.bytes())
        };
    }
    Ok(cmd)
}

fn outcome(
    a: &UnarchiveArgs,
    r: &Records,
    stderr: &str,
    dest: &str,
    temp: Option<&str>,
) -> Outcome {
    if let Some(done) = early_end(r, dest) {
        return done;
    }
    let dest = r.get("dest").unwrap_or(dest).to_string();
    let src = r
        .get("src")
        .map(str::to_string)
        .or_else(|| temp.map(str::to_string))
        .unwrap_or_else(|| a.src.clone());
    let handler = r.get("handler");
    let mut base = Outcome::ok()
        .with("dest", dest.as_str())
        .with("src", src.as_str());
    if let Some(h) = handler {
        base = base.with("handler", h);
    }
    let cmd = extract_cmd(a, handler.unwrap_or(""), &src, &dest);
    let extract_results = || {
        let mut m = Map::new();
        m.insert("cmd".into(), cmd.clone());
        m.insert(
            "rc".into(),
            Value::from(
                r.get("xrc")
                    .and_then(|x| x.parse::<i64>().ok())
                    .unwrap_or(-1),
            ),
        );
        m.insert(
            "out".into(),
            Value::String(r.get("xout").unwrap_or_default().to_string()),
        );
        m.insert(
            "err".into(),
            Value::String(r.get("xerr").unwrap_or_default().to_string()),
        );
        Value::Object(m)
    };
    if let Some(what) = r.get("fail") {
        let shown_src = a._src.as_deref().unwrap_or(&src);
        let lerr = r.get("lerr").unwrap_or_default().trim().to_string();
        let msg = match what {
            "tmpdir" => format!("could not create a temporary directory: {}", last_reason(stderr)),
            "download" => {
                let resp = Response::from_records(r, &a.src);
                format!("Failure downloading {}, {}", super::mask_url(&a.src), resp.msg())
            }
            "nosrc" if a._content_b64.is_some() => format!("Source '{shown_src}' failed to transfer"),
            "nosrc" => format!("Source '{src}' does not exist"),
            "unreadable" => format!("Source '{src}' not readable"),
            "empty" => format!("Invalid archive '{src}', the file is 0 bytes"),
            "gnutar" => format!(
                "Failed to find handler for \"{src}\". Make sure the required command to extract the file is installed.\nCommand \"tar\" detected as tar type None. GNU tar required."
            ),
            "list" => format!(
                "Failed to find handler for \"{src}\". Make sure the required command to extract the file is installed.\nCommand \"{}\" could not handle archive: {lerr}",
                if r.get("handler") == Some("ZipArchive") { "unzip" } else { "tar" }
            ),
            "nofiles" => format!(
                "Failed to find handler for \"{src}\". Make sure the required command to extract the file is installed.\nCommand \"tar\" found no files in archive. Empty archive files are not supported."
            ),
            "owner" => r.get("err").unwrap_or_default().to_string(),
            "extract" => {
                let mut o = Outcome::failed(format!("failed to unpack {src} to {dest}"));
                o.result = base.result.clone();
                return o.with("extract_results", extract_results());
            }
            "chown" | "chgrp" | "chmod" => format!(
                "{what} failed: {}",
                last_reason(r.get("err").unwrap_or_default())
            ),
            other => format!("{other} failed: {}", last_reason(stderr)),
        };
        let mut o = Outcome::failed(msg);
        if handler.is_some() {
            o.result = base.result.clone();
        }
        return o;
    }
    let mut o = base;
    o.changed = r.get("changed").is_some() || r.get("attr").is_some();
    // Ansible adds the facts of `dest` to a result that names it.
    if let Some(st) = r.stat("dst").present() {
        o.result.extend(crate::files::common::path_info(st));
    }
    if let Some(prepared) = r.get("zdiff").filter(|d| !d.is_empty()) {
        let mut diff = Map::new();
        diff.insert("prepared".into(), Value::String(format!("{prepared}\n")));
        o = o.with("diff", Value::Object(diff));
    }
    if r.get("xrc").is_some() {
        o = o.with("extract_results", extract_results());
    }
    if a.list_files {
        let files: Vec<Value> = r
            .get("names")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| Value::String(l.to_string()))
            .collect();
        o = o.with("files", Value::Array(files));
    }
    o
}

/// The unpacking command as Ansible's `extract_results.cmd` shows it.
fn extract_cmd(a: &UnarchiveArgs, handler: &str, src: &str, dest: &str) -> Value {
    let mut cmd: Vec<String> = Vec::new();
    if handler == "ZipArchive" {
        cmd.extend(["unzip".into(), "-o".into()]);
        cmd.extend(a.extra_opts.iter().cloned());
        cmd.push(src.into());
        cmd.extend(a.include.iter().cloned());
        if !a.exclude.is_empty() {
            cmd.push("-x".into());
            cmd.extend(a.exclude.iter().cloned());
        }
        cmd.extend(["-d".into(), dest.into()]);
    } else {
        cmd.extend(["tar".into(), "--extract".into(), "-C".into(), dest.into()]);
        let flag = match handler {
            "TgzArchive" => "-z",
            "TarBzipArchive" => "-j",
            "TarXzArchive" => "-J",
            "TarZstdArchive" => "--use-compress-program=zstd",
            _ => "",
        };
        if !flag.is_empty() {
            cmd.push(flag.into());
        }
        if !a.extra_opts.is_empty() {
            cmd.push("--show-transformed-names".into());
            cmd.extend(a.extra_opts.iter().cloned());
        }
        if let Some(o) = a.owner.as_deref().filter(|o| !o.is_empty()) {
            cmd.push(format!("--owner={o}"));
        }
        if let Some(g) = a.group.as_deref().filter(|g| !g.is_empty()) {
            cmd.push(format!("--group={g}"));
        }
        if a.keep_newer {
            cmd.push("--keep-newer-files".into());
        }
        for x in &a.exclude {
            cmd.push(format!("--exclude={}", x.trim_end_matches('/')));
        }
        cmd.extend(["-f".into(), src.into()]);
        cmd.extend(a.include.iter().cloned());
    }
    Value::Array(cmd.into_iter().map(Value::String).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use serde_json::json;
    use std::path::Path;
    use std::process::Command;

    fn run(check: bool, args: Value) -> Outcome {
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
        Unarchive.run(&mut ctx, &map).expect("runs")
    }

    fn sh(dir: &Path, script: &str) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn tree(dir: &Path) -> Vec<String> {
        let out = Command::new("sh")
            .arg("-c")
            .arg("find . -printf '%p %y %m %s %T@\\n' | sort")
            .current_dir(dir)
            .output()
            .expect("find");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A source tree with a file, a nested file, an executable and a symlink.
    fn source(dir: &Path) {
        sh(
            dir,
            "mkdir -p src/top/sub && printf 'one\\n' > src/top/a.txt && printf 'two\\n' > 'src/top/sub/b c.txt' \
             && printf '#!/bin/sh\\n' > src/top/run.sh && chmod 755 src/top/run.sh && ln -s a.txt src/top/link \
             && touch -d '2024-01-02 03:04:05' src/top/a.txt src/top/run.sh 'src/top/sub/b c.txt'",
        );
    }

    fn converges(archive: &Path, dest: &Path, handler: &str) {
        let (a, d) = (
            archive.to_str().expect("utf-8"),
            dest.to_str().expect("utf-8"),
        );
        let args = json!({"src": a, "dest": d, "remote_src": true, "list_files": true});
        let o = run(true, args.clone());
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(tree(dest).len(), 1, "check mode unpacked: {:?}", tree(dest));
        let o = run(false, args.clone());
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.result["handler"], handler);
        let files = o.result["files"].as_array().expect("files");
        assert!(
            files
                .iter()
                .any(|f| f.as_str().is_some_and(|f| f.ends_with("b c.txt"))),
            "{files:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("top/sub/b c.txt")).expect("read"),
            "two\n"
        );
        let o = run(false, args.clone());
        assert!(!o.changed && !o.failed, "second run: {o:?}");
        let o = run(true, args.clone());
        assert!(!o.changed && !o.failed, "check after: {o:?}");
        // A changed file is put back.
        std::fs::write(dest.join("top/a.txt"), "ONE\n").expect("write");
        let o = run(false, args);
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(dest.join("top/a.txt")).expect("read"),
            "one\n"
        );
    }

    #[test]
    fn tar_archives_of_every_compression() {
        let dir = tempfile::tempdir().expect("tempdir");
        source(dir.path());
        for (name, flag, handler) in [
            ("a.tar.gz", "-z", "TgzArchive"),
            ("a.tar", "", "TarArchive"),
            ("a.tar.xz", "-J", "TarXzArchive"),
            ("a.tar.bz2", "-j", "TarBzipArchive"),
        ] {
            sh(dir.path(), &format!("tar -C src -c {flag} -f {name} top"));
            let dest = dir.path().join(format!("dest {name}"));
            std::fs::create_dir(&dest).expect("mkdir");
            converges(&dir.path().join(name), &dest, handler);
        }
    }

    #[test]
    fn zip_archives() {
        let dir = tempfile::tempdir().expect("tempdir");
        source(dir.path());
        sh(&dir.path().join("src"), "zip -q -r -y ../a.zip top");
        let dest = dir.path().join("dest 'z'");
        std::fs::create_dir(&dest).expect("mkdir");
        converges(&dir.path().join("a.zip"), &dest, "ZipArchive");
        // What differs is itemized as Ansible's zip handler does it.
        std::fs::write(dest.join("top/a.txt"), "ONE!\n").expect("write");
        let o = run(
            true,
            json!({"src": dir.path().join("a.zip"), "dest": dest, "remote_src": true}),
        );
        assert_eq!(
            o.result["diff"]["prepared"], ".fcst....?? top/a.txt\n",
            "{o:?}"
        );
        // mode applies to members and reports a change once.
        let args = json!({"src": dir.path().join("a.zip"), "dest": dest, "remote_src": true, "mode": "0700"});
        let o = run(false, args.clone());
        assert!(o.changed && !o.failed, "{o:?}");
        let o = run(false, args);
        assert!(!o.changed && !o.failed, "{o:?}");
    }

    #[test]
    fn include_exclude_and_extra_opts() {
        let dir = tempfile::tempdir().expect("tempdir");
        source(dir.path());
        sh(
            dir.path(),
            "tar -C src -czf a.tgz top && (cd src && zip -q -r -y ../a.zip top)",
        );
        let tgz = dir.path().join("a.tgz");
        let zip = dir.path().join("a.zip");
        for (name, archive) in [("tar", &tgz), ("zip", &zip)] {
            let dest = dir.path().join(format!("excl {name}"));
            std::fs::create_dir(&dest).expect("mkdir");
            let args = json!({"src": archive, "dest": dest, "remote_src": true, "exclude": ["top/sub/*", "top/run.sh"]});
            let o = run(false, args.clone());
            assert!(o.changed && !o.failed, "{name}: {o:?}");
            assert!(dest.join("top/a.txt").exists(), "{name}");
            assert!(
                !dest.join("top/run.sh").exists() && !dest.join("top/sub/b c.txt").exists(),
                "{name}"
            );
            let o = run(false, args);
            assert!(!o.changed && !o.failed, "{name}: {o:?}");
            let dest = dir.path().join(format!("incl {name}"));
            std::fs::create_dir(&dest).expect("mkdir");
            let args = json!({"src": archive, "dest": dest, "remote_src": true, "include": ["top/a.txt"], "list_files": true});
            let o = run(false, args.clone());
            assert!(o.changed && !o.failed, "{name}: {o:?}");
            assert_eq!(o.result["files"], json!(["top/a.txt"]), "{name}");
            assert!(!dest.join("top/run.sh").exists(), "{name}");
            let o = run(false, args);
            assert!(!o.changed && !o.failed, "{name}: {o:?}");
        }
        let dest = dir.path().join("stripped");
        std::fs::create_dir(&dest).expect("mkdir");
        let args = json!({"src": tgz, "dest": dest, "remote_src": true, "extra_opts": ["--strip-components=1"]});
        let o = run(false, args.clone());
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(dest.join("a.txt").exists() && dest.join("sub/b c.txt").exists());
        let o = run(false, args);
        assert!(!o.changed && !o.failed, "{o:?}");
        // keep_newer leaves a newer file alone.
        let dest = dir.path().join("newer");
        std::fs::create_dir(&dest).expect("mkdir");
        let args = json!({"src": zip, "dest": dest, "remote_src": true, "keep_newer": true});
        assert!(run(false, args.clone()).changed);
        std::fs::write(dest.join("top/a.txt"), "mine, newer\n").expect("write");
        let o = run(false, args);
        assert!(!o.failed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(dest.join("top/a.txt")).expect("read"),
            "mine, newer\n"
        );
    }

    #[test]
    fn errors_have_ansibles_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let o = run(
            false,
            json!({"src": "/nonexistent.tgz", "dest": d, "remote_src": true}),
        );
        assert_eq!(
            o.msg.as_deref(),
            Some("Source '/nonexistent.tgz' does not exist")
        );
        let o = run(
            false,
            json!({"src": "/x.tgz", "dest": format!("{d}/missing"), "remote_src": true}),
        );
        assert_eq!(
            o.msg,
            Some(format!("dest '{d}/missing' must be an existing dir"))
        );
        std::fs::write(dir.path().join("empty.tgz"), "").expect("write");
        let o = run(
            false,
            json!({"src": format!("{d}/empty.tgz"), "dest": d, "remote_src": true}),
        );
        assert_eq!(
            o.msg,
            Some(format!(
                "Invalid archive '{d}/empty.tgz', the file is 0 bytes"
            ))
        );
        std::fs::write(dir.path().join("junk.bin"), "not an archive at all").expect("write");
        let o = run(
            false,
            json!({"src": format!("{d}/junk.bin"), "dest": d, "remote_src": true}),
        );
        assert!(
            o.msg.as_deref().is_some_and(
                |m| m.starts_with(&format!("Failed to find handler for \"{d}/junk.bin\""))
            ),
            "{o:?}"
        );
        let o = run(
            false,
            json!({"src": "/x.tgz", "dest": d, "remote_src": true, "creates": d}),
        );
        assert!(o.skipped, "{o:?}");
        assert_eq!(o.msg, Some(format!("skipped, since {d} exists")));
    }
}
