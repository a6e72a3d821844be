//! Secrets at rest and in transit: sealing secret keys with the master key (AES-256-GCM), hashing
//! passwords (argon2id), and opaque tokens stored only as their SHA-256.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The server's master key, from `JOBD_MASTER_KEY` or the key file. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the sealed secret is damaged or was sealed with another master key")]
    Unseal,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl MasterKey {
    /// Derives the key from any passphrase or key material (HKDF-SHA256).
    pub fn derive(material: &[u8]) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(b"jobd master key v1"), material);
        let mut key = [0u8; 32];
        hkdf.expand(b"seal access-key secrets", &mut key).expect("32 bytes is a valid HKDF length");
        MasterKey(key)
    }

    /// Fresh random key material for a new key file.
    pub fn generate_material() -> [u8; 32] {
        let mut material = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut material);
        material
    }

    /// Seals a secret: a random 96-bit nonce followed by the AES-256-GCM ciphertext.
    pub fn seal(&self, secret: &str) -> Vec<u8> {
        self.seal_bytes(secret.as_bytes())
    }

    pub fn unseal(&self, sealed: &[u8]) -> Result<String, SecretError> {
        String::from_utf8(self.unseal_bytes(sealed)?).map_err(|_| SecretError::Unseal)
    }

    /// Seals any secret (an MFA device's key is raw bytes): a random nonce, then AES-256-GCM.
    pub fn seal_bytes(&self, secret: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("a 32-byte key");
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut sealed = nonce.to_vec();
        sealed.extend(cipher.encrypt(Nonce::from_slice(&nonce), secret).expect("encryption cannot fail"));
        sealed
    }

    pub fn unseal_bytes(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Unseal);
        }
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("a 32-byte key");
        cipher.decrypt(Nonce::from_slice(&sealed[..12]), &sealed[12..]).map_err(|_| SecretError::Unseal)
    }
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `password` matches a stored hash (constant-time inside argon2).
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// A new opaque token and the hash it is stored under.
pub fn generate_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("jobd1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new access key (20 uppercase letters and digits) and secret key (40 characters).
pub fn generate_access_key_pair() -> (String, String) {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut pick = |alphabet: &[u8], len: usize| -> String {
        (0..len).map(|_| alphabet[(rng.next_u32() as usize) % alphabet.len()] as char).collect()
    };
    (pick(UPPER, 20), pick(ANY, 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = MasterKey::derive(b"one");
        let sealed = key.seal("my-secret");
        assert!(!sealed.windows(9).any(|w| w == b"my-secret"), "never stored in clear");
        assert_eq!(key.unseal(&sealed).unwrap(), "my-secret");
        assert_eq!(MasterKey::derive(b"two").unseal(&sealed), Err(SecretError::Unseal));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(key.unseal(&tampered), Err(SecretError::Unseal));
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.0)));
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_and_keys_are_fresh() {
        let (a, hash_a) = generate_token();
        let (b, _) = generate_token();
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_a);
        let (ak, sk) = generate_access_key_pair();
        assert_eq!((ak.len(), sk.len()), (20, 40));
    }
}
