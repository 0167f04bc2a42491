//! Usernames: one account per name a person would read as the same. The login router and the
//! login rate limiter share these rules, so that both see one account where a person would.
//!
//! ```
//! use tower_jwt_auth::{normalize_username, username_skeleton};
//!
//! // Case, width and `ß`/`ss` spellings are one name.
//! assert_eq!(normalize_username("Straße").as_deref(), Some("strasse"));
//! assert_eq!(normalize_username(" ＳＴＲＡＳＳＥ ").as_deref(), Some("strasse"));
//! // Invisible characters, and Latin mixed with another alphabet, are refused.
//! assert_eq!(normalize_username("ad\u{200b}min"), None); // a zero-width space
//! assert_eq!(normalize_username("\u{430}dmin"), None); // a Cyrillic `а`
//! // Distinct names that look alike share a skeleton: a user store keeps the first only.
//! assert_eq!(username_skeleton("adrnin"), username_skeleton("admin"));
//! assert_ne!(username_skeleton("alice"), username_skeleton("bob"));
//! ```
//!
//! # The rules
//!
//! [`normalize_username`] applies RFC 8265's PRECIS `UsernameCaseMapped` profile (width
//! mapping, the `IdentifierClass` repertoire, NFC and the bidi rule), with Unicode full case
//! folding where the RFC lower-cases, until the result is stable. It then refuses what the
//! profile lets through but a person cannot see or tell apart: the join controls, `:`, more
//! than [`MAX_USERNAME_CHARS`] characters, and a mix of scripts that UTS #39 does not call
//! "highly restrictive". [`username_skeleton`] is UTS #39's confusable skeleton of a name: a
//! user store refuses a new account whose skeleton is an existing account's.
//!
//! Earlier versions stored names in another form (NFKC, lower-cased, trimmed). Such accounts
//! keep working: the login looks a name up in the current form first and then in that one, and
//! the rate limiter counts both spellings as one name.

use std::borrow::Cow;

use caseless::Caseless;
use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::Error as PrecisError;
use precis_profiles::precis_core::profile::{Profile, Rules, stabilize};
use unicode_normalization::UnicodeNormalization;
use unicode_script::Script;
use unicode_security::mixed_script::AugmentedScriptSet;

/// The longest username, in characters, after normalisation.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Normalises a username for lookup and storage; `None` when the name is refused.
///
/// Leading and trailing whitespace is trimmed. Then RFC 8265's `UsernameCaseMapped` profile
/// applies: full-width and half-width characters become their usual forms, every character
/// must be a letter or digit (of any script), printable ASCII or one of the few the PRECIS
/// `IdentifierClass` allows in context; case is folded with Unicode full case folding (so
/// `ß` and `ss` are one name, a little more than the RFC's lower-casing); the result is in
/// NFC, and a right-to-left name must satisfy the bidi rule of RFC 5893. The whole is applied
/// again until the name is stable, so a normalised name normalises to itself.
///
/// Refused: an empty name; spaces, control characters and every invisible formatting
/// character (zero-width space, joiner and non-joiner, soft hyphen, word joiner, byte order
/// mark, bidi controls, Mongolian vowel separator, ...); symbols, non-ASCII punctuation and
/// compatibility characters (`ﬁ`, `²`, mathematical letters), which the profile disallows
/// rather than maps; `:` (the separator of HTTP Basic and `user:password` settings); more than
/// [`MAX_USERNAME_CHARS`] characters; and characters of several scripts, unless the mix is
/// one UTS #39 calls "highly restrictive" (Latin with Han, Hiragana and Katakana; with Han and
/// Bopomofo; or with Han and Hangul). Digits and ASCII punctuation go with any script. So
/// `admin` with a Cyrillic `а` or a Greek `ο` is refused, while `ιωάννης`, `иван`,
/// `山田たろう` and `タナカtaro` are names. The repertoire is Unicode 6.3's (the IANA PRECIS
/// registry's): letters added since (Cherokee small letters, Adlam) are refused too.
///
/// A name that only looks like another one (`adrnin`, `admin`) passes here: a
/// [`UserStore`][user-store] refuses it at creation by its [`username_skeleton`].
///
/// ```
/// use tower_jwt_auth::normalize_username;
///
/// assert_eq!(normalize_username(" Alice ").as_deref(), Some("alice"));
/// assert_eq!(normalize_username("ＡＬＩＣＥ").as_deref(), Some("alice"));
/// assert_eq!(normalize_username("Åsa"), normalize_username("A\u{30a}SA"));
/// assert_eq!(normalize_username("al ice"), None);
/// assert_eq!(normalize_username("al\u{ad}ice"), None); // a soft hyphen
/// assert_eq!(normalize_username(""), None);
/// ```
#[cfg_attr(feature = "router", doc = "[user-store]: crate::router::UserStore")]
#[cfg_attr(not(feature = "router"), doc = "[user-store]: crate#features")]
#[must_use]
pub fn normalize_username(raw: &str) -> Option<String> {
    if raw.is_ascii() {
        return normalize_ascii(raw);
    }
    normalize_unicode(raw)
}

