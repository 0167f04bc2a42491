//! The hash-format policy: what a stored hash is (an argon2 PHC string, a bcrypt hash) and
//! whether this hasher may run it, found by parsing alone; and the argon2 and bcrypt runs
//! themselves. [`PasswordHasher`](super::PasswordHasher) decides when they run.
//!
//! ```
//! use tower_jwt_auth::password::{PasswordError, PasswordHasher};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let hasher = PasswordHasher::new();
//! // A planted hash asking for 4 GiB of memory is refused by parsing alone: nothing runs.
//! let planted = "$argon2id$v=19$m=4194304,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
//! assert_eq!(hasher.verify("guess", planted).await, Err(PasswordError::ParametersTooCostly));
//! assert_eq!(hasher.verify("guess", "$md5$x").await, Err(PasswordError::UnsupportedHash));
//! assert_eq!(hasher.stats().verifications, 0);
//! # }
//! ```

use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::{MAX_BCRYPT_COST, PasswordError};

/// Salt length of new hashes, in bytes.
const SALT_LEN: usize = 16;
/// Output length of new hashes, in bytes (argon2's default).
const OUTPUT_LEN: usize = Params::DEFAULT_OUTPUT_LEN;
/// Longer than any argon2 PHC string or bcrypt hash; longer stored strings are not parsed.
const MAX_STORED_LEN: usize = 512;
/// The dummy hash: 16 zero bytes of salt and 32 of output, as long as a real hash's (the
/// outcome of the comparison is thrown away).
const DUMMY_SALT_B64: &str = "AAAAAAAAAAAAAAAAAAAAAA";
const DUMMY_OUTPUT_B64: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// What a stored hash is, found without running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scheme {
    Argon2 {
        needs_rehash: bool,
    },
    #[cfg(feature = "bcrypt")]
    Bcrypt,
}

/// The parameters new hashes get, and the most a stored hash may cost.
#[derive(Debug)]
pub(super) struct HashPolicy {
    /// The argon2id parameters of new hashes.
    pub(super) current: Params,
    pub(super) max_m_kib: u32,
    pub(super) max_t: u32,
    pub(super) max_p: u32,
}

impl HashPolicy {
    /// A PHC string with the current parameters, for unknown users: verifying against it
    /// costs what a real hash does.
    pub(super) fn dummy(&self) -> String {
        format!(
            "$argon2id$v=19$m={},t={},p={}${DUMMY_SALT_B64}${DUMMY_OUTPUT_B64}",
            self.current.m_cost(),
            self.current.t_cost(),
            self.current.p_cost()
        )
    }

