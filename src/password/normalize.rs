//! Passwords in one Unicode form: what a person types is hashed and verified as RFC 8265's
//! `OpaqueString` profile prepares it, so the same password typed on another keyboard or
//! system (another normal form, a no-break space) still matches.
//!
//! ```
//! use tower_jwt_auth::password::normalize_password;
//!
//! // NFC: a decomposed `é` is the composed one.
//! assert_eq!(normalize_password("caf\u{65}\u{301} au lait").as_deref(), Some("café au lait"));
//! // Non-ASCII spaces are U+0020.
//! assert_eq!(normalize_password("correct\u{a0}horse").as_deref(), Some("correct horse"));
//! // Control and other disallowed characters: no normal form.
//! assert_eq!(normalize_password("before\0after"), None);
//! ```

use std::borrow::Cow;

use precis_profiles::OpaqueString;
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use zeroize::Zeroizing;

/// The form of `password` that [`PasswordHasher`](super::PasswordHasher) hashes and verifies:
/// RFC 8265's `OpaqueString` profile (NIST SP 800-63B §5.1.1.2 asks for normalisation), that
/// is, every non-ASCII space mapped to U+0020, then NFC. Case, width and compatibility forms
/// are kept: `Ｐassword` and `Password` stay different passwords.
///
/// `None` when the profile refuses the password: empty, or with a character its
/// `FreeformClass` disallows (control characters such as NUL or TAB, default-ignorable ones
/// such as zero-width joiners and variation selectors, conjoining Hangul jamo, unassigned code
/// points). The repertoire is that of Unicode 6.3, as the IANA PRECIS registry has it, so a
/// character added since (the emoji 🦀, the Adlam script) counts as unassigned. Registration
/// refuses such a password; a hasher hashes and verifies it as the bytes given, so that
/// accounts created with one before keep working.
#[must_use]
pub fn normalize_password(password: &str) -> Option<Cow<'_, str>> {
    OpaqueString::enforce(password).ok()
}

/// Which form of the input matched a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// The normal form: what [`PasswordHasher::hash`](super::PasswordHasher::hash) writes.
    Normal,
    /// The bytes as given, which differ from the normal form: the hash was made before
    /// passwords were normalised, and should be replaced.
    Raw,
}

/// What one call hashes or verifies: the normal form of the input (or the input itself, when
/// the profile refuses it) and, when they differ, the input as given. Both are wiped on drop.
pub(super) struct Candidates {
    normal: Zeroizing<String>,
    raw: Option<Zeroizing<String>>,
}

impl Candidates {
    pub(super) fn of(password: &str) -> Self {
        let copy = || Zeroizing::new(password.to_owned());
        match normalize_password(password).map(|normal| Zeroizing::new(normal.into_owned())) {
            Some(normal) if normal.as_str() != password => Self {
                normal,
                raw: Some(copy()),
            },
            _ => Self {
                normal: copy(),
                raw: None,
            },
        }
    }

    /// The bytes to hash: the normal form.
    pub(super) fn normal(&self) -> &[u8] {
        self.normal.as_bytes()
    }

    /// Each form to verify, the normal one first.
    pub(super) fn forms(&self) -> impl Iterator<Item = (Form, &[u8])> {
        let raw = self.raw.as_ref().map(|raw| (Form::Raw, raw.as_bytes()));
        std::iter::once((Form::Normal, self.normal())).chain(raw)
    }

