//! The play engine: loads Ansible-syntax inventories and playbooks and runs them on hosts.

pub mod error;
pub mod inventory;
pub mod template;
pub mod yaml;
