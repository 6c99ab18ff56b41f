//! group_vars/ and host_vars/ directories beside inventory sources and playbooks (Ansible's `host_group_vars` vars plugin).
//!
//! For an entity `NAME` the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json` that
//! exists is used; if it is a directory, every file in it (recursively, sorted, skipping
//! hidden files and `~` backups, only no/known extensions) is merged in order.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{exit, Diagnostic};
use crate::yaml;

use super::{merge, Map};

const VARS_EXTENSIONS: [&str; 3] = [".yml", ".yaml", ".json"];

/// The group_vars/ and host_vars/ of one base directory, loaded per entity on demand.
#[derive(Debug, Clone)]
pub(super) struct VarsDir {
    base: PathBuf,
    groups: EntityDir,
    hosts: EntityDir,
}

impl VarsDir {
    /// Looks at `base/group_vars` and `base/host_vars`; missing ones are simply empty.
    pub(super) fn open(base: &Path, warnings: &mut Vec<String>) -> VarsDir {
        VarsDir {
            base: base.to_path_buf(),
            groups: EntityDir::open(&base.join("group_vars"), warnings),
            hosts: EntityDir::open(&base.join("host_vars"), warnings),
        }
    }

    pub(super) fn base(&self) -> &Path {
        &self.base
    }

    pub(super) fn load_group(&mut self, name: &str) -> Result<(), Diagnostic> {
        self.groups.load(name)
    }

    pub(super) fn load_host(&mut self, name: &str) -> Result<(), Diagnostic> {
        self.hosts.load(name)
    }

    /// The merged group_vars of a group, if it has any files here.
    pub(super) fn group(&self, name: &str) -> Option<&Map> {
        self.groups.loaded.get(name)
    }

    pub(super) fn host(&self, name: &str) -> Option<&Map> {
        self.hosts.loaded.get(name)
    }
}

#[derive(Debug, Clone)]
struct EntityDir {
    dir: PathBuf,
    /// Names in the directory (`None` when it doesn't exist); looking names up here
    /// instead of probing paths keeps host names like `../x` from escaping the directory.
    entries: Option<HashSet<String>>,
    /// Entities already looked up.
    looked_up: HashSet<String>,
    /// Merged variables of the entities that have files.
    loaded: HashMap<String, Map>,
}

impl EntityDir {
    fn open(dir: &Path, warnings: &mut Vec<String>) -> EntityDir {
        let entries = if dir.is_dir() {
            std::fs::read_dir(dir).ok().map(|read| {
                read.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                    .collect()
            })
        } else {
            if dir.exists() {
                warnings.push(format!(
                    "Found {} that is not a directory, skipping: {}",
                    dir.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    dir.display()
                ));
            }
            None
        };
        EntityDir {
            dir: dir.to_path_buf(),
            entries,
            looked_up: HashSet::new(),
            loaded: HashMap::new(),
        }
    }

    fn load(&mut self, name: &str) -> Result<(), Diagnostic> {
        let Some(entries) = &self.entries else {
            return Ok(());
        };
        // Ansible skips names that are absolute paths ("chroot" style inventory hostnames).
        if name.is_empty() || name.starts_with('/') || !self.looked_up.insert(name.to_string()) {
            return Ok(());
        }
        let Some(found) = std::iter::once("")
            .chain(VARS_EXTENSIONS)
            .map(|ext| format!("{name}{ext}"))
            .find(|candidate| entries.contains(candidate))
        else {
            return Ok(());
        };
        let path = self.dir.join(found);
        let files = if path.is_dir() {
            files_in(&path)
        } else {
            vec![path]
        };
        let mut vars = Map::new();
        for file in files {
            merge(&mut vars, &load_vars_file(&file)?);
        }
        self.loaded.insert(name.to_string(), vars);
        Ok(())
    }
}

/// Vars files under a `group_vars/NAME/` directory, in Ansible's order.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut files = Vec::new();
    for name in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = python_extension(&name);
        let path = dir.join(&name);
        if path.is_dir() && ext.is_empty() {
            files.extend(files_in(&path));
        } else if path.is_file() && (ext.is_empty() || VARS_EXTENSIONS.contains(&ext)) {
            files.push(path);
        }
    }
    files
}