    /// The first form that `check` accepts, trying the raw bytes only when the normal form
    /// fails, so that a right password costs one verification and a wrong one as many as there
    /// are forms (as [`PasswordHasher::verify_dummy`](super::PasswordHasher::verify_dummy)
    /// runs for the same input).
    pub(super) fn first_match<E>(
        &self,
        mut check: impl FnMut(&[u8]) -> Result<bool, E>,
    ) -> Result<Option<Form>, E> {
        for (form, password) in self.forms() {
            if check(password)? {
                return Ok(Some(form));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{PasswordHasher, PasswordHasherBuilder, Verified};
    use super::*;

    fn cheap() -> PasswordHasherBuilder {
        PasswordHasher::builder().params(1024, 1, 1).unwrap()
    }

    const NFC: &str = "pässwörd Ωμέγα ṩ";
    const NFD: &str =
        "pa\u{308}sswo\u{308}rd \u{3a9}\u{3bc}\u{3b5}\u{301}\u{3b3}\u{3b1} s\u{323}\u{307}";

    #[test]
    fn the_profile_maps_spaces_and_composes() {
        assert_eq!(normalize_password(NFD).as_deref(), Some(NFC));
        assert!(matches!(normalize_password(NFC), Some(Cow::Borrowed(_))));
        for space in ['\u{a0}', '\u{2002}', '\u{2009}', '\u{202f}', '\u{3000}'] {
            let typed = format!("correct{space}horse");
            assert_eq!(
                normalize_password(&typed).as_deref(),
                Some("correct horse"),
                "{space:?}"
            );
        }
        // Case, width and compatibility characters are part of the password.
        assert_eq!(normalize_password("Ｐａｓｓ").as_deref(), Some("Ｐａｓｓ"));
        assert_eq!(normalize_password("ﬁ²").as_deref(), Some("ﬁ²"));
        for refused in [
            "",
            "a\0b",
            "tab\there",
            "a\u{200d}b",
            "\u{2764}\u{fe0f}",
            "\u{378}",
            // As RFC 8264 has it, conjoining Hangul jamo (a decomposed syllable) too.
            "\u{1112}\u{1161}\u{11ab}",
            // And characters newer than the profile's Unicode 6.3 (🦀 is 8.0).
            "crab \u{1f980}",
        ] {
            assert_eq!(normalize_password(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn candidates_hold_the_raw_bytes_only_when_they_differ() {
        let forms = |password: &str| -> Vec<(Form, Vec<u8>)> {
            let candidates = Candidates::of(password);
            candidates.forms().map(|(f, p)| (f, p.to_vec())).collect()
        };
        assert_eq!(forms(NFC), [(Form::Normal, NFC.as_bytes().to_vec())]);
        assert_eq!(
            forms(NFD),
            [
                (Form::Normal, NFC.as_bytes().to_vec()),
                (Form::Raw, NFD.as_bytes().to_vec())
            ]
        );
        // A password the profile refuses is its own bytes, once.
        assert_eq!(forms("a\0b"), [(Form::Normal, b"a\0b".to_vec())]);
    }

    #[tokio::test]
    async fn nfc_and_nfd_input_verify_against_one_hash() {
        let hasher = cheap().build().unwrap();
        let current = Verified::Match {
            needs_rehash: false,
        };
        for typed in [NFC, NFD] {
            let stored = hasher.hash(typed).await.unwrap();
            assert_eq!(hasher.verify(NFC, &stored).await.unwrap(), current);
            assert_eq!(hasher.verify(NFD, &stored).await.unwrap(), current);
        }
        let stats = hasher.stats();
        assert_eq!(
            stats.verifications, 4,
            "a right password costs one verification"
        );
        // A wrong password typed in NFD costs two: the normal form, then the raw bytes.
        let stored = hasher.hash(NFC).await.unwrap();
        let wrong = NFD.replace('a', "e");
        assert_eq!(
            hasher.verify(&wrong, &stored).await.unwrap(),
            Verified::Mismatch
        );
        assert_eq!(hasher.stats().verifications, 6);
        assert_eq!(
            hasher.verify("wrong", &stored).await.unwrap(),
            Verified::Mismatch
        );
        assert_eq!(hasher.stats().verifications, 7);
    }

    #[tokio::test]
    async fn a_non_ascii_space_is_a_space() {
        let hasher = cheap().build().unwrap();
        let stored = hasher.hash("correct horse").await.unwrap();
        for typed in [
            "correct\u{a0}horse",
            "correct\u{3000}horse",
            "correct horse",
        ] {
            assert!(
                hasher.verify(typed, &stored).await.unwrap().is_match(),
                "{typed:?}"
            );
        }
        assert!(
            !hasher
                .verify("correcthorse", &stored)
                .await
                .unwrap()
                .is_match()
        );
    }

    /// A hash of the bytes as given, as the hasher wrote before it normalised.
    fn legacy_hash(password: &str) -> String {
        let policy = cheap().build().unwrap();
        policy.inner.policy.hash(password.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_hash_of_raw_bytes_verifies_and_asks_for_a_rehash() {
        let hasher = cheap().build().unwrap();
        let stored = legacy_hash(NFD);
        // The raw bytes match: a re-hash stores the normal form.
        let rehash = Verified::Match { needs_rehash: true };
        assert_eq!(hasher.verify(NFD, &stored).await.unwrap(), rehash);
        assert_eq!(hasher.stats().verifications, 2);
        let upgraded = hasher.hash(NFD).await.unwrap();
        assert_eq!(
            hasher.verify(NFC, &upgraded).await.unwrap(),
            Verified::Match {
                needs_rehash: false
            }
        );
        // The NFC spelling never matched the old hash (those bytes were never hashed).
        assert_eq!(
            hasher.verify(NFC, &stored).await.unwrap(),
            Verified::Mismatch
        );

        // A password the profile refuses is hashed and verified as its bytes.
        let nul = "before\0after the nul";
        let stored = legacy_hash(nul);
        assert_eq!(
            hasher.verify(nul, &stored).await.unwrap(),
            Verified::Match {
                needs_rehash: false
            }
        );
        let stored = hasher.hash(nul).await.unwrap();
        assert!(hasher.verify(nul, &stored).await.unwrap().is_match());
        assert!(!hasher.verify("before", &stored).await.unwrap().is_match());
    }

    #[tokio::test]
    async fn the_dummy_costs_what_a_wrong_password_costs() {
        let hasher = cheap().build().unwrap();
        let stored = hasher.hash("something else").await.unwrap();
        for (typed, runs) in [(NFC, 1), (NFD, 2), ("a\u{a0}b", 2), ("a\0b", 1)] {
            let before = hasher.stats();
            hasher.verify_dummy(typed).await.unwrap();
            let dummy = hasher.stats().dummy_verifications - before.dummy_verifications;
            assert!(!hasher.verify(typed, &stored).await.unwrap().is_match());
            let real = hasher.stats().verifications - before.verifications;
            assert_eq!((dummy, real), (runs, runs), "{typed:?}");
        }
    }

    proptest! {
        #[test]
        fn normalising_never_panics_and_is_stable(password in "\\PC{0,40}|.{0,40}") {
            if let Some(normal) = normalize_password(&password) {
                let again = normalize_password(&normal);
                prop_assert_eq!(again.as_deref(), Some(normal.as_ref()));
            }
            let candidates = Candidates::of(&password);
            prop_assert!(candidates.forms().count() <= 2);
        }
    }
}
