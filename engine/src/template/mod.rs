//! Jinja2 templating with Ansible's semantics on minijinja (stub until written).
