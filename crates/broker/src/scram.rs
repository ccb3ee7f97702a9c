//! SCRAM (RFC 5802, RFC 7677) as Kafka uses it: the two mechanisms by
//! Kafka's type numbers, and what the server keeps of a password. Admin
//! clients salt and hash the password themselves (AlterUserScramCredentials
//! carries the salted password); the broker derives the stored and server
//! keys from it and keeps only those, in the metadata log.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::metadata::records::ScramCredential;

/// Kafka's smallest iteration count for either mechanism.
pub const MIN_ITERATIONS: i32 = 4096;
/// Kafka's largest (`ScramControlManager.MAX_ITERATIONS`).
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM mechanism Kafka knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (type 1).
    Sha256,
    /// SCRAM-SHA-512 (type 2).
    Sha512,
}

impl Mechanism {
    /// The mechanism of Kafka's type number; `None` for UNKNOWN (0) and the rest.
    pub fn from_type(t: i8) -> Option<Mechanism> {
        match t {
            1 => Some(Mechanism::Sha256),
            2 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// Kafka's type number.
    pub fn type_id(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    /// HMAC with this mechanism's hash.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length: new_from_slice cannot fail.
        match self {
            Mechanism::Sha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
            Mechanism::Sha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    /// This mechanism's hash.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// What the server keeps for a client's salted password.
    pub fn credential(
        self,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        // A small decoder for the RFC's vectors (standard alphabet, padded).
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = alphabet.iter().position(|a| *a == c).expect("base64") as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    /// PBKDF2's Hi(), as the client computes the salted password.
    fn hi(m: Mechanism, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
        let mut u = m.hmac(password, &[salt, &[0, 0, 0, 1]].concat());
        let mut out = u.clone();
        for _ in 1..iterations {
            u = m.hmac(password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }

    #[test]
    fn the_stored_keys_verify_the_rfc_7677_exchange() {
        // RFC 7677 section 3: user "user", password "pencil".
        let m = Mechanism::Sha256;
        let salt = b64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let salted = hi(m, b"pencil", &salt, 4096);
        let c = m.credential(&salt, &salted, 4096);
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        // The client's proof, checked as a server does: ClientKey = proof
        // XOR HMAC(StoredKey, AuthMessage), and H(ClientKey) = StoredKey.
        let proof = b64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let signature = m.hmac(&c.stored_key, auth.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        assert_eq!(m.hash(&client_key), c.stored_key);
        // The server's signature the RFC's client expects.
        assert_eq!(
            m.hmac(&c.server_key, auth.as_bytes()),
            b64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
    }

    #[test]
    fn kafka_type_numbers() {
        assert_eq!(Mechanism::from_type(1), Some(Mechanism::Sha256));
        assert_eq!(Mechanism::from_type(2).map(Mechanism::type_id), Some(2));
        assert_eq!(Mechanism::from_type(0), None);
        assert_eq!(Mechanism::Sha512.hash(b"").len(), 64);
    }
}