    /// Parses `stored` and checks its parameters against the maxima. Allocates nothing.
    pub(super) fn inspect(&self, stored: &str) -> Result<Scheme, PasswordError> {
        if stored.len() > MAX_STORED_LEN {
            return Err(PasswordError::InvalidHash);
        }
        let id = stored
            .strip_prefix('$')
            .and_then(|rest| rest.split('$').next())
            .ok_or(PasswordError::InvalidHash)?;
        match id {
            "argon2id" | "argon2i" | "argon2d" => self.inspect_argon2(stored),
            "2a" | "2b" | "2y" => inspect_bcrypt(stored),
            _ if !id.is_empty()
                && id.len() <= 32
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                Err(PasswordError::UnsupportedHash)
            }
            _ => Err(PasswordError::InvalidHash),
        }
    }

    fn inspect_argon2(&self, stored: &str) -> Result<Scheme, PasswordError> {
        let hash = PasswordHash::new(stored).map_err(|_| PasswordError::InvalidHash)?;
        let algorithm =
            Algorithm::try_from(hash.algorithm).map_err(|_| PasswordError::InvalidHash)?;
        let version = hash
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|_| PasswordError::InvalidHash)?;
        // Each of m, t and p exactly once: with a duplicate, argon2 would run the last value
        // while a lookup by name sees the first.
        let mut seen = [false; 3];
        for (name, _) in hash.params.iter() {
            let slot = match name.as_str() {
                "m" => 0,
                "t" => 1,
                "p" => 2,
                "keyid" | "data" => continue,
                _ => return Err(PasswordError::InvalidHash),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(PasswordError::InvalidHash);
            }
        }
        if seen != [true; 3] {
            return Err(PasswordError::InvalidHash);
        }
        // Exactly the parameters argon2 would run with; building them allocates nothing.
        let params = Params::try_from(&hash).map_err(|_| PasswordError::InvalidHash)?;
        let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
        if m > self.max_m_kib || t > self.max_t || p > self.max_p {
            return Err(PasswordError::ParametersTooCostly);
        }
        let mut salt = [0u8; 64];
        let salt_len = hash
            .salt
            .ok_or(PasswordError::InvalidHash)?
            .decode_b64(&mut salt)
            .map_err(|_| PasswordError::InvalidHash)?
            .len();
        if salt_len < argon2::MIN_SALT_LEN {
            return Err(PasswordError::InvalidHash);
        }
        let output_len = hash.hash.ok_or(PasswordError::InvalidHash)?.len();
        let current = &self.current;
        let needs_rehash = algorithm != Algorithm::Argon2id
            || version != Some(Version::V0x13)
            || m < current.m_cost()
            || t < current.t_cost()
            || p < current.p_cost()
            || salt_len < SALT_LEN
            || output_len < OUTPUT_LEN;
        Ok(Scheme::Argon2 { needs_rehash })
    }

    /// A new argon2id PHC string for `password`: the current parameters, a fresh salt.
    pub(super) fn hash(&self, password: &[u8]) -> Result<String, PasswordError> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|_| {
            tracing::error!("no OS randomness for a password salt");
            PasswordError::Internal
        })?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Internal)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.current.clone());
        argon2::password_hash::PasswordHasher::hash_password(&argon2, password, &salt)
            .map(|hash| hash.to_string())
            .map_err(|_| PasswordError::Internal)
    }
}

/// Checks the shape and cost of a bcrypt hash: `$2b$` cost `$` 22 characters of salt and 31
/// of hash, in bcrypt's base64 alphabet.
fn inspect_bcrypt(stored: &str) -> Result<Scheme, PasswordError> {
    let bytes = stored.as_bytes();
    let well_formed = bytes.len() == 60
        && bytes[6] == b'$'
        && bytes[4..6].iter().all(u8::is_ascii_digit)
        && bytes[7..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if !well_formed {
        return Err(PasswordError::InvalidHash);
    }
    let cost = u32::from(bytes[4] - b'0') * 10 + u32::from(bytes[5] - b'0');
    if cost < 4 {
        return Err(PasswordError::InvalidHash);
    }
    if cost > MAX_BCRYPT_COST {
        return Err(PasswordError::ParametersTooCostly);
    }
    #[cfg(feature = "bcrypt")]
    return Ok(Scheme::Bcrypt);
    #[cfg(not(feature = "bcrypt"))]
    Err(PasswordError::UnsupportedHash)
}

/// Runs argon2 (the variant, version and parameters of `stored`) and compares in constant time.
pub(super) fn verify_argon2(password: &[u8], stored: &str) -> Result<bool, PasswordError> {
    let hash = PasswordHash::new(stored).map_err(|_| PasswordError::InvalidHash)?;
    match Argon2::default().verify_password(password, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(PasswordError::InvalidHash),
    }
}

/// Runs bcrypt like passlib does (first 72 bytes); passlib never hashed a password with a NUL.
#[cfg(feature = "bcrypt")]
pub(super) fn verify_bcrypt(password: &[u8], stored: &str) -> Result<bool, PasswordError> {
    let matched = bcrypt::verify(password, stored).map_err(|_| PasswordError::InvalidHash)?;
    Ok(matched && !password.contains(&0))
}
