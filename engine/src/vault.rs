//! The vault: age-encrypted vars files and `!vault` values, decrypted only in memory, and the
//! set of decrypted secrets that every output path masks.
//!
//! Why a process-wide vault: vars files are read from deep inside the inventory, playbook and
//! role loaders and from tasks (`include_vars`); like Ansible's vault secrets, the keys are a
//! property of the invocation, so they are installed once (`install`) and every file read by
//! `yaml::load_file`/`load_one` goes through `decrypt_file_if_encrypted`. The keys are kept as
//! their text (not parsed `age` identities, which are not `Sync`) and parsed per decryption,
//! which is cheap next to the decryption itself.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use age::secrecy::SecretString;

use crate::error::{exit, Diagnostic};

pub mod ansible;

/// What a vault-derived value is shown as.
pub const MASK: &str = "********";

const AGE_BINARY: &[u8] = b"age-encryption.org/v1\n";
const AGE_ARMOR: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// One key the user gave: an identity file (age X25519 or an SSH private key) or a passphrase.
#[derive(Clone)]
pub enum Key {
    /// Where it came from (for error messages) and its contents.
    File(PathBuf, String),
    /// A passphrase (scrypt), and where it came from.
    Passphrase(String, String),
}

impl Key {
    fn origin(&self) -> String {
        match self {
            Key::File(p, _) => p.display().to_string(),
            Key::Passphrase(_, from) => format!("passphrase from {from}"),
        }
    }
}

/// The keys of this invocation, and the recipients new ciphertext is encrypted to.
#[derive(Clone, Default)]
pub struct Vault {
    pub keys: Vec<Key>,
    /// Recipient lines (`age1...`, `ssh-ed25519 ...`, `ssh-rsa ...`).
    pub recipients: Vec<String>,
    /// Ansible Vault passwords, to read (and migrate) existing Ansible vaults.
    pub ansible_passwords: Vec<String>,
}

static VAULT: RwLock<Option<Arc<Vault>>> = RwLock::new(None);
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Make `vault` the one every file read from now on is decrypted with.
pub fn install(vault: Vault) {
    if let Ok(mut v) = VAULT.write() {
        *v = Some(Arc::new(vault));
    }
}

fn current() -> Arc<Vault> {
    VAULT
        .read()
        .ok()
        .and_then(|v| v.clone())
        .unwrap_or_default()
}