/// [`normalize_username`] of an ASCII name, without the general machinery (a tenth of its
/// cost, on the login limiter's path for every attempt): the profile keeps the printable
/// characters `!` to `~` as they are, case folding lower-cases them, and everything else
/// (space, control characters, an empty name) it refuses; one script. The property tests
/// check that it agrees with [`normalize_unicode`] on ASCII.
fn normalize_ascii(raw: &str) -> Option<String> {
    let name = raw.trim();
    let valid = !name.is_empty()
        && name.len() <= MAX_USERNAME_CHARS
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    valid.then(|| name.to_ascii_lowercase())
}

fn normalize_unicode(raw: &str) -> Option<String> {
    let name = stabilize(raw.trim(), username_case_mapped).ok()?;
    let valid = name.chars().count() <= MAX_USERNAME_CHARS
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ':' || is_join_control(c))
        && is_highly_restrictive(&name);
    valid.then(|| name.into_owned())
}

/// UTS #39's confusable skeleton of a (normalised) username: two names with one skeleton look
/// alike (`admin`, `adrnin`, `аdmin` with a Cyrillic `а`, `ad\u{200b}min` with a zero-width
/// space), so a user store keeps only the first of them.
///
/// The name is first brought to Unicode's compatibility caseless form (full case folding and
/// NFKD), so that a name stored by an earlier version, in another form (`straße`), meets the
/// one that normalises to it now (`strasse`). Then UTS #39's skeleton: NFD, default-ignorable
/// characters removed, each character replaced by its confusable prototype, NFD again.
///
/// A [`UserStore`][user-store] implementation computes it for every account and
/// refuses, atomically with the insert, a new account whose skeleton is taken. The skeleton is
/// only ever compared: store it beside the name, never show it.
///
/// ```
/// use tower_jwt_auth::username_skeleton;
///
/// assert_eq!(username_skeleton("adrnin"), username_skeleton("admin"));
/// assert_eq!(username_skeleton("\u{430}dmin"), username_skeleton("admin"));
/// assert_eq!(username_skeleton("straße"), username_skeleton("strasse"));
/// assert_ne!(username_skeleton("admin"), username_skeleton("admins"));
/// ```
#[cfg_attr(feature = "router", doc = "[user-store]: crate::router::UserStore")]
#[cfg_attr(not(feature = "router"), doc = "[user-store]: crate#features")]
#[must_use]
pub fn username_skeleton(name: &str) -> String {
    let caseless: String = name
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkd()
        .collect();
    unicode_security::skeleton(&caseless).collect()
}

