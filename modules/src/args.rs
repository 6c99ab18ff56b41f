//! Parsing module arguments the way Ansible coerces them (stub: being written).
