//! The play engine: loads Ansible-syntax inventories and playbooks and runs them on hosts.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod connection;
pub mod error;
pub mod executor;
pub mod inventory;
pub mod playbook;
pub mod report;
pub mod roles;
pub mod template;
pub mod vars;
pub mod vault;
pub mod vault_cli;
pub mod yaml;
