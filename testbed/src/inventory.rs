//! Ansible YAML inventories describing a running host set.

use std::path::Path;

use crate::SshHosts;

/// A YAML double-quoted scalar.
pub(crate) fn yaml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// One shell word (Ansible splits `ansible_ssh_common_args` like a shell does).
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

pub(crate) fn path_word(path: &Path) -> String {
    shell_word(&path.to_string_lossy())
}

pub(crate) fn render(hosts: &SshHosts, group: &str) -> String {
    let common_args = format!(
        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        path_word(hosts.known_hosts())
    );
    let mut yaml = String::from("# play testbed inventory\nall:\n  vars:\n");
    yaml.push_str("    ansible_user: root\n");
    yaml.push_str(&format!(
        "    ansible_ssh_private_key_file: {}\n",
        yaml_string(&hosts.client_key().to_string_lossy())
    ));
    yaml.push_str(&format!(
        "    ansible_ssh_common_args: {}\n",
        yaml_string(&common_args)
    ));
    yaml.push_str(&format!(
        "  children:\n    {}:\n      hosts:\n",
        yaml_string(group)
    ));
    for host in hosts.hosts() {
        yaml.push_str(&format!("        {}:\n", yaml_string(&host.name)));
        yaml.push_str(&format!(
            "          ansible_host: {}\n",
            yaml_string(&host.addr)
        ));
        if host.port != 22 {
            yaml.push_str(&format!("          ansible_port: {}\n", host.port));
        }
        if let Some(jump) = host.jump_via.and_then(|index| hosts.hosts().get(index)) {
            // -F passes the key and known_hosts on to the ssh that ProxyJump starts.
            let jump_args = format!(
                "{common_args} -F {} -o ProxyJump=root@{}:{}",
                path_word(hosts.ssh_config()),
                jump.addr,
                jump.port
            );
            yaml.push_str(&format!(
                "          ansible_ssh_common_args: {}\n",
                yaml_string(&jump_args)
            ));
        }
        yaml.push_str(&format!(
            "          base_dir: {}\n",
            yaml_string(&host.base_dir.to_string_lossy())
        ));
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_strings_escape_quotes_and_backslashes() {
        assert_eq!(yaml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(yaml_string("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn shell_words_quote_only_when_needed() {
        assert_eq!(
            shell_word("/tmp/play-testbed-x/known_hosts"),
            "/tmp/play-testbed-x/known_hosts"
        );
        assert_eq!(shell_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
