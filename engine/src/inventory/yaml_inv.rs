//! YAML (and JSON) inventories as Ansible's `yaml` plugin reads them: top-level groups with `hosts:`, `children:` and `vars:`.
//!
//! Like Ansible, a group whose definition is not a mapping and unknown keys in a group are
//! skipped with a warning, while a `hosts`/`children`/`vars` that is not a mapping is an
//! error; every error names the file and line.

use std::path::Path;

use crate::error::{exit, Diagnostic, Span};
use crate::yaml::{Node, NodeKind};

use super::address::expand_host_pattern;
use super::Inventory;

/// Far beyond any real inventory; it keeps a hostile file from exhausting the stack.
const MAX_GROUP_NESTING: usize = 200;

fn error(message: String, span: &Span) -> Diagnostic {
    Diagnostic::new(message)
        .at(span.clone())
        .exit_code(exit::PARSE)
}

pub(super) fn parse(
    inventory: &mut Inventory,
    doc: Option<&Node>,
    path: &Path,
) -> Result<(), Diagnostic> {
    let Some(doc) = doc else {
        return Ok(());
    };
    let entries = match &doc.kind {
        NodeKind::Null => return Ok(()),
        NodeKind::Map(entries) => entries,
        _ => {
            return Err(error(
                format!(
                    "YAML inventory has invalid structure, it should be a mapping of group names to groups, got {}",
                    doc.type_name()
                ),
                &doc.span,
            ))
        }
    };
    if let Some(plugin) = doc.get("plugin").filter(|p| !p.is_null()) {
        return Err(error(
            format!(
                "{} is an inventory plugin configuration (plugin: {}), which is not supported",
                path.display(),
                key_text(plugin)
            ),
            &plugin.span,
        ));
    }
    let mut parser = Parser { inventory, path };
    for (key, value) in entries {
        let name = group_name(key)?;
        parser.group(name, key, value, 0)?;
    }
    Ok(())
}

fn group_name(key: &Node) -> Result<&str, Diagnostic> {
    match key.as_str() {
        Some(name) if !name.is_empty() => Ok(name),
        Some(_) => Err(error("a group name must not be empty".into(), &key.span)),
        None => Err(error(
            format!(
                "a group name must be a string, not {} ({key}); quote it",
                key.type_name()
            ),
            &key.span,
        )),
    }
}

struct Parser<'a> {
    inventory: &'a mut Inventory,
    path: &'a Path,
}

impl Parser<'_> {
    /// One group definition (`name:` followed by null or a mapping). Returns whether the
    /// group exists afterwards.
    fn group(
        &mut self,
        name: &str,
        key: &Node,
        data: &Node,
        depth: usize,
    ) -> Result<bool, Diagnostic> {
        if depth > MAX_GROUP_NESTING {
            return Err(error(
                format!("groups nest more than {MAX_GROUP_NESTING} levels deep here"),
                &key.span,
            ));
        }
        // A local tag on a group (`web: !something {...}`) doesn't change what it holds.
        let data = match &data.kind {
            NodeKind::Tagged(_, inner) => inner.as_ref(),
            _ => data,
        };
        let entries: &[(Node, Node)] = match &data.kind {
            NodeKind::Null => &[],
            NodeKind::Map(entries) => entries,
            _ => {
                self.inventory.warn(format!(
                    "{}: Skipping '{name}' as this is not a valid group definition (it is {}, not a mapping)",
                    key.span,
                    data.type_name()
                ));
                return Ok(self.inventory.groups.contains_key(name));
            }
        };
        let group = self.inventory.ensure_group(name);
        for (section_key, value) in entries {
            let section = section_key.as_str().unwrap_or("");
            let is_section = matches!(section, "vars" | "children" | "hosts");
            // A bare string is shorthand for a one-entry mapping (`hosts: web1`).
            let shorthand;
            let items: &[(Node, Node)] = match &value.kind {
                NodeKind::Map(items) => items,
                NodeKind::Null => continue,
                NodeKind::Str(_) if is_section => {
                    shorthand = [(value.clone(), Node { kind: NodeKind::Null, span: value.span.clone() })];
                    &shorthand
                }
                _ if is_section => {
                    return Err(error(
                        format!(
                            "Invalid \"{section}\" entry for \"{name}\" group, requires a dictionary, found {} instead.",
                            value.type_name()
                        ),
                        &value.span,
                    ))
                }
                _ => {
                    self.inventory.warn(format!(
                        "{}: Skipping key ({}) in group ({name}) as it is not a mapping, it is {}",
                        section_key.span,
                        key_text(section_key),
                        value.type_name()
                    ));
                    continue;
                }
            };
            match section {
                "vars" => {
                    for (var_key, var_value) in items {
                        self.inventory
                            .set_group_var(group, &key_text(var_key), var_value.to_value())
                            .map_err(|message| error(message, &var_value.span))?;
                    }
                }
                "children" => {
                    for (child_key, child_data) in items {
                        let child_name = group_name(child_key)?;
                        if !self.group(child_name, child_key, child_data, depth + 1)? {
                            return Err(error(
                                format!("'{child_name}' is not a known host nor group"),
                                &child_key.span,
                            ));
                        }
                        let child = self.inventory.ensure_group(child_name);
                        self.inventory
                            .add_child_group(group, child)
                            .map_err(|message| error(message, &child_key.span))?;
                    }
                }
                "hosts" => {
                    for (host_key, host_vars) in items {
                        self.hosts(group, name, host_key, host_vars)?;
                    }
                }
                _ => self.inventory.warn(format!(
                    "{}: Skipping unexpected key ({}) in group ({name}), only \"vars\", \"children\" and \"hosts\" are valid",
                    section_key.span,
                    key_text(section_key)
                )),
            }
        }
        Ok(true)
    }

    /// One `hosts:` entry: a host name or range, with a mapping of variables or nothing.
    fn hosts(
        &mut self,
        group: usize,
        group_name: &str,
        key: &Node,
        vars: &Node,
    ) -> Result<(), Diagnostic> {
        let Some(pattern) = key.as_str() else {
            return Err(error(
                format!("Host pattern {key} must be a string. Enclose integers/floats in quotation marks."),
                &key.span,
            ));
        };
        let (names, port) =
            expand_host_pattern(pattern).map_err(|message| error(message, &key.span))?;
        if names.iter().any(String::is_empty) {
            return Err(error("a host name must not be empty".into(), &key.span));
        }
        let vars = match &vars.kind {
            NodeKind::Null => Vec::new(),
            _ => vars.entries().ok_or_else(|| {
                error(
                    format!(
                        "host '{pattern}' in group '{group_name}' must map to a mapping of variables (or nothing), not {}",
                        vars.type_name()
                    ),
                    &vars.span,
                )
            })?,
        };
        for name in names {
            let host = self.inventory.ensure_host(&name, port, Some(self.path));
            self.inventory.add_host_to_group(host, group);
            for (var, value) in &vars {
                self.inventory.set_host_var(host, var, value.to_value());
            }
        }
        Ok(())
    }
}

/// A variable name from a mapping key; non-string keys as Python prints them (`1:` is
/// "1", `true:` is "True"), matching `Node::entries`.
fn key_text(key: &Node) -> String {
    match &key.kind {
        NodeKind::Str(s) => s.clone(),
        NodeKind::Bool(true) => "True".into(),
        NodeKind::Bool(false) => "False".into(),
        NodeKind::Null => "null".into(),
        _ => key.to_string(),
    }
}
