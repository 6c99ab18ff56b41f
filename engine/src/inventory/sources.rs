//! Inventory sources: host lists, files (YAML or INI, told apart as Ansible's plugins do) and directories of them.

use std::path::{Component, Path, PathBuf};

use crate::error::{exit, Diagnostic};
use crate::yaml::{self, Node, NodeKind};

use super::vars_dirs::python_extension;
use super::{address, ini, yaml_inv, Inventory, UNGROUPED};

/// Directory entries Ansible never reads as inventory: hidden files, vars dirs, and
/// `INVENTORY_IGNORE_EXTS` (backups, docs, retry files).
fn is_ignored(name: &str) -> bool {
    const IGNORED_SUFFIXES: [&str; 12] = [
        ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
        ".retry",
    ];
    name.starts_with('.')
        || matches!(name, "host_vars" | "group_vars" | "vars_plugins")
        || IGNORED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// Loads one `-i` source. Returns the directory whose group_vars/host_vars belong to it
/// (the directory itself, or a file's parent); host lists have none.
pub(super) fn load_source(
    inventory: &mut Inventory,
    source: &Path,
) -> Result<Option<PathBuf>, Diagnostic> {
    let text = source.to_string_lossy();
    if text.contains(',') && !source.exists() {
        load_host_list(inventory, &text);
        return Ok(None);
    }
    let path = absolute(source);
    if path.is_dir() {
        load_dir(inventory, &path)?;
        Ok(Some(path))
    } else if path.exists() {
        load_file(inventory, &path)?;
        Ok(path.parent().map(Path::to_path_buf))
    } else {
        Err(Diagnostic::new(format!(
            "inventory source {} does not exist (a list of hosts needs a comma, e.g. 'host1,')",
            source.display()
        ))
        .exit_code(exit::ERROR))
    }
}

/// `"web1,web2:2222,"`: each name goes to `ungrouped`; no ranges, as in Ansible.
fn load_host_list(inventory: &mut Inventory, list: &str) {
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, port) =
            address::parse_address(entry, false).unwrap_or_else(|| (entry.to_string(), None));
        if !inventory.hosts.contains_key(&name) {
            let host = inventory.ensure_host(&name, port, None);
            inventory.add_host_to_group(host, UNGROUPED);
        }
    }
}

fn load_dir(inventory: &mut Inventory, dir: &Path) -> Result<(), Diagnostic> {
    let read = std::fs::read_dir(dir).map_err(|e| {
        Diagnostic::new(format!(
            "could not read inventory directory {}: {e}",
            dir.display()
        ))
        .exit_code(exit::ERROR)
    })?;
    let mut names: Vec<_> = read
        .filter_map(|entry| entry.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for name in names {
        if is_ignored(&name.to_string_lossy()) {
            continue;
        }
        let path = dir.join(&name);
        if path.is_dir() {
            load_dir(inventory, &path)?;
        } else {
            load_file(inventory, &path)?;
        }
    }
    Ok(())
}

fn load_file(inventory: &mut Inventory, path: &Path) -> Result<(), Diagnostic> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extension = python_extension(&name);
    let unsupported = |what: &str| {
        Diagnostic::new(format!(
            "{}: {what} inventories are not supported",
            path.display()
        ))
        .exit_code(exit::PARSE)
    };
    if extension == ".toml" {
        return Err(unsupported("TOML"));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::new(format!(
            "could not read inventory file {}: {e}",
            path.display()
        ))
        .exit_code(exit::ERROR)
    })?;
    if bytes.starts_with(b"#!") && is_executable(path) {
        return Err(unsupported("dynamic (script)")
            .note("run the script yourself and pass its output as a YAML or JSON inventory file"));
    }
    // An inventory may be vaulted whole, like any vars file.
    let bytes = if crate::vault::is_age(&bytes) || crate::vault::ansible::is_ansible_vault(&bytes) {
        crate::vault::decrypt_file_if_encrypted(path, bytes)?
            .0
            .into_bytes()
    } else {
        bytes
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        Diagnostic::new(format!(
            "inventory file {} is not UTF-8 text: {e}",
            path.display()
        ))
        .exit_code(exit::PARSE)
    })?;
    let yaml_extension = matches!(extension, ".yml" | ".yaml" | ".json");
    if !yaml_extension && !extension.is_empty() {
        return ini::parse(inventory, &text, path);
    }
    // Ansible's plugin chain: YAML first (files with a YAML extension or none), then INI.
    // A YAML mapping is a YAML inventory, whatever errors it holds; anything else
    // (a syntax error, a scalar, a list) is given to the INI reader.
    let document = single_document(&text, path);
    match document {
        Ok(Some(doc)) if matches!(doc.kind, NodeKind::Map(_)) => {
            return yaml_inv::parse(inventory, Some(&doc), path);
        }
        Ok(None) => return Ok(()),
        _ => {}
    }
    let Err(ini_error) = ini::parse(inventory, &text, path) else {
        return Ok(());
    };
    // Report the error of the format the file most likely meant.
    let yaml_error = match document {
        Err(e) => e,
        Ok(doc) => match yaml_inv::parse(inventory, doc.as_ref(), path) {
            Err(e) => e,
            Ok(()) => return Err(ini_error),
        },
    };
    if yaml_extension {
        Err(yaml_error.note(format!(
            "not an INI inventory either: {}",
            ini_error.message
        )))
    } else {
        Err(ini_error.note(format!(
            "read as INI because it is not a YAML mapping either: {}",
            yaml_error.message
        )))
    }
}

/// The document of a YAML inventory (`None` when empty); several documents are an error.
fn single_document(text: &str, path: &Path) -> Result<Option<Node>, Diagnostic> {
    let mut docs = yaml::load_str(text, path)?;
    for doc in &mut docs {
        // Inline `!vault` host variables.
        yaml::reveal(doc, false)?;
    }
    if docs.len() > 1 {
        return Err(Diagnostic::new(format!(
            "{} holds several YAML documents; an inventory must be one",
            path.display()
        ))
        .at(docs[1].span.clone())
        .exit_code(exit::PARSE));
    }
    Ok(docs.pop())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

/// An absolute path with `.` and `..` resolved lexically (Ansible's `unfrackpath`, which
/// does not follow symlinks).
pub(super) fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_directory_entries_match_ansibles_defaults() {
        for name in [
            ".git",
            "group_vars",
            "host_vars",
            "hosts.retry",
            "hosts.orig",
            "hosts.ini~",
            "README.md",
            "x.cfg",
            "a.bak",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        for name in ["hosts", "hosts.ini", "prod.yml", "inventory.json"] {
            assert!(!is_ignored(name), "{name}");
        }
    }

    #[test]
    fn absolute_paths_are_normalised_lexically() {
        assert_eq!(absolute(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