/// Remember a decrypted value so output never shows it. Very short values are not masked:
/// masking every `yes` or `80` in the output would garble it and hide nothing.
pub fn register_secret(secret: &str) {
    let s = secret.trim();
    if s.chars().count() < 4 {
        return;
    }
    let mut forms = vec![s.to_string(), secret.to_string()];
    // JSON events and Python-style results escape newlines and quotes; mask those forms too.
    if let Ok(j) = serde_json::to_string(s) {
        forms.push(j[1..j.len() - 1].to_string());
    }
    for line in s.lines().map(str::trim).filter(|l| l.chars().count() >= 4) {
        forms.push(line.to_string());
    }
    if let Ok(mut set) = SECRETS.lock() {
        for f in forms {
            if !set.contains(&f) {
                set.push(f);
            }
        }
        // Longest first, so a secret containing another is masked whole.
        set.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret replaced by `********`.
pub fn redact(text: &str) -> String {
    let Ok(set) = SECRETS.lock() else {
        return text.to_string();
    };
    let mut out = text.to_string();
    for s in set.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// Whether these bytes are an age file (binary or armored).
pub fn is_age(bytes: &[u8]) -> bool {
    let start = trim_ascii_start(bytes);
    start.starts_with(AGE_BINARY) || start.starts_with(AGE_ARMOR.as_bytes())
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// The text of a file: decrypted when it is an age file, as is otherwise.
pub fn decrypt_file_if_encrypted(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(String, bool), Diagnostic> {
    if ansible::is_ansible_vault(&bytes) || is_age(&bytes) {
        let plain = current().decrypt(&path.display().to_string(), &bytes)?;
        let text = String::from_utf8(plain).map_err(|_| {
            Diagnostic::new(format!(
                "{}: the decrypted file is not UTF-8 text",
                path.display()
            ))
        })?;
        return Ok((text, true));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Diagnostic::new(format!("could not read {}: not UTF-8 text", path.display())).exit_code(1)
    })?;
    Ok((text, false))
}

/// A controller file a task sends (`copy`/`template`/`script` sources): decrypted in memory
/// when vaulted, as Ansible does, with its lines registered as secrets so `--diff` masks them.
pub fn read_controller_file(path: &Path) -> Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("Could not read '{}': {e}", path.display()))?;
    if !is_age(&bytes) && !ansible::is_ansible_vault(&bytes) {
        return Ok(bytes);
    }
    let plain = current()
        .decrypt(&path.display().to_string(), &bytes)
        .map_err(|d| format!("{} ({})", d.message, d.notes.join("; ")))?;
    register_secret(&String::from_utf8_lossy(&plain));
    Ok(plain)
}

/// The plaintext of an inline `!vault` value (an armored age ciphertext); `what` names it.
pub fn decrypt_value(text: &str, what: &str) -> Result<String, Diagnostic> {
    if !text.trim_start().starts_with(AGE_ARMOR) && !ansible::is_ansible_vault(text.as_bytes()) {
        return Err(Diagnostic::new(format!(
            "{what}: a !vault value must be an ASCII-armored age ciphertext ({AGE_ARMOR} ...)"
        ))
        .exit_code(exit::PARSE));
    }
    let plain = current().decrypt(what, text.as_bytes())?;
    let plain = String::from_utf8(plain)
        .map_err(|_| Diagnostic::new(format!("{what}: the decrypted value is not UTF-8 text")))?;
    register_secret(&plain);
    Ok(plain)
}

impl Vault {
    fn identities(&self) -> Result<Vec<Box<dyn age::Identity>>, Diagnostic> {
        let mut out: Vec<Box<dyn age::Identity>> = Vec::new();
        for key in &self.keys {
            match key {
                Key::Passphrase(p, _) => out.push(Box::new(age::scrypt::Identity::new(
                    SecretString::from(p.clone()),
                ))),
                Key::File(path, text) => out.extend(parse_identity_file(path, text)?),
            }
        }
        Ok(out)
    }

    /// Decrypt an age file (binary or armored) or an Ansible Vault; `what` names it in errors.
    pub fn decrypt(&self, what: &str, bytes: &[u8]) -> Result<Vec<u8>, Diagnostic> {
        if ansible::is_ansible_vault(bytes) {
            let text = String::from_utf8_lossy(bytes);
            return ansible::decrypt(&text, &self.ansible_passwords).map_err(|e| {
                Diagnostic::new(format!("cannot decrypt {what} (Ansible Vault): {e}"))
                    .exit_code(exit::ERROR)
            });
        }
        if self.keys.is_empty() {
            return Err(Diagnostic::new(format!(
                "{what} is encrypted, but no vault key was given (use --vault-identity FILE, \
                 PLAY_VAULT_IDENTITY, vault_identity in play.toml, or --vault-password-file)"
            ))
            .exit_code(exit::BAD_OPTIONS));
        }
        let tried = self
            .keys
            .iter()
            .map(Key::origin)
            .collect::<Vec<_>>()
            .join(", ");
        let fail = |e: String| {
            Diagnostic::new(format!("cannot decrypt {what}: {e}"))
                .note(format!("vault keys tried: {tried}"))
                .exit_code(exit::ERROR)
        };
        let identities = self.identities()?;
        let reader = age::armor::ArmoredReader::new(trim_ascii_start(bytes));
        let decryptor = age::Decryptor::new(reader).map_err(|e| fail(describe(e)))?;
        let mut stream = decryptor
            .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| fail(describe(e)))?;
        let mut plain = Vec::new();
        stream
            .read_to_end(&mut plain)
            .map_err(|e| fail(format!("the file is corrupted or truncated ({e})")))?;
        Ok(plain)
    }

    /// Encrypt to the recipients (or, with none, to the keys: a passphrase or the public
    /// halves of the identities), armored when `armor`.
    pub fn encrypt(&self, plain: &[u8], armor: bool) -> Result<Vec<u8>, Diagnostic> {
        let recipients = self.recipients_for_encryption()?;
        let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _))
            .map_err(|e| Diagnostic::new(format!("cannot encrypt: {e}")))?;
        let io = |e: std::io::Error| Diagnostic::new(format!("cannot encrypt: {e}"));
        let mut out = Vec::new();
        let format = if armor {
            age::armor::Format::AsciiArmor
        } else {
            age::armor::Format::Binary
        };
        let armored = age::armor::ArmoredWriter::wrap_output(&mut out, format).map_err(io)?;
        let mut w = encryptor.wrap_output(armored).map_err(io)?;
        w.write_all(plain).map_err(io)?;
        w.finish().map_err(io)?.finish().map_err(io)?;
        Ok(out)
    }

    fn recipients_for_encryption(&self) -> Result<Vec<Box<dyn age::Recipient + Send>>, Diagnostic> {
        let mut out: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
        for line in &self.recipients {
            out.push(parse_recipient(line)?);
        }
        if !out.is_empty() {
            return Ok(out);
        }
        for key in &self.keys {
            match key {
                // age allows a passphrase only as the sole recipient.
                Key::Passphrase(p, _) => {
                    return Ok(vec![Box::new(age::scrypt::Recipient::new(
                        SecretString::from(p.clone()),
                    ))])
                }
                Key::File(path, text) => {
                    if text.contains("AGE-SECRET-KEY-") {
                        let f = age::IdentityFile::from_buffer(text.as_bytes())
                            .map_err(|e| bad_key(path, e.to_string()))?;
                        out.extend(
                            f.to_recipients()
                                .map_err(|e| bad_key(path, e.to_string()))?,
                        );
                    } else if let Some(public) = ssh_public_key(path) {
                        out.push(parse_recipient(&public)?);
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(Diagnostic::new(
                "no recipients to encrypt to: add public keys to .age-recipients, give \
                 --recipient, or give a key (--vault-identity or --vault-password-file)",
            )
            .exit_code(exit::BAD_OPTIONS));
        }
        Ok(out)
    }
}

/// An SSH private key's public half, from the `.pub` file beside it.
fn ssh_public_key(path: &Path) -> Option<String> {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    std::fs::read_to_string(PathBuf::from(p))
        .ok()
        .map(|s| s.trim().to_string())
}

fn bad_key(path: &Path, e: String) -> Diagnostic {
    Diagnostic::new(format!("vault identity {}: {e}", path.display())).exit_code(exit::BAD_OPTIONS)
}

fn parse_identity_file(path: &Path, text: &str) -> Result<Vec<Box<dyn age::Identity>>, Diagnostic> {
    if text.contains("AGE-SECRET-KEY-") {
        let f = age::IdentityFile::from_buffer(text.as_bytes())
            .map_err(|e| bad_key(path, e.to_string()))?;
        return f
            .into_identities()
            .map_err(|e| bad_key(path, e.to_string()));
    }
    match age::ssh::Identity::from_buffer(text.as_bytes(), Some(path.display().to_string())) {
        Ok(age::ssh::Identity::Unencrypted(k)) => {
            Ok(vec![Box::new(age::ssh::Identity::Unencrypted(k))])
        }
        Ok(age::ssh::Identity::Encrypted(_)) => Err(bad_key(
            path,
            "passphrase-protected SSH keys are not supported; use an unencrypted key or an age identity".into(),
        )),
        Ok(age::ssh::Identity::Unsupported(_)) => {
            Err(bad_key(path, "unsupported SSH key type (use ed25519 or rsa)".into()))
        }
        Err(_) => Err(bad_key(
            path,
            "neither an age identity (AGE-SECRET-KEY-...) nor an SSH private key".into(),
        )),
    }
}

/// One recipient line: `age1...` or an SSH public key.
pub fn parse_recipient(line: &str) -> Result<Box<dyn age::Recipient + Send>, Diagnostic> {
    let line = line.trim();
    let bad = |e: String| {
        Diagnostic::new(format!("invalid recipient '{line}': {e}")).exit_code(exit::BAD_OPTIONS)
    };
    if line.starts_with("age1") {
        line.parse::<age::x25519::Recipient>()
            .map(|r| Box::new(r) as _)
            .map_err(|e| bad(e.to_string()))
    } else {
        line.parse::<age::ssh::Recipient>()
            .map(|r| Box::new(r) as _)
            .map_err(|e| bad(format!("{e:?}")))
    }
}

/// Recipient lines of a `.age-recipients` file (comments and blank lines skipped).
pub fn read_recipients_file(path: &Path) -> Result<Vec<String>, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(format!("cannot read {}: {e}", path.display())).exit_code(exit::BAD_OPTIONS)
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

fn describe(e: age::DecryptError) -> String {
    match e {
        age::DecryptError::NoMatchingKeys => "none of the vault keys can decrypt it".into(),
        age::DecryptError::DecryptionFailed | age::DecryptError::InvalidMac => {
            "wrong key or passphrase, or the file is corrupted".into()
        }
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            "not a valid age file (corrupted or truncated header)".into()
        }
        age::DecryptError::Io(e) => format!("the file is corrupted or truncated ({e})"),
        other => other.to_string(),
    }
}

/// Load the key files and passphrase file named on the command line / environment / play.toml.
pub fn keys_from(
    identity_files: &[PathBuf],
    password_file: Option<&Path>,
    ask_pass: bool,
) -> Result<Vec<Key>, Diagnostic> {
    let mut keys = Vec::new();
    for p in identity_files {
        let text = std::fs::read_to_string(p).map_err(|e| {
            Diagnostic::new(format!("cannot read vault identity {}: {e}", p.display()))
                .exit_code(exit::BAD_OPTIONS)
        })?;
        keys.push(Key::File(p.clone(), text));
    }
    if let Some(p) = password_file {
        let text = std::fs::read_to_string(p).map_err(|e| {
            Diagnostic::new(format!(
                "cannot read vault password file {}: {e}",
                p.display()
            ))
            .exit_code(exit::BAD_OPTIONS)
        })?;
        // As ansible-vault: the first line, without its newline, is the password.
        let pw = text.lines().next().unwrap_or_default().to_string();
        keys.push(Key::Passphrase(pw, p.display().to_string()));
    }
    if ask_pass {
        let pw = rpassword::prompt_password("Vault password: ").map_err(|e| {
            Diagnostic::new(format!(
                "--ask-vault-pass: cannot read from the terminal: {e}"
            ))
            .exit_code(exit::BAD_OPTIONS)
        })?;
        keys.push(Key::Passphrase(pw, "--ask-vault-pass".into()));
    }
    Ok(keys)
}

/// `PLAY_VAULT_IDENTITY` (colon-separated paths).
pub fn env_identities() -> Vec<PathBuf> {
    std::env::var_os("PLAY_VAULT_IDENTITY")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn x25519_vault() -> (Vault, String) {
        let id = age::x25519::Identity::generate();
        let text = id.to_string().expose_secret().to_string();
        (
            Vault {
                keys: vec![Key::File(PathBuf::from("key.txt"), text)],
                recipients: vec![],
                ansible_passwords: vec![],
            },
            id.to_public().to_string(),
        )
    }

    #[test]
    fn x25519_round_trip_binary_and_armored() {
        let (v, _) = x25519_vault();
        for armor in [false, true] {
            let c = v.encrypt(b"hunter2!", armor).expect("encrypts");
            assert!(is_age(&c));
            assert_eq!(v.decrypt("f", &c).expect("decrypts"), b"hunter2!");
        }
    }

    #[test]
    fn passphrase_round_trip_and_wrong_key_names_keys() {
        let v = Vault {
            keys: vec![Key::Passphrase("pw".into(), "pwfile".into())],
            recipients: vec![],
            ansible_passwords: vec![],
        };
        let c = v.encrypt(b"s3cret", true).expect("encrypts");
        assert_eq!(v.decrypt("f", &c).expect("decrypts"), b"s3cret");
        let (other, _) = x25519_vault();
        let e = other
            .decrypt("group_vars/all.yml", &c)
            .expect_err("wrong key");
        let r = e.render();
        assert!(
            r.contains("group_vars/all.yml") && r.contains("key.txt"),
            "{r}"
        );
    }

    #[test]
    fn recipients_and_truncation() {
        let (v, public) = x25519_vault();
        let enc = Vault {
            keys: vec![],
            recipients: vec![public],
            ansible_passwords: vec![],
        };
        let c = enc
            .encrypt(b"a long secret value", false)
            .expect("encrypts");
        assert_eq!(v.decrypt("f", &c).expect("ok"), b"a long secret value");
        let e = v.decrypt("f", &c[..c.len() - 5]).expect_err("truncated");
        assert!(e.render().contains("cannot decrypt f"));
        assert!(v.decrypt("f", b"age-encryption.org/v1\ngarbage").is_err());
    }

    #[test]
    fn ssh_ed25519_and_rsa_keys_round_trip() {
        for kind in ["ed25519", "rsa"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = dir.path().join(format!("id_{kind}"));
            let ok = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", "", "-f"])
                .arg(&key)
                .status();
            if !ok.map(|s| s.success()).unwrap_or(false) {
                return; // no ssh-keygen on this machine
            }
            let keys = keys_from(&[key], None, false).expect("reads");
            let v = Vault {
                keys,
                ..Vault::default()
            };
            let c = v
                .encrypt(b"ssh secret", true)
                .expect("encrypts to the .pub");
            assert_eq!(
                v.decrypt("f", &c).expect("decrypts"),
                b"ssh secret",
                "{kind}"
            );
        }
    }

    #[test]
    fn redaction_masks_registered_values() {
        register_secret("correct horse battery");
        assert_eq!(
            redact("pw is correct horse battery!"),
            format!("pw is {MASK}!")
        );
        register_secret("no");
        assert_eq!(redact("no"), "no");
    }
}
