//! Who is logging in: the client address (the peer, or the right-most untrusted forwarding
//! entry when the peer is a trusted proxy) and the normalised username from the body.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use http::{HeaderMap, Request};

use crate::error::ConfigError;

/// The address of the client a request comes from, put into the request extensions by the
/// application. With the `router` feature (which brings axum), [`RateLimitLogin`] also reads
/// axum's `ConnectInfo<SocketAddr>`; a bare `SocketAddr` in the extensions is read too. tonic
/// and plain hyper apps insert it from their connection's peer address.
///
/// [`RateLimitLogin`]: super::RateLimitLogin
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub(crate) fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid =
            || ConfigError::InvalidSetting("trusted proxies must be ip addresses or cidr networks");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) if prefix.bytes().all(|b| b.is_ascii_digit()) && !prefix.is_empty() => {
                prefix.parse::<u8>().map_err(|_| invalid())?
            }
            Some(_) => return Err(invalid()),
            None => max,
        };
        if prefix > max {
            return Err(invalid());
        }
        Ok(Self { addr, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.addr), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as dual-stack sockets report IPv4 peers) are
/// their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The peer address the application or axum put into the extensions.
pub(crate) fn peer<B>(request: &Request<B>) -> Option<IpAddr> {
    if let Some(ClientAddr(ip)) = request.extensions().get::<ClientAddr>() {
        return Some(canonical(*ip));
    }
    #[cfg(feature = "router")]
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(canonical(info.0.ip()));
    }
    request
        .extensions()
        .get::<SocketAddr>()
        .map(|addr| canonical(addr.ip()))
}

/// The forwarding header a deployment's trusted proxies write. Only that header is read; the
/// other is ignored whatever it says, because a proxy that appends to one usually passes the
/// other through from the client untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, AWS ALB, most load
    /// balancers). The default.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), `for=` parameters.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lower-case.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

impl std::str::FromStr for ForwardedHeader {
    type Err = ConfigError;

    /// `x-forwarded-for` or `forwarded`, in any case.
    fn from_str(name: &str) -> Result<Self, ConfigError> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            Ok(Self::XForwardedFor)
        } else if name.eq_ignore_ascii_case("forwarded") {
            Ok(Self::Forwarded)
        } else {
            Err(ConfigError::InvalidSetting(
                "the forwarding header must be x-forwarded-for or forwarded",
            ))
        }
    }
}

/// The client address: the peer, unless the peer is a trusted proxy; then the right-most
/// entry of the configured forwarding header that is not itself a trusted proxy. An entry
/// that cannot be read stops the walk at the proxy that added it: that proxy's address is
/// used, never something further left that a client could have written.
pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[Cidr],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let entries = match header {
        ForwardedHeader::Forwarded => forwarded(headers),
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
    };
    let mut client = peer;
    for entry in entries.iter().rev() {
        match entry {
            Some(ip) if is_trusted(*ip) => client = *ip,
            Some(ip) => return *ip,
            None => return client,
        }
    }
    client
}

/// The well-known NAT64 prefix, `64:ff9b::/96` (RFC 6052): the last 32 bits are an IPv4 host.
const NAT64: u128 = 0x0064_ff9b_0000_0000_0000_0000_0000_0000;

/// The network an IPv6 client is counted as: its first `prefix` bits. IPv4 addresses are
/// counted one by one, and so are IPv4 hosts reached through the well-known NAT64 prefix,
/// which a /64 would otherwise lump together behind one translator.
pub(crate) fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if u128::from(v6) >> 32 == NAT64 >> 32 => IpAddr::V4(
            u32::try_from(u128::from(v6) & 0xffff_ffff)
                .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from),
        ),
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// The `Forwarded` chain, left (origin) to right (nearest proxy); `None` for unreadable
/// entries, including an element without a `for=` parameter.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else {
            chain.push(None);
            continue;
        };
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then_some(value.trim())
            });
            chain.push(node.and_then(parse_node));
        }
    }
    chain
}

/// The `X-Forwarded-For` chain, as [`forwarded`].
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            chain.push(None);
            continue;
        };
        chain.extend(value.split(',').map(|entry| parse_node(entry.trim())));
    }
    chain
}

