//! Username normalisation, shared by the login router and the login rate limiter so that both
//! see one account where a person would.

use unicode_normalization::UnicodeNormalization;

/// The longest username, in characters, after normalisation.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Normalises a username for lookup and storage: Unicode NFKC, lower-cased, trimmed; `None`
/// when the result is empty, longer than [`MAX_USERNAME_CHARS`], or contains a control
/// character, whitespace or `:` (which HTTP Basic and `user:password` settings use as the
/// separator).
///
/// Two names a person would read as the same (`Alice`, `ＡＬＩＣＥ`, ` alice `) map to one
/// account, so they cannot be registered twice or rate-limited separately.
///
/// ```
/// use tower_jwt_auth::normalize_username;
///
/// assert_eq!(normalize_username(" Alice ").as_deref(), Some("alice"));
/// assert_eq!(normalize_username("ＡＬＩＣＥ").as_deref(), Some("alice"));
/// assert_eq!(normalize_username("al ice"), None);
/// assert_eq!(normalize_username(""), None);
/// ```
#[must_use]
pub fn normalize_username(raw: &str) -> Option<String> {
    let folded: String = raw.nfkc().collect::<String>().to_lowercase();
    // Lower-casing can leave a string that is no longer in NFKC (rarely); normalise again.
    let normalized: String = folded.trim().nfkc().collect();
    let valid = !normalized.is_empty()
        && normalized.chars().count() <= MAX_USERNAME_CHARS
        && !normalized
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ':');
    valid.then_some(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_validated() {
        assert_eq!(normalize_username("  BoB\t").as_deref(), Some("bob"));
        assert_eq!(normalize_username("Ｂｏｂ").as_deref(), Some("bob"));
        assert_eq!(normalize_username("ÅSA").as_deref(), Some("åsa"));
        // Decomposed and composed forms are one name.
        assert_eq!(normalize_username("A\u{30a}sa"), normalize_username("Åsa"));
        for bad in ["", "   ", "a b", "a:b", "a\u{0}b", "a\u{7f}", "a\u{2028}b"] {
            assert_eq!(normalize_username(bad), None, "{bad:?}");
        }
        assert!(normalize_username(&"x".repeat(MAX_USERNAME_CHARS)).is_some());
        assert!(normalize_username(&"x".repeat(MAX_USERNAME_CHARS + 1)).is_none());
    }
}
