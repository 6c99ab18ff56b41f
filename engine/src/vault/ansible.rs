//! Reading Ansible Vault (`$ANSIBLE_VAULT;1.1;AES256` and `1.2` with a vault-id label), for
//! using existing vaults and for `play vault migrate`. Never written: new secrets go to age.
//!
//! Format (ansible/parsing/vault/__init__.py, VaultAES256): after the header line, hex of
//! `hex(salt) \n hex(hmac) \n hex(ciphertext)`; PBKDF2-HMAC-SHA256(password, salt, 10000
//! iterations) gives 80 bytes = AES-256 key, HMAC-SHA256 key, CTR initial counter; the HMAC
//! is over the ciphertext; the plaintext is PKCS#7-padded to 16 bytes.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "$ANSIBLE_VAULT;";

/// Whether this text is an Ansible Vault envelope.
pub fn is_ansible_vault(text: &[u8]) -> bool {
    let n = text.iter().take_while(|c| c.is_ascii_whitespace()).count();
    text[n..].starts_with(HEADER.as_bytes())
}

/// Decrypt an envelope with one of `passwords`. `Err` says why, without any secret.
pub fn decrypt(envelope: &str, passwords: &[String]) -> Result<Vec<u8>, String> {
    let envelope = envelope.trim();
    let (header, body) = envelope
        .split_once('\n')
        .ok_or("no data after the header")?;
    let fields: Vec<&str> = header.trim().split(';').collect();
    match fields.as_slice() {
        [_, "1.1" | "1.0", "AES256"] | [_, "1.2", "AES256", _] => {}
        _ => {
            return Err(format!(
                "unsupported Ansible Vault header '{}'",
                header.trim()
            ))
        }
    }
    let hex_body: String = body.split_whitespace().collect();
    let inner = hex::decode(hex_body).map_err(|_| "corrupted (not hex)".to_string())?;
    let inner = String::from_utf8(inner).map_err(|_| "corrupted".to_string())?;
    let parts: Vec<&str> = inner.split('\n').collect();
    let [salt, mac, ct] = parts.as_slice() else {
        return Err("corrupted (expected salt, hmac and ciphertext)".into());
    };
    let bad = |_| "corrupted (not hex)".to_string();
    let salt = hex::decode(salt.trim()).map_err(bad)?;
    let mac = hex::decode(mac.trim()).map_err(bad)?;
    let ct = hex::decode(ct.trim()).map_err(bad)?;
    if passwords.is_empty() {
        return Err("no Ansible Vault password was given (--ansible-vault-password-file)".into());
    }
    for pw in passwords {
        let mut key = [0u8; 80];
        pbkdf2::pbkdf2_hmac::<Sha256>(pw.as_bytes(), &salt, 10_000, &mut key);
        let (aes_key, rest) = key.split_at(32);
        let (mac_key, iv) = rest.split_at(32);
        let Ok(mut h) = Hmac::<Sha256>::new_from_slice(mac_key) else {
            continue;
        };
        h.update(&ct);
        if h.verify_slice(&mac).is_err() {
            continue;
        }
        let mut plain = ct.clone();
        let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new(aes_key.into(), iv.into());
        cipher.apply_keystream(&mut plain);
        let pad = usize::from(*plain.last().ok_or("empty ciphertext")?);
        if pad == 0 || pad > 16 || pad > plain.len() {
            return Err("corrupted (bad padding)".into());
        }
        plain.truncate(plain.len() - pad);
        return Ok(plain);
    }
    Err("the Ansible Vault password is wrong (HMAC check failed)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `/opt/ansible/bin/ansible-vault encrypt_string --vault-password-file pw`
    /// (ansible-core from PyPI), password `ansiblepw`, value `x`.
    const ONE_ONE: &str = "$ANSIBLE_VAULT;1.1;AES256
33383634626132306662373637326563376232363962303830643263313837353265353035383865
3061386237326361343364343233626566393465386635660a383530653336373238323234343938
30383731396364633738303636653238383636323833386265313862393839653438666663633235
6564386665646439320a386362376530366232623131336536663934363735626434346365386136
6133
";

    #[test]
    fn decrypts_what_ansible_vault_wrote() {
        let pw = vec!["ansiblepw".to_string()];
        assert!(is_ansible_vault(ONE_ONE.as_bytes()));
        assert_eq!(decrypt(ONE_ONE, &pw).expect("decrypts"), b"x");
        let e = decrypt(ONE_ONE, &["nope".to_string()]).expect_err("wrong");
        assert!(e.contains("wrong"), "{e}");
        assert!(decrypt(&ONE_ONE[..120], &pw).is_err());
        assert!(decrypt("$ANSIBLE_VAULT;1.1;AES256\nzz", &pw).is_err());
    }
}