/// The form in which earlier versions stored names: NFKC, lower-cased, trimmed; `None` when
/// empty, longer than [`MAX_USERNAME_CHARS`], or with a control character, whitespace or `:`.
/// Only for finding accounts stored that way; never for new ones.
pub(crate) fn legacy_username(raw: &str) -> Option<String> {
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

/// The name the login rate limiter counts a name that [`normalize_username`] refuses under:
/// the normal form of its legacy reading (`ﬆraße` reads `straße`, counted as `strasse`), else
/// that reading itself. With the normal form first, every spelling that can reach one account
/// (by its normal form or by its legacy form) is counted as one name.
pub(crate) fn legacy_key(raw: &str) -> Option<String> {
    let legacy = legacy_username(raw)?;
    normalize_username(&legacy).or(Some(legacy))
}

/// One pass of RFC 8265's `UsernameCaseMapped` enforcement, with full case folding as the case
/// mapping rule (from NFD, as Unicode's canonical caseless match does).
fn username_case_mapped(name: &str) -> Result<Cow<'_, str>, PrecisError> {
    let profile = UsernameCaseMapped::new();
    let prepared = profile.prepare(name)?;
    let folded: String = prepared.nfd().default_case_fold().collect();
    let normalized = profile.normalization_rule(folded)?;
    profile.directionality_rule(normalized)
}

/// ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER: invisible, and so refused, although PRECIS
/// allows them after a virama.
fn is_join_control(c: char) -> bool {
    matches!(c, '\u{200c}' | '\u{200d}')
}

