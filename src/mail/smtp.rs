//! [`SmtpMailer`]: mail over SMTP through `lettre`, with TLS.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{MailError, MailFuture, Mailer, Message};
use crate::error::ConfigError;

/// How long one delivery may take, connection included, unless
/// [`timeout`](SmtpMailerBuilder::timeout) says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Mailer`] that delivers over SMTP (lettre, rustls). The connection is encrypted unless
/// the server is on the loopback interface and plain SMTP was asked for:
///
/// | URL | connection |
/// |---|---|
/// | `smtps://host[:port]` | implicit TLS (RFC 8314), port 465 by default |
/// | `smtp://host[:port]` | STARTTLS, required (a server that does not offer it is refused); port 587 by default |
/// | `smtp://host[:port]?tls=none` | plain SMTP, only to `localhost` or a loopback address (a local relay); port 25 by default |
///
/// Certificates are checked against Mozilla's roots (compiled in) plus any
/// [root](SmtpMailerBuilder::root_certificate_pem) added; credentials are set on the builder,
/// never in the URL, which tends to end up in logs.
///
/// ```
/// use tower_jwt_auth::mail::SmtpMailer;
///
/// let mailer = SmtpMailer::builder("smtp://mail.example:587", "Example <no-reply@example.com>")?
///     .credentials("no-reply@example.com", "app password")
///     .build()?;
/// # let _ = mailer;
/// // Plain SMTP to anything but the loopback interface is refused.
/// assert!(SmtpMailer::builder("smtp://mail.example?tls=none", "no-reply@example.com").is_err());
/// # Ok::<(), tower_jwt_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    description: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.description)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// Builds an [`SmtpMailer`]; start with [`SmtpMailer::builder`].
#[must_use]
pub struct SmtpMailerBuilder {
    host: String,
    port: u16,
    security: Security,
    from: Mailbox,
    credentials: Option<Credentials>,
    roots: Vec<Certificate>,
    timeout: Duration,
}

impl fmt::Debug for SmtpMailerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailerBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    ImplicitTls,
    StartTls,
    Plain,
}

impl SmtpMailer {
    /// A builder for the server at `url` (see the table above), sending as `from`
    /// (`no-reply@example.com` or `Name <no-reply@example.com>`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a URL that is not one of the forms above (other
    /// schemes, a path, user info, other query parameters), plain SMTP to a host that is not
    /// loopback, or a `from` that is not an address.
    pub fn builder(url: &str, from: &str) -> Result<SmtpMailerBuilder, ConfigError> {
        let invalid = ConfigError::InvalidSetting;
        let uri: http::Uri = url
            .parse()
            .map_err(|_| invalid("the SMTP URL is not a URL"))?;
        let authority = uri.authority().ok_or(invalid("the SMTP URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "the SMTP URL must not carry credentials; set them on the builder",
            ));
        }
        if !matches!(uri.path(), "" | "/") {
            return Err(invalid("the SMTP URL must not have a path"));
        }
        let security = match (uri.scheme_str(), uri.query()) {
            (Some("smtps"), None) => Security::ImplicitTls,
            (Some("smtp"), None) => Security::StartTls,
            (Some("smtp"), Some("tls=none")) => Security::Plain,
            (Some("smtp" | "smtps"), Some(_)) => {
                return Err(invalid(
                    "the SMTP URL's only query may be tls=none, on smtp://",
                ));
            }
            _ => return Err(invalid("the SMTP URL's scheme must be smtp or smtps")),
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if security == Security::Plain && !is_loopback(host) {
            return Err(invalid(
                "plain SMTP (tls=none) only to localhost or a loopback address",
            ));
        }
        let port = authority.port_u16().unwrap_or(match security {
            Security::ImplicitTls => 465,
            Security::StartTls => 587,
            Security::Plain => 25,
        });
        let from: Mailbox = from
            .parse()
            .map_err(|_| invalid("the sender (from) is not a mail address"))?;
        Ok(SmtpMailerBuilder {
            host: host.to_owned(),
            port,
            security,
            from,
            credentials: None,
            roots: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        })
    }
}

