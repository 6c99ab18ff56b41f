//! The one place shell commands are built and every argument is quoted.
//!
//! `Cmd` is what a `Host` runs: an argv or a script, plus working directory, environment
//! and stdin. `Script` composes several commands; user data only enters it through
//! `arg`/`cmd`, which quote, while shell syntax enters through `raw`, which takes
//! `&'static str` only, so a value can never become syntax.

use std::fmt;

/// Quote one argument for a POSIX shell. Anything (spaces, quotes, `$()`, backticks,
/// newlines) arrives intact; NUL bytes cannot be passed through a shell and are dropped.
pub fn quote(arg: &str) -> String {
    let cleaned;
    let arg = if arg.contains('\0') {
        cleaned = arg.replace('\0', "");
        cleaned.as_str()
    } else {
        arg
    };
    match shlex::try_quote(arg) {
        Ok(quoted) => quoted.into_owned(),
        // Unreachable after removing NUL, the only byte shlex refuses.
        Err(_) => String::from("''"),
    }
}

/// A shell script assembled from quoted arguments and fixed pieces of shell syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    text: String,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }
    /// Fixed shell syntax (`&&`, `;`, `2>/dev/null`, a whole fixed command). Static only.
    pub fn raw(mut self, syntax: &'static str) -> Self {
        self.sep();
        self.text.push_str(syntax);
        self
    }
    /// One quoted argument.
    pub fn arg(mut self, value: impl AsRef<str>) -> Self {
        self.sep();
        self.text.push_str(&quote(value.as_ref()));
        self
    }
    /// A whole command: every element quoted.
    pub fn cmd<S: AsRef<str>>(mut self, argv: &[S]) -> Self {
        for a in argv {
            self = self.arg(a);
        }
        self
    }
    /// A shell variable assignment `name=<quoted value>`.
    pub fn set(mut self, name: &'static str, value: impl AsRef<str>) -> Self {
        self.sep();
        self.text.push_str(name);
        self.text.push('=');
        self.text.push_str(&quote(value.as_ref()));
        self
    }
    /// Append another script as it is (it was itself built from quoted pieces).
    pub fn then(mut self, other: Script) -> Self {
        self.sep();
        self.text.push_str(&other.text);
        self
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
    fn sep(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
            self.text.push(' ');
        }
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// Quoted and run as one command.
    Argv(Vec<String>),
    /// A script built with `Script` (quoted pieces), run as it is.
    Script(String),
    /// A user's own shell text (the `shell`/`raw` modules): run exactly as written.
    UserShell {
        text: String,
        executable: Option<String>,
    },
}

/// A command for `Host::exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    body: Body,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    stdin: Option<Vec<u8>>,
    /// The stdin is a secret (a become password, vault content): never shown.
    secret_stdin: bool,
}

impl Cmd {
    /// A program and its arguments, each quoted.
    pub fn argv<S: AsRef<str>>(argv: &[S]) -> Self {
        Self::with_body(Body::Argv(
            argv.iter().map(|a| a.as_ref().to_string()).collect(),
        ))
    }
    /// A script composed with `Script`.
    pub fn script(script: Script) -> Self {
        Self::with_body(Body::Script(script.text))
    }
    /// The user's shell text, run by `/bin/sh` or the given executable (`shell` module).
    pub fn user_shell(text: impl Into<String>, executable: Option<String>) -> Self {
        Self::with_body(Body::UserShell {
            text: text.into(),
            executable,
        })
    }
    fn with_body(body: Body) -> Self {
        Self {
            body,
            env: Vec::new(),
            cwd: None,
            stdin: None,
            secret_stdin: false,
        }
    }
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    /// Add environment variables that are not yet set on this command.
    pub fn with_env_defaults(mut self, vars: &[(String, String)]) -> Self {
        for (k, v) in vars {
            if !self.env.iter().any(|(ek, _)| ek == k) {
                self.env.push((k.clone(), v.clone()));
            }
        }
        self
    }
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    pub fn secret_stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self.secret_stdin = true;
        self
    }
    pub fn stdin_data(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.env
    }
    /// Whether the body is a script composed with [`Script`] (a module's own shell, as
    /// opposed to a program's argv or a user's shell text): such a script only needs to be
    /// run by `/bin/sh`, and does not use `$$` or `$0`, so a connection may run it in a
    /// subshell of a shell it keeps instead of a new `/bin/sh -c`.
    pub fn is_module_script(&self) -> bool {
        matches!(self.body, Body::Script(_))
    }

    /// The whole command as one string for `sh -c`: `cd`, exported environment, then the body.
    pub fn to_shell(&self) -> String {
        let mut out = String::new();
        if let Some(dir) = &self.cwd {
            out.push_str("cd ");
            out.push_str(&quote(dir));
            out.push_str(" || exit 1\n");
        }
        for (k, v) in &self.env {
            if is_env_name(k) {
                out.push_str("export ");
                out.push_str(k);
                out.push('=');
                out.push_str(&quote(v));
                out.push('\n');
            }
        }
        match &self.body {
            Body::Argv(argv) => {
                let quoted: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                out.push_str(&quoted.join(" "));
            }
            Body::Script(text) => out.push_str(text),
            Body::UserShell {
                text,
                executable: None,
            } => out.push_str(text),
            Body::UserShell {
                text,
                executable: Some(exe),
            } => {
                out.push_str(&quote(exe));
                out.push_str(" -c ");
                out.push_str(&quote(text));
            }
        }
        out
    }

    /// The command as shown to users at `-vvv`: secrets in stdin are never shown.
    pub fn display(&self) -> String {
        let mut s = self.to_shell();
        if self.stdin.is_some() {
            s.push_str(if self.secret_stdin {
                " <<< ********"
            } else {
                " <<< (stdin)"
            });
        }
        s
    }
}

