//! A role's folders on disk: which file of `tasks/`, `vars/`, ... a call reads (Ansible's
//! names and extensions, `main/` folders, `*_from`), its variables files, its `meta/main.yml`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{RoleDef, RoleSpec, META_KEYS};
use crate::error::{exit, Diagnostic};
use crate::playbook::OVERRIDE_KEYWORDS;
use crate::yaml::{self, NodeKind};

/// The files of `dir/sub/` a role reads: `main` (or the `*_from` name) with Ansible's
/// extensions; a directory of that name is read whole, sorted, where Ansible allows it (vars
/// and defaults).
pub fn role_files(
    dir: &Path,
    sub: &str,
    from: Option<&str>,
    allow_dir: bool,
) -> Result<Vec<PathBuf>, Diagnostic> {
    let base = dir.join(sub);
    if !base.is_dir() {
        return Ok(Vec::new());
    }
    let name = from.unwrap_or("main");
    let extensions: &[&str] = if from.is_none() {
        &[".yml", ".yaml", ".json", ""]
    } else {
        &["", ".yml", ".yaml", ".json"]
    };
    let mut found = Vec::new();
    for ext in extensions {
        let path = base.join(format!("{name}{ext}"));
        if path.is_dir() {
            if allow_dir {
                dir_files(&path, &mut found);
                break;
            }
            continue;
        }
        if path.is_file() {
            found.push(path);
            break;
        }
    }
    if found.is_empty() && from.is_some() {
        return Err(Diagnostic::new(format!(
            "Could not find specified file in role: {sub}/{name}"
        ))
        .exit_code(exit::ERROR));
    }
    // `tasks_from: ../../elsewhere` must stay inside the role, as Ansible insists.
    let inside = std::fs::canonicalize(&base).unwrap_or(base.clone());
    for f in &found {
        let real = std::fs::canonicalize(f).unwrap_or(f.clone());
        if !real.starts_with(&inside) {
            return Err(Diagnostic::new(format!(
                "Failed loading '{}' for role as it is not inside the expected role path: '{}'",
                f.display(),
                base.display()
            ))
            .exit_code(exit::ERROR));
        }
    }
    Ok(found)
}

/// The vars files of a `main/` directory: sorted, recursive, hidden and backup files skipped.
fn dir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    names.sort();
    for (name, path) in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = Path::new(&name)
            .extension()
            .map(|e| e.to_string_lossy().into_owned());
        match ext {
            None if path.is_dir() => dir_files(&path, out),
            None => out.push(path),
            Some(e) if path.is_file() && matches!(e.as_str(), "yml" | "yaml" | "json") => {
                out.push(path)
            }
            Some(_) => {}
        }
    }
}

/// A role's `defaults/` or `vars/` (files merged in order, later keys winning).
pub(super) fn load_role_vars(
    dir: &Path,
    name: &str,
    sub: &str,
    from: Option<&str>,
) -> Result<Map<String, Value>, Diagnostic> {
    let mut out = Map::new();
    for f in role_files(dir, sub, from, true)? {
        let node = yaml::load_one(&f)?;
        match node.to_value() {
            Value::Object(m) => out.extend(m),
            Value::Null => {}
            _ => {
                return Err(Diagnostic::new(format!(
                "The {sub}/main.yml file for role '{name}' must contain a dictionary of variables"
            ))
                .at(node.span))
            }
        }
    }
    Ok(out)
}

/// Read a role's `meta/main.yml`: `dependencies` and `allow_duplicates`.
pub(super) fn load_def(dir: &Path) -> Result<RoleDef, Diagnostic> {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut def = RoleDef {
        dir: dir.to_path_buf(),
        canonical,
        allow_duplicates: false,
        deps: Vec::new(),
    };
    let Some(meta) = role_files(dir, "meta", None, false)?.into_iter().next() else {
        return Ok(def);
    };
    let root = yaml::load_one(&meta)?;
    let Some(entries) = root.entries() else {
        if root.is_null() {
            return Ok(def);
        }
        return Err(Diagnostic::new(format!(
            "the 'meta/main.yml' for role {} is not a dictionary",
            dir.display()
        ))
        .at(root.span.clone()));
    };
    for (key, value) in entries {
        match key.as_str() {
            "dependencies" => match &value.kind {
                NodeKind::Null => {}
                NodeKind::Seq(items) => {
                    for item in items {
                        def.deps.push(RoleSpec::from_node(item)?);
                    }
                }
                _ => {
                    return Err(Diagnostic::new("Expected role dependencies to be a list.")
                        .at(value.span.clone()))
                }
            },
            "allow_duplicates" => {
                def.allow_duplicates =
                    modules::args::ansible_bool(&value.to_value()).unwrap_or(false)
            }
            k if META_KEYS.contains(&k) || OVERRIDE_KEYWORDS.contains(&k) => {}
            k => {
                let mut d =
                    Diagnostic::new(format!("'{k}' is not a valid attribute for a RoleMetadata"))
                        .at(value.span.clone());
                if let Some(near) = modules::did_you_mean(k, META_KEYS.iter().copied()) {
                    d = d.note(format!("did you mean '{near}'?"));
                }
                return Err(d);
            }
        }
    }
    Ok(def)
}
