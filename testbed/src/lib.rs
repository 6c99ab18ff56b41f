//! Starts real targets for play's tests (sshd hosts, systemd containers, ...) and tears them down.