/// The script that writes stdin atomically to `dest`: a 0600 temp file beside it, attributes
/// set, renamed over `dest`; the temp file is removed on any failure. With no mode given, an
/// existing file keeps its mode and a new one gets 0666 & ~umask.
pub fn atomic_write_script(dest: &str, attrs: &crate::FileAttrs) -> Script {
    let s = Script::new()
        .set("d", dest)
        .raw("; t=$(umask 077; mktemp")
        .arg(format!("{}/.play-tmp-XXXXXXXX", parent_dir(dest)))
        .raw(") || exit 1; trap 'rm -f \"$t\"' EXIT;")
        .raw("cat >\"$t\" || exit 1;");
    set_attributes_and_rename(s, attrs)
}

/// The second half of a transfer whose data already sits in `temp` (uploaded beside `dest`
/// by SFTP): attributes as [`atomic_write_script`] sets them, then the rename over `dest`;
/// `temp` is removed on any failure. With `mode_set`, the transfer already gave `temp`
/// `attrs.mode` (SFTP sets it without a process), so only owner and group are left.
pub fn finish_upload_script(
    temp: &str,
    dest: &str,
    attrs: &crate::FileAttrs,
    mode_set: bool,
) -> Script {
    let s = Script::new()
        .set("d", dest)
        .raw(";")
        .set("t", temp)
        .raw("; trap 'rm -f \"$t\"' EXIT;");
    if mode_set && attrs.mode.is_some() {
        set_owner_and_rename(s, attrs)
    } else {
        set_attributes_and_rename(s, attrs)
    }
}

/// The directory a temp file for `dest` goes in, so that the final rename stays on one filesystem.
pub fn parent_dir(dest: &str) -> &str {
    match dest.rfind('/') {
        Some(0) => "/",
        Some(i) => &dest[..i],
        None => ".",
    }
}

/// Mode, owner and group onto `$t`, then `mv -f "$t" "$d"`.
fn set_attributes_and_rename(mut s: Script, attrs: &crate::FileAttrs) -> Script {
    match attrs.mode {
        Some(mode) => {
            s = s
                .raw("chmod")
                .arg(format!("{mode:o}"))
                .raw("\"$t\" || exit 1;")
        }
        None => {
            s = s.raw(
                "if [ -e \"$d\" ]; then chmod \"$(stat -c %a \"$d\")\" \"$t\"; \
                 else chmod \"$(printf %o $((0666 & ~$(umask))))\" \"$t\"; fi || exit 1;",
            )
        }
    }
    set_owner_and_rename(s, attrs)
}

/// Owner and group onto `$t`, then `mv -f "$t" "$d"`.
fn set_owner_and_rename(mut s: Script, attrs: &crate::FileAttrs) -> Script {
    match (&attrs.owner, &attrs.group) {
        (Some(o), Some(g)) => {
            s = s
                .raw("chown")
                .arg(format!("{o}:{g}"))
                .raw("\"$t\" || exit 1;")
        }
        (Some(o), None) => s = s.raw("chown").arg(o).raw("\"$t\" || exit 1;"),
        (None, Some(g)) => s = s.raw("chgrp").arg(g).raw("\"$t\" || exit 1;"),
        (None, None) => {}
    }
    s.raw("mv -f \"$t\" \"$d\" && trap - EXIT")
}

/// Environment names that can be exported from a POSIX shell.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_keeps_hostile_values_intact() {
        let hostile = "a b 'c' \"d\" $(rm -rf /) `id` \n e";
        let quoted = quote(hostile);
        let parsed = shlex::split(&quoted).expect("shlex parses our quoting");
        assert_eq!(parsed, vec![hostile.to_string()]);
        assert_eq!(quote("plain/path-1.txt"), "plain/path-1.txt");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn script_only_quotes_arguments() {
        let s = Script::new()
            .cmd(&["test", "-e", "/a b"])
            .raw("&&")
            .arg("echo $x");
        assert_eq!(s.as_str(), "test -e '/a b' && 'echo $x'");
    }

    #[test]
    fn cmd_renders_cwd_env_and_executable() {
        let c = Cmd::user_shell("echo $HOME", Some("/bin/bash".into()))
            .cwd("/tmp/x y")
            .env("A", "it's");
        assert_eq!(
            c.to_shell(),
            "cd '/tmp/x y' || exit 1\nexport A=\"it's\"\n/bin/bash -c 'echo $HOME'"
        );
    }
}