/// UTS #39's "highly restrictive" level, as far as scripts go: the characters share a script
/// (with Han, Hiragana and Katakana counted as one Japanese, Han and Hangul as one Korean, Han
/// and Bopomofo as one; Common and Inherited characters share every script), or the ones that
/// are not Latin do. The level's other condition (UTS #39's identifier profile) is left to the
/// PRECIS repertoire, which allows ASCII punctuation in names.
fn is_highly_restrictive(name: &str) -> bool {
    let mut all = AugmentedScriptSet::default();
    let mut beside_latin = AugmentedScriptSet::default();
    for c in name.chars() {
        let scripts = AugmentedScriptSet::for_char(c);
        all.intersect_with(scripts);
        if !scripts.base.contains_script(Script::Latin) {
            beside_latin.intersect_with(scripts);
        }
    }
    !all.is_empty() || beside_latin.hanb || beside_latin.jpan || beside_latin.kore
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn normal(raw: &str) -> Option<String> {
        normalize_username(raw)
    }

    #[test]
    fn usernames_are_normalised_and_validated() {
        assert_eq!(normal("  BoB\t").as_deref(), Some("bob"));
        assert_eq!(normal("Ｂｏｂ").as_deref(), Some("bob"));
        assert_eq!(normal("ÅSA").as_deref(), Some("åsa"));
        // Decomposed and composed forms are one name.
        assert_eq!(normal("A\u{30a}sa"), normal("Åsa"));
        assert_eq!(
            normal("alice@example.org").as_deref(),
            Some("alice@example.org")
        );
        for bad in ["", "   ", "a b", "a:b", "a\u{0}b", "a\u{7f}", "a\u{2028}b"] {
            assert_eq!(normal(bad), None, "{bad:?}");
        }
        assert!(normal(&"x".repeat(MAX_USERNAME_CHARS)).is_some());
        assert!(normal(&"x".repeat(MAX_USERNAME_CHARS + 1)).is_none());
        assert!(normal(&"ß".repeat(MAX_USERNAME_CHARS / 2)).is_some());
        assert!(
            normal(&"ß".repeat(MAX_USERNAME_CHARS / 2 + 1)).is_none(),
            "counted folded"
        );
    }

    #[test]
    fn case_width_and_sharp_s_spellings_are_one_name() {
        for spelling in [
            "strasse",
            "Straße",
            "STRASSE",
            "STRAẞE",
            "ｓｔｒａｓｓｅ",
            "straße",
        ] {
            assert_eq!(normal(spelling).as_deref(), Some("strasse"), "{spelling}");
        }
        assert_eq!(normal("ΣΊΣΥΦΟΣ"), normal("σίσυφος"));
        assert_eq!(normal("σίσυφος"), normal("σίσυφοσ"), "final sigma folds");
        assert_eq!(normal("ＡＤＭＩＮ").as_deref(), Some("admin"));
        assert_eq!(normal("Ａｄｍｉｎ").as_deref(), Some("admin"));
    }

    /// One of each kind of invisible character, inserted anywhere in `admin`.
    const INVISIBLE: [(char, &str); 17] = [
        ('\u{200b}', "zero width space"),
        ('\u{200c}', "zero width non-joiner"),
        ('\u{200d}', "zero width joiner"),
        ('\u{00ad}', "soft hyphen"),
        ('\u{2060}', "word joiner"),
        ('\u{feff}', "byte order mark"),
        ('\u{180e}', "Mongolian vowel separator"),
        ('\u{200e}', "left-to-right mark"),
        ('\u{200f}', "right-to-left mark"),
        ('\u{061c}', "Arabic letter mark"),
        ('\u{202a}', "left-to-right embedding"),
        ('\u{202b}', "right-to-left embedding"),
        ('\u{202c}', "pop directional formatting"),
        ('\u{202d}', "left-to-right override"),
        ('\u{202e}', "right-to-left override"),
        ('\u{2066}', "left-to-right isolate"),
        ('\u{2069}', "pop directional isolate"),
    ];

    #[test]
    fn invisible_characters_are_refused_anywhere() {
        for (c, what) in INVISIBLE {
            for at in 0..=5 {
                let name = format!("{}{c}{}", &"admin"[..at], &"admin"[at..]);
                assert_eq!(normal(&name), None, "{what} at {at}");
            }
        }
        // A joiner where PRECIS's context rule allows it (after a virama) is refused too.
        assert!(normal("क्ष").is_some());
        assert_eq!(normal("क्\u{200d}ष"), None);
        assert_eq!(normal("क्\u{200c}ष"), None);
    }

    #[test]
    fn bidi_controls_cannot_reorder_a_name() {
        // "admin" spelt backwards behind a right-to-left override displays as "admin".
        assert_eq!(normal("\u{202e}nimda"), None);
        assert_eq!(normal("\u{2067}nimda\u{2069}"), None);
        // A right-to-left name must satisfy the bidi rule: no left-to-right letters inside.
        assert!(normal("محمد").is_some());
        assert!(normal("דוד").is_some());
        assert_eq!(normal("דוד\u{200e}"), None);
        // RFC 5893: a right-to-left name starts with a right-to-left letter and ends with one
        // (or a digit), so that it cannot display as something else beside other text.
        assert_eq!(normal("1דוד"), None);
        assert_eq!(normal("דוד-"), None);
        assert!(normal("דוד1").is_some());
    }

    #[test]
    fn look_alikes_from_other_scripts_are_refused_as_mixed_script() {
        for (name, what) in [
            ("\u{430}dmin", "Cyrillic а"),
            ("admin\u{456}", "Cyrillic і"),
            ("p\u{430}yp\u{430}l", "Cyrillic а twice"),
            ("r\u{43e}ot", "Cyrillic о"),
            ("r\u{3bf}ot", "Greek ο"),
            ("\u{3b1}dmin", "Greek α"),
            ("adm\u{456}n1", "Cyrillic і and a digit"),
            ("admin\u{661}", "an Arabic-Indic digit"),
        ] {
            assert_eq!(normal(name), None, "{what}");
        }
    }

    #[test]
    fn single_scripts_and_the_highly_restrictive_mixes_are_names() {
        for name in [
            "ιωάννης",         // Greek alone
            "иван",            // Cyrillic alone
            "иван2",           // with a digit
            "山田たろう",      // Han and Hiragana
            "タナカ太郎",      // Katakana and Han
            "タナカtaro",      // Japanese and Latin
            "yamada山田",      // Han and Latin
            "김민준",          // Hangul
            "김kim金",         // Hangul, Latin and Han
            "ㄅㄆ王",          // Bopomofo and Han
            "محمد",            // Arabic
            "दिनेश",            // Devanagari
            "jürgen.o'neil-2", // Latin with ASCII punctuation
        ] {
            assert!(normal(name).is_some(), "{name}");
        }
        for (name, what) in [
            ("김たろう", "Hangul and Hiragana"),
            ("иванivan", "Cyrillic and Latin"),
            ("ιωάννηςjohn", "Greek and Latin"),
            ("иван山田", "Cyrillic and Han"),
        ] {
            assert_eq!(normal(name), None, "{what}");
        }
    }

    #[test]
    fn symbols_and_compatibility_characters_are_refused_not_mapped() {
        // The Kelvin and Angstrom signs too, although NFC maps them to `K` and `Å`.
        for name in [
            "ﬁsh",
            "x²",
            "\u{1d41a}lice",
            "bob♥",
            "o’brien",
            "🦀",
            "\u{212a}im",
            "\u{212b}sa",
            // Letters newer than the profile's Unicode 6.3: Adlam (9.0), Cherokee small (8.0).
            "\u{1e922}\u{1e923}",
            "\u{ab70}\u{ab71}",
        ] {
            assert_eq!(normal(name), None, "{name}");
        }
    }

    #[test]
    fn skeletons_of_look_alikes_collide() {
        let admin = username_skeleton("admin");
        for look_alike in [
            "adrnin",
            "\u{430}dmin",
            "\u{3b1}dmin",
            "ad\u{200b}min",
            "ad\u{ad}min",
            "ＡＤＭＩＮ",
            "ADMIN",
        ] {
            assert_eq!(username_skeleton(look_alike), admin, "{look_alike}");
        }
        assert_eq!(username_skeleton("paypa1"), username_skeleton("paypal"));
        assert_eq!(username_skeleton("straße"), username_skeleton("strasse"));
        for other in ["admins", "admim", "bob", "alice"] {
            assert_ne!(username_skeleton(other), admin, "{other}");
        }
    }

    #[test]
    fn the_legacy_form_is_the_one_earlier_versions_stored() {
        assert_eq!(legacy_username(" Straße ").as_deref(), Some("straße"));
        assert_eq!(legacy_username("ﬁsh").as_deref(), Some("fish"));
        assert_eq!(
            legacy_username("ad\u{200b}min").as_deref(),
            Some("ad\u{200b}min")
        );
        assert_eq!(legacy_username("a b"), None);
    }

    /// What the rate limiter counts an attempt under.
    fn username_key(raw: &str) -> Option<String> {
        normalize_username(raw).or_else(|| legacy_key(raw))
    }

    #[test]
    fn the_limiter_counts_every_spelling_of_an_account_as_one_name() {
        for spelling in ["Straße", "STRASSE", "ﬆraße", "ＳＴＲＡＳＳＥ"] {
            assert_eq!(
                username_key(spelling).as_deref(),
                Some("strasse"),
                "{spelling}"
            );
        }
        assert_eq!(username_key("ﬁsh").as_deref(), Some("fish"));
        // Refused names are still counted, under the form a legacy account would have.
        assert_eq!(username_key("o’Brien").as_deref(), Some("o’brien"));
        assert_eq!(username_key("\u{430}dmin").as_deref(), Some("\u{430}dmin"));
        assert_eq!(username_key("a b"), None);
    }

    /// Names of one script group (with digits and ASCII punctuation) built from pieces that
    /// stress the rules: upper-case, full-width and decomposed forms, the letters whose case
    /// folding is unusual (`ß`, `İ`, final sigma, iota subscript, Cherokee), combining marks.
    fn tricky_name() -> impl Strategy<Value = String> {
        const GROUPS: [&[&str]; 7] = [
            &[
                "a", "A", "Ａ", "ß", "ẞ", "ſ", "İ", "ı", "e\u{301}", "é", "Å", "\u{30a}", "ǅ", "ǆ",
                "ǰ", "\u{30c}",
            ],
            &[
                "Σ", "ς", "σ", "ΐ", "ᾳ", "ᾼ", "\u{345}", "ο", "Ά", "\u{301}", "ϐ",
            ],
            &["ᏸ", "Ᏸ", "ꭰ", "Ꭰ"],
            &["ｱ", "ア", "ﾞ", "た", "山", "a", "Ａ", "ー"],
            &["김", "\u{1100}", "\u{1161}", "山", "k"],
            &["क", "्", "ष", "ि", "\u{93c}"],
            &["ش", "م", "ح", "\u{661}", "\u{5d3}", "ו", "\u{64b}"],
        ];
        let common = ["1", "-", ".", "_", "'"];
        prop::sample::select(GROUPS.to_vec())
            .prop_flat_map(move |group| {
                let pieces: Vec<&str> = group.iter().chain(&common).copied().collect();
                prop::collection::vec(prop::sample::select(pieces), 1..12)
            })
            .prop_map(|pieces| pieces.concat())
    }

    /// Every ASCII character, alone, inside a name and around it, and the length bounds: the
    /// fast path answers what the profile does.
    #[test]
    fn the_ascii_path_agrees_with_the_profile_on_every_character() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            for raw in [
                c.to_string(),
                format!("ab{c}cd"),
                format!("{c}abc"),
                format!("abc{c}"),
                format!("  A{c}  "),
            ] {
                assert_eq!(normalize_ascii(&raw), normalize_unicode(&raw), "{raw:?}");
            }
        }
        for len in [63, 64, 65] {
            let raw = "A".repeat(len);
            assert_eq!(normalize_ascii(&raw), normalize_unicode(&raw), "{len}");
        }
    }

    proptest! {
        #[test]
        fn the_ascii_path_agrees_with_the_profile(raw in "[\\x00-\\x7f]{0,70}") {
            prop_assert_eq!(normalize_ascii(&raw), normalize_unicode(&raw));
        }

        #[test]
        fn a_normal_form_normalises_to_itself(raw in tricky_name()) {
            if let Some(name) = normalize_username(&raw) {
                prop_assert_eq!(normalize_username(&name), Some(name.clone()));
                prop_assert_eq!(username_key(&name), Some(name.clone()));
                prop_assert_eq!(username_key(&raw), Some(name));
            }
        }

        #[test]
        fn any_string_normalises_without_panicking(raw in "\\PC{0,80}|.{0,80}") {
            if let Some(name) = normalize_username(&raw) {
                prop_assert!(!name.is_empty() && name.chars().count() <= MAX_USERNAME_CHARS);
                prop_assert_eq!(normalize_username(&name), Some(name));
            }
            let _ = username_skeleton(&raw);
            let _ = username_key(&raw);
        }

        #[test]
        fn case_and_width_never_make_another_name(raw in "[a-zA-Z0-9._-]{1,20}") {
            let wide: String = raw
                .chars()
                .map(|c| char::from_u32(c as u32 + 0xfee0).unwrap_or(c))
                .collect();
            let lower = raw.to_ascii_lowercase();
            prop_assert_eq!(normalize_username(&raw), Some(lower.clone()));
            prop_assert_eq!(normalize_username(&raw.to_ascii_uppercase()), Some(lower.clone()));
            prop_assert_eq!(normalize_username(&wide), Some(lower));
        }

        #[test]
        fn an_invisible_character_anywhere_is_refused(
            raw in "[a-z]{1,20}",
            at in 0usize..=20,
            which in 0..INVISIBLE.len(),
        ) {
            let at = at.min(raw.len());
            let name = format!("{}{}{}", &raw[..at], INVISIBLE[which].0, &raw[at..]);
            prop_assert_eq!(normalize_username(&name), None);
            prop_assert_eq!(username_skeleton(&name), username_skeleton(&raw));
        }
    }
}
