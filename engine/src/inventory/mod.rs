//! Ansible inventories (YAML and INI files, directories, group_vars/host_vars) and host patterns.
//!
//! Interface (stub until written):
//! - `Inventory::load(sources: &[PathBuf]) -> Result<Inventory, Diagnostic>`
//! - `Inventory::set_playbook_dir(&mut self, dir: &Path) -> Result<(), Diagnostic>`
//! - `Inventory::hosts(&self) -> impl Iterator<Item = &str>` (inventory order)
//! - `Inventory::select(&self, pattern: &str) -> Result<Vec<String>, Diagnostic>`
//! - `Inventory::host_vars(&self, host: &str) -> Map` (Ansible precedence levels 3-10, raw values)
//! - `Inventory::group_names(&self, host: &str) -> Vec<String>`
//! - `Inventory::groups_var(&self) -> Map` (the `groups` magic variable)
