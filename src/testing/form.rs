//! `application/x-www-form-urlencoded`, as the login endpoints read and write it: query
//! strings, token request bodies, HTTP Basic credentials (RFC 6749 section 2.3.1).

/// Name/value pairs in the order they came, decoded. Empty values count as absent (RFC 6749
/// section 3.1), and a name given twice is refused when it is read.
#[derive(Debug, Default)]
pub(super) struct Params(Vec<(String, String)>);

/// A parameter appeared more than once.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Repeated;

impl Params {
    /// Parses `input` (no leading `?`). `None` for a bad percent escape or bytes that do not
    /// decode to UTF-8.
    pub(super) fn parse(input: &str) -> Option<Self> {
        let mut pairs = Vec::new();
        for pair in input.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (decode(name)?, decode(value)?);
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        Some(Self(pairs))
    }

    /// The value of `name`, if given once.
    pub(super) fn get(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut found = None;
        for (key, value) in &self.0 {
            if key == name {
                if found.is_some() {
                    return Err(Repeated);
                }
                found = Some(value.as_str());
            }
        }
        Ok(found)
    }

    /// Whether some parameter appears more than once.
    pub(super) fn has_repeats(&self) -> bool {
        self.0
            .iter()
            .enumerate()
            .any(|(at, (name, _))| self.0[..at].iter().any(|(key, _)| key == name))
    }
}

/// Decodes one form-urlencoded component: `+` is a space, `%XX` a byte.
pub(super) fn decode(input: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut rest = input.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'+' => {
                bytes.push(b' ');
                rest = tail;
            }
            b'%' => {
                let high = hex(*tail.first()?)?;
                let low = hex(*tail.get(1)?)?;
                bytes.push((high << 4) | low);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters: safe in a query value and
/// in a form body alike.
pub(super) fn encode(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_what_it_must() {
        let params = Params::parse("a=1+2%2B3&b=&c&d=%C3%A9&&e=x%3Dy").unwrap();
        assert_eq!(params.get("a"), Ok(Some("1 2+3")));
        assert_eq!(params.get("b"), Ok(None), "empty is absent");
        assert_eq!(params.get("c"), Ok(None));
        assert_eq!(params.get("d"), Ok(Some("é")));
        assert_eq!(params.get("e"), Ok(Some("x=y")));
        assert!(!params.has_repeats());
        let twice = Params::parse("a=1&a=2&b=3").unwrap();
        assert_eq!(twice.get("a"), Err(Repeated));
        assert_eq!(twice.get("b"), Ok(Some("3")));
        assert!(twice.has_repeats());
        for bad in ["a=%", "a=%4", "a=%zz", "a=%FF"] {
            assert!(Params::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        let text = "http://127.0.0.1:8080/a b?c=d&e+f~é";
        let encoded = encode(text);
        assert_eq!(
            encoded,
            "http%3A%2F%2F127.0.0.1%3A8080%2Fa%20b%3Fc%3Dd%26e%2Bf~%C3%A9"
        );
        assert_eq!(decode(&encoded).as_deref(), Some(text));
    }
}
