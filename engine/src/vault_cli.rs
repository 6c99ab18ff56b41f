//! `play vault`: encrypt, decrypt, view, edit and rekey vaulted files, encrypt one value for a
//! `!vault |` block, make a key. Plaintext is written to disk only by `decrypt` (asked for) and
//! inside `edit`'s private temp dir, which is removed on every path out of `edit`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::cli::{VaultAction, VaultCli};
use crate::error::{exit, Diagnostic};
use crate::vault::{ansible, is_age, Vault};

pub fn run(cli: VaultCli) -> Result<i32, Diagnostic> {
    if let VaultAction::Keygen = cli.action {
        return keygen();
    }
    let (config, base) = crate::cli::load_config(Path::new("play.toml"))?;
    let config_ids = config
        .vault_identity
        .as_ref()
        .map(|r| r.items().into_iter().map(|p| base.join(p)).collect())
        .unwrap_or_default();
    let vault = cli.keys.vault(config_ids, Path::new("."), &cli.recipient)?;
    match cli.action {
        VaultAction::Encrypt { files } => {
            for f in &files {
                let plain = read(f)?;
                if is_age(&plain) {
                    return Err(Diagnostic::new(format!(
                        "{} is already encrypted",
                        f.display()
                    )));
                }
                write(f, &vault.encrypt(&plain, true)?)?;
                eprintln!("Encryption successful: {}", f.display());
            }
        }
        VaultAction::Decrypt { files } => {
            for f in &files {
                let plain = decrypt(&vault, f)?;
                write(f, &plain)?;
                eprintln!("Decryption successful: {}", f.display());
            }
        }
        VaultAction::View { files } => {
            let mut out = std::io::stdout();
            for f in &files {
                let plain = decrypt(&vault, f)?;
                let _ = out.write_all(&plain);
            }
        }
        VaultAction::Rekey { files } => {
            for f in &files {
                let plain = decrypt(&vault, f)?;
                write(f, &vault.encrypt(&plain, true)?)?;
                eprintln!("Rekey successful: {}", f.display());
            }
        }
        VaultAction::Edit { file } => edit(&vault, &file)?,
        VaultAction::EncryptString { name } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| Diagnostic::new(format!("cannot read stdin: {e}")))?;
            // `echo secret | play vault encrypt-string x` means the value without the newline.
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            let armored = vault.encrypt(value.as_bytes(), true)?;
            let armored = String::from_utf8_lossy(&armored);
            println!("{name}: !vault |");
            for line in armored.lines() {
                println!("  {line}");
            }
        }
        VaultAction::Migrate { files } => {
            for f in &files {
                if migrate(&vault, f)? {
                    eprintln!("Migrated to age: {}", f.display());
                } else {
                    eprintln!("Nothing to migrate: {}", f.display());
                }
            }
        }
        VaultAction::Keygen => {}
    }
    Ok(exit::OK)
}

fn keygen() -> Result<i32, Diagnostic> {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    eprintln!("Public key: {}", id.to_public());
    println!("# public key: {}", id.to_public());
    println!("{}", id.to_string().expose_secret());
    Ok(exit::OK)
}

fn read(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    std::fs::read(path).map_err(|e| Diagnostic::new(format!("cannot read {}: {e}", path.display())))
}

/// Replace `path`'s contents atomically (temp file beside it, then rename), keeping its mode.
fn write(path: &Path, data: &[u8]) -> Result<(), Diagnostic> {
    let err = |e: std::io::Error| Diagnostic::new(format!("cannot write {}: {e}", path.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Decrypt a file that must be a vaulted one: anything else is refused.
fn decrypt(vault: &Vault, path: &Path) -> Result<Vec<u8>, Diagnostic> {
    let bytes = read(path)?;
    if !is_age(&bytes) {
        return Err(Diagnostic::new(format!(
            "{} is not an age-encrypted file; refusing to decrypt it",
            path.display()
        ))
        .exit_code(exit::ERROR));
    }
    vault.decrypt(&path.display().to_string(), &bytes)
}

/// Decrypt to a 0600 file in a private (0700) temp dir, run `$EDITOR` on it, re-encrypt. The
/// temp dir is a `TempDir`, removed when it drops: on success, on error and on unwinding.
fn edit(vault: &Vault, path: &Path) -> Result<(), Diagnostic> {
    let plain = if path.exists() {
        decrypt(vault, path)?
    } else {
        Vec::new()
    };
    let dir = tempfile::Builder::new()
        .prefix("play-vault-")
        .tempdir()
        .map_err(|e| Diagnostic::new(format!("cannot make a private temp dir: {e}")))?;
    let name = path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| "vault.yml".into());
    let tmp = dir.path().join(name);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Diagnostic::new(format!("cannot write {}: {e}", tmp.display())))?;
        f.write_all(&plain)
            .map_err(|e| Diagnostic::new(format!("cannot write {}: {e}", tmp.display())))?;
    }
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "vi".into());
    // Through the shell so an EDITOR with arguments ("code -w") works as it does for git.
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&tmp)
        .status()
        .map_err(|e| Diagnostic::new(format!("cannot run the editor '{editor}': {e}")))?;
    if !status.success() {
        return Err(Diagnostic::new(format!(
            "the editor '{editor}' failed ({status}); {} is unchanged",
            path.display()
        )));
    }
    let edited = std::fs::read(&tmp)
        .map_err(|e| Diagnostic::new(format!("cannot read {}: {e}", tmp.display())))?;
    if edited == plain && path.exists() {
        return Ok(());
    }
    write(path, &vault.encrypt(&edited, true)?)
}

/// Convert an Ansible Vault file, or the Ansible `!vault |` values of a YAML file, to age in
/// place; whether anything changed. Values are rewritten textually, so the rest of the file
/// (comments, order, quoting) stays as it was.
fn migrate(vault: &Vault, path: &Path) -> Result<bool, Diagnostic> {
    let bytes = read(path)?;
    if ansible::is_ansible_vault(&bytes) {
        let plain = vault.decrypt(&path.display().to_string(), &bytes)?;
        write(path, &vault.encrypt(&plain, true)?)?;
        return Ok(true);
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Diagnostic::new(format!("{} is not UTF-8 text", path.display())))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let head = line.trim_end();
        if head.ends_with("!vault |") || head.ends_with("!vault |-") {
            let mut j = i + 1;
            while j < lines.len() && (lines[j].trim().is_empty() || indent(lines[j]) > indent(line))
            {
                j += 1;
            }
            while j > i + 1 && lines[j - 1].trim().is_empty() {
                j -= 1;
            }
            let block: String = lines[i + 1..j]
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join("\n");
            if j > i + 1 && ansible::is_ansible_vault(block.as_bytes()) {
                let what = format!("the !vault value at {}:{}", path.display(), i + 1);
                let plain = vault.decrypt(&what, block.as_bytes())?;
                let armored = vault.encrypt(&plain, true)?;
                let pad = " ".repeat(indent(lines[i + 1]));
                out.push_str(head.trim_end_matches('-'));
                out.push('\n');
                for l in String::from_utf8_lossy(&armored).lines() {
                    out.push_str(&pad);
                    out.push_str(l);
                    out.push('\n');
                }
                changed = true;
                i = j;
                continue;
            }
        }
        out.push_str(line);
        i += 1;
    }
    if changed {
        write(path, out.as_bytes())?;
    }
    Ok(changed)
}
