//! Tools a module needs on the target: a script guard that stops when one is missing, and the
//! error that names the tool and the package that provides it.
//!
//! Targets need nothing but a POSIX shell, so a module that drives `pacman`, `systemctl`,
//! `curl`, ... starts its script with [`Script::need`] for each tool. The guard costs no
//! extra exec (`command -v` is a shell builtin); when a tool is missing the script prints a
//! marker on stderr and exits 127, and [`missing_tool`] turns that into the module's error.

use crate::{ModuleError, Output, Script};

/// What the guard prints on stderr before the tool's name.
const MARKER: &str = "__play_missing_tool__ ";

/// Which package provides a tool, on Debian-like and on Arch-like targets.
struct Provider {
    tool: &'static str,
    debian: &'static str,
    arch: &'static str,
}

/// Tools whose package is not simply named like the tool.
const PROVIDERS: &[Provider] = &[
    Provider {
        tool: "systemctl",
        debian: "systemd",
        arch: "systemd",
    },
    Provider {
        tool: "journalctl",
        debian: "systemd",
        arch: "systemd",
    },
    Provider {
        tool: "hostnamectl",
        debian: "systemd",
        arch: "systemd",
    },
    Provider {
        tool: "timedatectl",
        debian: "systemd",
        arch: "systemd",
    },
    Provider {
        tool: "useradd",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "usermod",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "userdel",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "groupadd",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "groupmod",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "groupdel",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "chpasswd",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "chage",
        debian: "passwd",
        arch: "shadow",
    },
    Provider {
        tool: "ssh-keygen",
        debian: "openssh-client",
        arch: "openssh",
    },
    Provider {
        tool: "getent",
        debian: "libc-bin",
        arch: "glibc",
    },
    Provider {
        tool: "sysctl",
        debian: "procps",
        arch: "procps-ng",
    },
    Provider {
        tool: "crontab",
        debian: "cron",
        arch: "cronie",
    },
    Provider {
        tool: "pacman",
        debian: "pacman-package-manager",
        arch: "pacman",
    },
    Provider {
        tool: "apt-get",
        debian: "apt",
        arch: "(not packaged)",
    },
    Provider {
        tool: "dpkg-query",
        debian: "dpkg",
        arch: "(not packaged)",
    },
    Provider {
        tool: "tar",
        debian: "tar",
        arch: "tar",
    },
    Provider {
        tool: "unzip",
        debian: "unzip",
        arch: "unzip",
    },
    Provider {
        tool: "xz",
        debian: "xz-utils",
        arch: "xz",
    },
    Provider {
        tool: "bzip2",
        debian: "bzip2",
        arch: "bzip2",
    },
    Provider {
        tool: "zstd",
        debian: "zstd",
        arch: "zstd",
    },
    Provider {
        tool: "sha256sum",
        debian: "coreutils",
        arch: "coreutils",
    },
    Provider {
        tool: "sha1sum",
        debian: "coreutils",
        arch: "coreutils",
    },
    Provider {
        tool: "md5sum",
        debian: "coreutils",
        arch: "coreutils",
    },
    Provider {
        tool: "ssh-keyscan",
        debian: "openssh-client",
        arch: "openssh",
    },
    Provider {
        tool: "ssh",
        debian: "openssh-client",
        arch: "openssh",
    },
    Provider {
        tool: "od",
        debian: "coreutils",
        arch: "coreutils",
    },
];

/// The package names that provide `tool`: "curl" for curl, "passwd (Debian) / shadow (Arch)"
/// where they differ.
pub fn package_for(tool: &str) -> String {
    match PROVIDERS.iter().find(|p| p.tool == tool) {
        Some(p) if p.debian == p.arch => p.debian.to_string(),
        Some(p) => format!("{} (Debian) / {} (Arch)", p.debian, p.arch),
        None => tool.to_string(),
    }
}

/// The message for a tool that is not on the target.
pub fn missing_message(tool: &str) -> String {
    format!(
        "`{tool}` was not found on the target (PATH searched by /bin/sh); install the package {}",
        package_for(tool)
    )
}

impl Script {
    /// Stop the script (exit 127) when `tool` is not on the target's PATH, saying which;
    /// [`missing_tool`] reads what it printed.
    pub fn need(self, tool: &'static str) -> Script {
        self.raw("command -v ")
            .arg(tool)
            .raw(" >/dev/null 2>&1 || { printf '%s%s\\n' ")
            .arg(MARKER)
            .raw(" ")
            .arg(tool)
            .raw(" >&2; exit 127; }\n")
    }
}

/// The tool a guarded script found missing, if that is how it ended.
pub fn missing_tool_name(output: &Output) -> Option<String> {
    if output.status != 127 {
        return None;
    }
    let stderr = output.stderr_str();
    stderr
        .lines()
        .find_map(|line| line.strip_prefix(MARKER))
        .map(|tool| tool.trim().to_string())
}

/// `Err` naming the tool and its package when a guarded script stopped for a missing tool.
pub fn missing_tool(output: &Output) -> Result<(), ModuleError> {
    match missing_tool_name(output) {
        Some(tool) => Err(ModuleError::Failed(missing_message(&tool))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::{Cmd, Host};

    #[test]
    fn a_missing_tool_is_named_with_its_package() {
        let mut host = LocalHost::new("localhost");
        let script = Script::new()
            .need("sh")
            .need("crontab-does-not-exist")
            .raw("echo never");
        let out = host.exec(&Cmd::script(script)).expect("runs");
        assert_eq!(out.status, 127);
        assert!(out.stdout.is_empty());
        assert_eq!(
            missing_tool_name(&out).as_deref(),
            Some("crontab-does-not-exist")
        );
        let err = missing_tool(&out).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "`crontab-does-not-exist` was not found on the target (PATH searched by /bin/sh); \
             install the package crontab-does-not-exist"
        );
    }

    #[test]
    fn present_tools_pass_the_guard() {
        let mut host = LocalHost::new("localhost");
        let out = host
            .exec(&Cmd::script(Script::new().need("sh").raw("echo here")))
            .expect("runs");
        assert_eq!(out.stdout_str(), "here\n");
        assert!(missing_tool(&out).is_ok());
    }

    #[test]
    fn packages_differ_by_distribution() {
        assert_eq!(package_for("crontab"), "cron (Debian) / cronie (Arch)");
        assert_eq!(package_for("curl"), "curl");
    }
}