/// `localhost` (RFC 6761 keeps it on the loopback interface) or a loopback address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl SmtpMailerBuilder {
    /// Authenticates with this user name and password (`AUTH PLAIN` or `LOGIN`, only ever on
    /// an encrypted or loopback connection).
    pub fn credentials(mut self, username: &str, password: &str) -> Self {
        self.credentials = Some(Credentials::new(username.to_owned(), password.to_owned()));
        self
    }

    /// Trusts the root certificates in `pem` besides Mozilla's: a relay with a private CA.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `pem` holds no certificate, or a malformed one.
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Result<Self, ConfigError> {
        let invalid =
            || ConfigError::InvalidSetting("the SMTP root certificate is not a PEM certificate");
        let blocks = pem::parse_many(pem).map_err(|_| invalid())?;
        let mut found = false;
        for block in blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
            let certificate =
                Certificate::from_der(block.into_contents()).map_err(|_| invalid())?;
            self.roots.push(certificate);
            found = true;
        }
        if !found {
            return Err(invalid());
        }
        Ok(self)
    }

    /// How long one delivery may take, connecting included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The mailer. It connects when it first sends.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when the TLS settings cannot be built.
    pub fn build(self) -> Result<SmtpMailer, ConfigError> {
        let tls = || {
            let mut parameters = TlsParameters::builder(self.host.clone());
            for root in self.roots.iter().cloned() {
                parameters = parameters.add_root_certificate(root);
            }
            parameters
                .build_rustls()
                .map_err(|_| ConfigError::InvalidSetting("the SMTP TLS settings are invalid"))
        };
        let tls = match self.security {
            Security::ImplicitTls => Tls::Wrapper(tls()?),
            Security::StartTls => Tls::Required(tls()?),
            Security::Plain => Tls::None,
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(credentials) = self.credentials {
            transport = transport.credentials(credentials);
        }
        let scheme = match self.security {
            Security::ImplicitTls => "smtps",
            Security::StartTls | Security::Plain => "smtp",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        Ok(SmtpMailer {
            transport: transport.build(),
            from: self.from,
            description: format!("{scheme}://{host}:{}", self.port),
        })
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, message: Message) -> MailFuture {
        let transport = self.transport.clone();
        let from = self.from.clone();
        Box::pin(async move {
            // A bare address only: a display name or `<…>` would let one text name a
            // recipient other than the one it reads as.
            let to: Address = message
                .to
                .parse()
                .map_err(|e| MailError::with_source("the recipient is not a mail address", e))?;
            let to = Mailbox::new(None, to);
            let email = lettre::Message::builder()
                .from(from)
                .to(to)
                .subject(message.subject)
                .header(ContentType::TEXT_PLAIN)
                .body(message.body)
                .map_err(|e| MailError::with_source("the message could not be built", e))?;
            // The timeout bounds each step; the router bounds the whole job.
            transport
                .send(email)
                .await
                .map_err(|e| MailError::with_source("the SMTP server refused or failed", e))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(url: &str) -> Result<(Security, String, u16), ConfigError> {
        SmtpMailer::builder(url, "no-reply@example.com").map(|b| (b.security, b.host, b.port))
    }

    #[test]
    fn urls_choose_the_connection_and_plain_stays_on_loopback() {
        let ok = |url: &str| security(url).unwrap();
        assert_eq!(
            ok("smtps://mail.example"),
            (Security::ImplicitTls, "mail.example".into(), 465)
        );
        assert_eq!(
            ok("smtp://mail.example"),
            (Security::StartTls, "mail.example".into(), 587)
        );
        assert_eq!(
            ok("smtp://mail.example:2525/"),
            (Security::StartTls, "mail.example".into(), 2525)
        );
        assert_eq!(
            ok("smtp://127.0.0.1:1025?tls=none"),
            (Security::Plain, "127.0.0.1".into(), 1025)
        );
        assert_eq!(
            ok("smtp://[::1]?tls=none"),
            (Security::Plain, "::1".into(), 25)
        );
        assert_eq!(ok("smtp://LocalHost?tls=none").0, Security::Plain);
        for bad in [
            "smtp://mail.example?tls=none",
            "smtp://10.0.0.1?tls=none",
            "smtp://localhost.evil.example?tls=none",
            "smtps://127.0.0.1?tls=none",
            "smtp://mail.example?tls=opportunistic",
            "smtp://user:pass@mail.example",
            "smtp://mail.example/path",
            "http://mail.example",
            "mail.example",
            "",
        ] {
            assert!(security(bad).is_err(), "{bad}");
        }
        assert!(SmtpMailer::builder("smtp://mail.example", "not an address").is_err());
        assert!(
            SmtpMailer::builder("smtp://mail.example", "x@y.example")
                .unwrap()
                .root_certificate_pem(b"not pem")
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_bad_recipient_is_an_error_not_a_panic() {
        let mailer = SmtpMailer::builder("smtp://127.0.0.1:9?tls=none", "x@y.example")
            .unwrap()
            .build()
            .unwrap();
        for to in [
            "not an address",
            "x <victim@example.com>",
            "<victim@example.com>",
        ] {
            let error = mailer
                .send(Message {
                    to: to.into(),
                    subject: "s".into(),
                    body: "b".into(),
                })
                .await
                .unwrap_err();
            assert!(error.to_string().contains("recipient"), "{to}: {error}");
        }
        assert!(format!("{mailer:?}").contains("smtp://127.0.0.1:9"));
    }
}
