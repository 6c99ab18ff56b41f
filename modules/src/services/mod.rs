//! Modules that drive a service manager: `systemd_service` (alias `systemd`) and `service`.

pub mod service;
pub mod systemd;

#[cfg(test)]
pub(crate) mod scripted;
