//! Finding a role's directory by name: Ansible's search order, plus the project's `roles/`, and
//! the "not found" error that lists where it looked and the nearest names that do exist.

use std::path::{Path, PathBuf};

use crate::error::{exit, Diagnostic, Span};

/// Where roles are looked for, besides the places that depend on the play (beside the
/// playbook) or on the calling role (its own directory's siblings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleSearch {
    /// `PLAY_ROLES_PATH`, `ANSIBLE_ROLES_PATH` or play.toml's `roles_path`; when none is
    /// set, Ansible's default (`~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles`),
    /// where `ansible-galaxy` installs roles.
    pub roles_path: Vec<PathBuf>,
    /// The project's own `roles/` (beside the play.toml in use).
    pub project_roles: Option<PathBuf>,
}

impl RoleSearch {
    /// The search settings for a run: the configured path, or Ansible's default path.
    pub fn new(configured: Vec<PathBuf>, project_dir: Option<&Path>) -> Self {
        let roles_path = if configured.is_empty() {
            default_roles_path()
        } else {
            configured
        };
        RoleSearch {
            roles_path,
            project_roles: project_dir.map(|d| join_clean(d, "roles")),
        }
    }

    /// The directories searched for a role named by a play in `play_dir` (or by a role whose
    /// directory sits in `caller_base`), in Ansible's order: the playbook's `roles/`, the
    /// configured roles path, the project's `roles/`, the calling role's siblings, the
    /// playbook's directory itself.
    pub fn dirs(&self, play_dir: &Path, caller_base: Option<&Path>) -> Vec<PathBuf> {
        let mut dirs = vec![join_clean(play_dir, "roles")];
        dirs.extend(self.roles_path.iter().cloned());
        if let Some(p) = &self.project_roles {
            dirs.push(p.clone());
        }
        if let Some(base) = caller_base {
            dirs.push(base.to_path_buf());
        }
        dirs.push(play_dir.to_path_buf());
        let mut unique: Vec<PathBuf> = Vec::new();
        for d in dirs {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        unique
    }

    /// Resolve a role name (a name, `namespace.name`, or a path) to its directory and the
    /// name Ansible gives it (the last path component when the name is a path).
    pub fn resolve(
        &self,
        name: &str,
        play_dir: &Path,
        caller_base: Option<&Path>,
        span: &Span,
    ) -> Result<(String, PathBuf), Diagnostic> {
        let dirs = self.dirs(play_dir, caller_base);
        let mut tried = Vec::new();
        for d in &dirs {
            let candidate = join_clean(d, name);
            if candidate.is_dir() {
                return Ok((name.to_string(), candidate));
            }
            tried.push(candidate);
        }
        // Galaxy-style `namespace.name`: Ansible finds a `namespace.name` folder (above); a
        // role installed or vendored as plain `name` is found too.
        if let Some((_, short)) = name.split_once('.').filter(|(ns, short)| {
            !ns.is_empty() && !short.is_empty() && !name.contains('/') && !short.contains('.')
        }) {
            for d in &dirs {
                let candidate = join_clean(d, short);
                if candidate.is_dir() {
                    return Ok((name.to_string(), candidate));
                }
                tried.push(candidate);
            }
        }
        // Finally the name as a path, relative to the current directory.
        let as_path = PathBuf::from(name);
        if as_path.is_dir() {
            let base = as_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.to_string());
            return Ok((base, as_path));
        }
        if !tried.contains(&as_path) {
            tried.push(as_path);
        }
        Err(not_found(name, &dirs, &tried, span))
    }
}

/// `dir/rel`, without a leading `./` when `dir` is the current directory (so messages say
/// `roles/web/meta/main.yml`, as the user would write it).
pub fn join_clean(dir: &Path, rel: &str) -> PathBuf {
    if dir == Path::new(".") || dir.as_os_str().is_empty() {
        PathBuf::from(rel)
    } else {
        dir.join(rel)
    }
}