/// Python's `os.path.splitext(name)[1]`: from the last dot, unless the dots only lead the name.
pub(super) fn python_extension(name: &str) -> &str {
    let stem_start = name.len() - name.trim_start_matches('.').len();
    match name[stem_start..].rfind('.') {
        Some(dot) => &name[stem_start + dot..],
        None => "",
    }
}

/// One vars file: a mapping of variable names to values; empty files give nothing.
fn load_vars_file(path: &Path) -> Result<Map, Diagnostic> {
    let node = yaml::load_one(path)?;
    match node.to_value() {
        serde_json::Value::Object(map) => Ok(map),
        serde_json::Value::Null => Ok(Map::new()),
        _ => Err(Diagnostic::new(format!(
            "vars file {} must be a mapping of variable names to values, not {}",
            path.display(),
            node.type_name()
        ))
        .at(node.span.clone())
        .exit_code(exit::PARSE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_follow_python_splitext() {
        assert_eq!(python_extension("web.yml"), ".yml");
        assert_eq!(python_extension("web"), "");
        assert_eq!(python_extension(".hidden"), "");
        assert_eq!(python_extension("a.b.json"), ".json");
        assert_eq!(python_extension("web."), ".");
    }

    #[test]
    fn entity_files_dirs_and_precedence_of_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gv = tmp.path().join("group_vars");
        std::fs::create_dir_all(gv.join("web/sub")).expect("mkdir");
        std::fs::write(gv.join("web/a.yml"), "x: 1\ny: 1\n").expect("write");
        std::fs::write(gv.join("web/sub/b"), "y: 2\n").expect("write");
        std::fs::write(gv.join("web/c.yaml"), "z: 3\n").expect("write");
        std::fs::write(gv.join("web/.hidden.yml"), "x: hidden\n").expect("write");
        std::fs::write(gv.join("web/d.yml~"), "x: backup\n").expect("write");
        std::fs::write(gv.join("web/notes.txt"), "x: txt\n").expect("write");
        // A file without extension wins over NAME.yml.
        std::fs::write(gv.join("db"), "from: plain\n").expect("write");
        std::fs::write(gv.join("db.yml"), "from: yml\n").expect("write");
        std::fs::write(gv.join("empty.yml"), "").expect("write");
        let mut warnings = Vec::new();
        let mut dir = VarsDir::open(tmp.path(), &mut warnings);
        for name in ["web", "db", "empty", "missing", "../group_vars/db"] {
            dir.load_group(name).expect("loads");
        }
        assert_eq!(
            serde_json::Value::Object(dir.group("web").cloned().expect("web")),
            serde_json::json!({"x": 1, "y": 2, "z": 3})
        );
        assert_eq!(
            dir.group("db").and_then(|m| m.get("from")),
            Some(&"plain".into())
        );
        assert_eq!(dir.group("empty"), Some(&Map::new()));
        assert_eq!(dir.group("missing"), None);
        assert_eq!(dir.group("../group_vars/db"), None);
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_vars_file_that_is_not_a_mapping_is_an_error_with_its_place() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("host_vars")).expect("mkdir");
        let file = tmp.path().join("host_vars/web1.yml");
        std::fs::write(&file, "- a\n- b\n").expect("write");
        let mut dir = VarsDir::open(tmp.path(), &mut Vec::new());
        let err = dir.load_host("web1").expect_err("a list is not vars");
        assert_eq!(
            err.message,
            format!(
                "vars file {} must be a mapping of variable names to values, not a list",
                file.display()
            )
        );
        assert_eq!(err.span.map(|s| s.line), Some(1));
        assert_eq!(err.code, 4);
    }

    #[test]
    fn a_group_vars_file_instead_of_a_directory_is_a_warning() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("group_vars"), "x: 1\n").expect("write");
        let mut warnings = Vec::new();
        let mut dir = VarsDir::open(tmp.path(), &mut warnings);
        dir.load_group("all").expect("nothing to load");
        assert_eq!(dir.group("all"), None);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("Found group_vars that is not a directory, skipping: "));
    }
}