/// A node of `Forwarded: for=` (RFC 7239 §6: an address, `"[v6]:port"`, `v4:port`) or an
/// `X-Forwarded-For` entry. Obfuscated identifiers and `unknown` are unreadable.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse().ok().map(canonical);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // `192.0.2.1:8080`
    let (v4, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn ipv6_clients_are_counted_by_network() {
        assert_eq!(
            network(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(network(ip("2001:db8:1:2::1"), 48), ip("2001:db8:1::"));
        assert_eq!(network(ip("2001:db8:1:2::1"), 128), ip("2001:db8:1:2::1"));
        assert_eq!(network(ip("203.0.113.7"), 64), ip("203.0.113.7"));
        // IPv4 hosts behind a NAT64 translator stay distinct clients.
        assert_eq!(network(ip("64:ff9b::cb00:7107"), 64), ip("203.0.113.7"));
        assert_eq!(network(ip("64:ff9b::cb00:7108"), 64), ip("203.0.113.8"));
        assert_eq!(network(ip("64:ff9b:0:0:1::1"), 64), ip("64:ff9b::"));
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "v4-mapped");
        assert!(!net.contains(ip("11.0.0.1")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "nope",
            "10.0.0/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    use ForwardedHeader::{Forwarded, XForwardedFor};

    fn trusted() -> [Cidr; 1] {
        [Cidr::parse("10.0.0.0/8").unwrap()]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        for header in [XForwardedFor, Forwarded] {
            let peer = ip("203.0.113.9");
            assert_eq!(client_ip(peer, &spoofed, &trusted(), header), peer);
            assert_eq!(client_ip(peer, &spoofed, &[], header), peer);
        }
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        // The client wrote 6.6.6.6 itself; the edge proxy appended the real 198.51.100.7,
        // and an inner proxy 10.0.0.2, in a header line of its own.
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        let got = client_ip(ip("10.0.0.1"), &chain, &trusted(), XForwardedFor);
        assert_eq!(got, ip("198.51.100.7"));
        let forwarded = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https, For=10.0.0.2"#,
        )]);
        let got = client_ip(ip("10.0.0.1"), &forwarded, &trusted(), Forwarded);
        assert_eq!(got, ip("2001:db8::7"));
    }

    /// Every combination of the two headers: only the configured one is ever read.
    #[test]
    fn only_the_configured_header_is_read() {
        let peer = ip("10.0.0.1");
        type Headers = &'static [(&'static str, &'static str)];
        const XFF: (&str, &str) = ("x-forwarded-for", "198.51.100.7");
        const FWD: (&str, &str) = ("forwarded", "for=192.0.2.60");
        let cases: [(Headers, IpAddr, IpAddr); 4] = [
            (&[], peer, peer),
            (&[XFF], ip("198.51.100.7"), peer),
            (&[FWD], peer, ip("192.0.2.60")),
            (&[XFF, FWD], ip("198.51.100.7"), ip("192.0.2.60")),
        ];
        for (pairs, with_xff, with_forwarded) in cases {
            let map = headers(pairs);
            assert_eq!(
                client_ip(peer, &map, &trusted(), XForwardedFor),
                with_xff,
                "{pairs:?}"
            );
            assert_eq!(
                client_ip(peer, &map, &trusted(), Forwarded),
                with_forwarded,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn unreadable_or_missing_entries_never_let_the_client_choose() {
        let peer = ip("10.0.0.1");
        let cases: [(&str, &str, ForwardedHeader, &str); 10] = [
            (
                "x-forwarded-for",
                "6.6.6.6, not-an-ip",
                XForwardedFor,
                "10.0.0.1",
            ),
            ("x-forwarded-for", "6.6.6.6,", XForwardedFor, "10.0.0.1"),
            (
                "x-forwarded-for",
                "6.6.6.6, 300.1.1.1",
                XForwardedFor,
                "10.0.0.1",
            ),
            (
                "x-forwarded-for",
                "6.6.6.6, [2001:db8::1",
                XForwardedFor,
                "10.0.0.1",
            ),
            (
                "x-forwarded-for",
                "10.9.9.9, 10.0.0.2",
                XForwardedFor,
                "10.9.9.9",
            ),
            (
                "forwarded",
                "for=6.6.6.6, for=_hidden, for=10.0.0.3",
                Forwarded,
                "10.0.0.3",
            ),
            (
                "forwarded",
                "for=6.6.6.6, by=10.0.0.3",
                Forwarded,
                "10.0.0.1",
            ),
            (
                "forwarded",
                "for=6.6.6.6, for=unknown",
                Forwarded,
                "10.0.0.1",
            ),
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::1\"",
                Forwarded,
                "10.0.0.1",
            ),
            (
                "forwarded",
                "for=6.6.6.6, for=1.2.3.4:99999",
                Forwarded,
                "10.0.0.1",
            ),
        ];
        for (name, value, header, expected) in cases {
            let map = headers(&[(name, value)]);
            assert_eq!(
                client_ip(peer, &map, &trusted(), header),
                ip(expected),
                "{name}: {value}"
            );
        }
        for header in [XForwardedFor, Forwarded] {
            assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted(), header), peer);
        }
        // A value that is not visible ASCII is unreadable as a whole.
        let mut map = HeaderMap::new();
        map.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        map.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.\xff").unwrap(),
        );
        assert_eq!(client_ip(peer, &map, &trusted(), XForwardedFor), peer);
    }

    #[test]
    fn header_names_parse_in_any_case() {
        assert_eq!("X-Forwarded-For".parse(), Ok(XForwardedFor));
        assert_eq!(" forwarded ".parse(), Ok(Forwarded));
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
        assert_eq!(ForwardedHeader::default(), XForwardedFor);
        assert_eq!(Forwarded.as_str(), "forwarded");
    }

    proptest::proptest! {
        /// Whatever a client writes into either header, and however many lines it sends,
        /// behind a proxy that appends the real address to the configured header the
        /// limiter's key is that address.
        #[test]
        fn a_client_never_chooses_its_key(
            own_xff in proptest::collection::vec("[ -~]{0,40}", 0..4),
            own_forwarded in proptest::collection::vec("[ -~]{0,40}", 0..4),
            real in proptest::prelude::any::<[u8; 4]>(),
            use_forwarded in proptest::prelude::any::<bool>(),
        ) {
            let real = IpAddr::from(real);
            proptest::prop_assume!(!trusted()[0].contains(real));
            let mut map = HeaderMap::new();
            for value in &own_xff {
                if let Ok(value) = HeaderValue::from_str(value) {
                    map.append("x-forwarded-for", value);
                }
            }
            for value in &own_forwarded {
                if let Ok(value) = HeaderValue::from_str(value) {
                    map.append("forwarded", value);
                }
            }
            let (header, appended) = if use_forwarded {
                (Forwarded, format!("for={real}"))
            } else {
                (XForwardedFor, real.to_string())
            };
            map.append(header.as_str(), HeaderValue::from_str(&appended).unwrap());
            proptest::prop_assert_eq!(
                client_ip(ip("10.0.0.1"), &map, &trusted(), header),
                real
            );
        }
    }
}