fn default_roles_path() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        out.push(PathBuf::from(home).join(".ansible/roles"));
    }
    out.push(PathBuf::from("/usr/share/ansible/roles"));
    out.push(PathBuf::from("/etc/ansible/roles"));
    out
}

/// "the role 'x' was not found", with every path tried and the nearest existing role names.
fn not_found(name: &str, dirs: &[PathBuf], tried: &[PathBuf], span: &Span) -> Diagnostic {
    let mut d = Diagnostic::new(format!("the role '{name}' was not found"))
        .at(span.clone())
        .exit_code(exit::ERROR);
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    d = d.note(format!("searched: {}", tried.join(", ")));
    let nearest = nearest_roles(name, dirs);
    if !nearest.is_empty() {
        d = d.note(format!("nearest existing roles: {}", nearest.join(", ")));
    }
    d
}

/// Up to three role names found in the search directories, nearest to `name` first.
fn nearest_roles(name: &str, dirs: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            if !path.is_dir() || !looks_like_role(&path) {
                continue;
            }
            let n = e.file_name().to_string_lossy().into_owned();
            if !n.starts_with('.') && !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .map(|n| (strsim::levenshtein(name, &n), n))
        .collect();
    scored.sort();
    // Names within a few edits of the one asked for; failing that, the single nearest.
    let near_enough = name.chars().count().div_ceil(2).max(2);
    let close: Vec<String> = scored
        .iter()
        .filter(|(d, _)| *d <= near_enough)
        .take(3)
        .map(|(_, n)| n.clone())
        .collect();
    if close.is_empty() {
        scored.into_iter().take(1).map(|(_, n)| n).collect()
    } else {
        close
    }
}

/// A directory with any of a role's folders in it.
fn looks_like_role(path: &Path) -> bool {
    [
        "tasks",
        "meta",
        "defaults",
        "vars",
        "handlers",
        "templates",
        "files",
    ]
    .iter()
    .any(|sub| path.join(sub).is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkrole(base: &Path, name: &str) {
        std::fs::create_dir_all(base.join(name).join("tasks")).expect("mkdir");
    }

    #[test]
    fn finds_roles_in_order_and_explains_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let play_dir = dir.path().join("pb");
        let second = dir.path().join("second");
        mkrole(&play_dir.join("roles"), "common");
        mkrole(&second, "common");
        mkrole(&second, "webserver");
        mkrole(&second, "acme.db");
        mkrole(&second, "cache");
        let search = RoleSearch::new(vec![second.clone()], None);
        let span = Span::new(Path::new("site.yml"), 3, 7);
        let (name, path) = search
            .resolve("common", &play_dir, None, &span)
            .expect("found");
        assert_eq!(
            (name.as_str(), path),
            ("common", play_dir.join("roles/common"))
        );
        let (_, path) = search
            .resolve("webserver", &play_dir, None, &span)
            .expect("found in the second path");
        assert_eq!(path, second.join("webserver"));
        let (name, path) = search
            .resolve("acme.db", &play_dir, None, &span)
            .expect("a namespace.name folder");
        assert_eq!((name.as_str(), path), ("acme.db", second.join("acme.db")));
        let (name, path) = search
            .resolve("acme.cache", &play_dir, None, &span)
            .expect("namespace.name as plain name");
        assert_eq!((name.as_str(), path), ("acme.cache", second.join("cache")));

        let e = search
            .resolve("webservr", &play_dir, None, &span)
            .expect_err("missing");
        assert_eq!(e.message, "the role 'webservr' was not found");
        assert_eq!(e.code, exit::ERROR);
        assert_eq!(
            e.notes[0],
            format!(
                "searched: {}, {}, {}, webservr",
                play_dir.join("roles/webservr").display(),
                second.join("webservr").display(),
                play_dir.join("webservr").display()
            )
        );
        assert_eq!(e.notes[1], "nearest existing roles: webserver");
    }
}
