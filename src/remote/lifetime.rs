//! How long a fetched JWKS stays fresh: the response's `Cache-Control` and `Age`, within the
//! configured bounds (RFC 9111 sections 4.2.1, 5.1 and 5.2.2).

use std::time::Duration;

use http::HeaderMap;
use http::header::{AGE, CACHE_CONTROL};

/// `max-age` minus `Age`; `no-cache`, `no-store` or an invalid `max-age` count as 0 and
/// several `max-age`s as the smallest (the conservative readings RFC 9111 allows); without
/// any, `min`. Always within `min..=max`.
pub(super) fn lifetime(headers: &HeaderMap, min: Duration, max: Duration) -> Duration {
    let mut max_age: Option<u64> = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for directive in value.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim())),
                None => (directive.trim(), None),
            };
            let seconds =
                if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                    0
                } else if name.eq_ignore_ascii_case("max-age") {
                    argument.map_or(0, delta_seconds)
                } else {
                    continue;
                };
            max_age = Some(max_age.map_or(seconds, |known| known.min(seconds)));
        }
    }
    let Some(max_age) = max_age else {
        return min;
    };
    let age = headers
        .get(AGE)
        .and_then(|age| age.to_str().ok())
        .map_or(0, |age| delta_seconds(age.trim()));
    Duration::from_secs(max_age.saturating_sub(age)).clamp(min, max)
}

/// RFC 9111 section 1.2.2 delta-seconds (a quoted form tolerated for `max-age`): digits, too
/// many of them saturating; anything else 0.
fn delta_seconds(text: &str) -> u64 {
    let digits = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    digits.parse().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const MIN: Duration = Duration::from_secs(300);
    const MAX: Duration = Duration::from_secs(86_400);

    fn secs(cache_control: &[&str], age: Option<&str>) -> u64 {
        let mut headers = HeaderMap::new();
        for value in cache_control {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        }
        if let Some(age) = age {
            headers.insert(AGE, HeaderValue::from_str(age).unwrap());
        }
        lifetime(&headers, MIN, MAX).as_secs()
    }

    #[test]
    fn max_age_is_honoured_within_bounds() {
        assert_eq!(secs(&["max-age=3600"], None), 3600);
        assert_eq!(secs(&["public, max-age=600, must-revalidate"], None), 600);
        assert_eq!(secs(&["MAX-AGE = 900"], None), 900);
        assert_eq!(secs(&["max-age=\"1200\""], None), 1200);
        assert_eq!(secs(&["max-age=15"], None), 300, "raised to the minimum");
        assert_eq!(
            secs(&["max-age=9999999"], None),
            86_400,
            "capped at the maximum"
        );
        assert_eq!(secs(&["max-age=99999999999999999999999"], None), 86_400);
    }

    #[test]
    fn absence_and_refusals_read_conservatively() {
        assert_eq!(secs(&[], None), 300, "no header: the minimum");
        assert_eq!(secs(&["public"], None), 300);
        assert_eq!(secs(&["no-cache"], None), 300);
        assert_eq!(secs(&["max-age=3600, no-store"], None), 300);
        assert_eq!(secs(&["max-age=-5"], None), 300, "invalid is stale");
        assert_eq!(secs(&["max-age=1h"], None), 300);
        assert_eq!(secs(&["max-age"], None), 300);
        assert_eq!(
            secs(&["max-age=3600", "max-age=1000"], None),
            1000,
            "smallest"
        );
        assert_eq!(secs(&["s-maxage=3600"], None), 300, "shared caches only");
    }

    proptest::proptest! {
        /// Whatever an issuer sends, the lifetime stays within the bounds, and a `max-age`
        /// within them is taken as it is.
        #[test]
        fn any_header_gives_a_lifetime_within_bounds(
            values in proptest::collection::vec("[ -~]{0,60}", 0..4),
            age in proptest::option::of("[ -~]{0,12}"),
            max_age in 300u64..=86_400,
        ) {
            let mut headers = HeaderMap::new();
            for value in &values {
                headers.append(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
            }
            if let Some(age) = &age {
                headers.insert(AGE, HeaderValue::from_str(age).unwrap());
            }
            let got = lifetime(&headers, MIN, MAX);
            proptest::prop_assert!((MIN..=MAX).contains(&got));
            let exact = HeaderMap::from_iter([(
                CACHE_CONTROL,
                HeaderValue::from_str(&format!("max-age={max_age}")).unwrap(),
            )]);
            proptest::prop_assert_eq!(lifetime(&exact, MIN, MAX).as_secs(), max_age);
        }
    }

    #[test]
    fn age_is_subtracted() {
        assert_eq!(secs(&["max-age=3600"], Some("600")), 3000);
        assert_eq!(secs(&["max-age=3600"], Some("3599")), 300);
        assert_eq!(secs(&["max-age=3600"], Some("junk")), 3600);
    }
}
