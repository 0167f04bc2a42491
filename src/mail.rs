//! Mail the [router](crate::router) sends: password-reset links and e-mail verification
//! links. A [`Mailer`] delivers a [`Message`]; [`MailTemplates`] say what the messages read.
//!
//! ```
//! use std::sync::Arc;
//! use tower_jwt_auth::issuer::TokenIssuer;
//! use tower_jwt_auth::mail::{LogMailer, MailTemplate, MailTemplates};
//! use tower_jwt_auth::router::AuthRouter;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let templates = MailTemplates {
//!     password_reset: MailTemplate::new(
//!         "Your new password",
//!         "Hi {username}, choose a new password within {minutes} minutes: {link}",
//!     )?,
//!     ..MailTemplates::default()
//! };
//! let auth = AuthRouter::builder(TokenIssuer::generate_ed25519("https://api.example", "api")?)
//!     // Development only: each message is written to the log, link and all.
//!     .mail(Arc::new(LogMailer), "https://app.example")?
//!     .mail_templates(templates)
//!     .build()?;
//! # let _ = auth;
//! # Ok(()) }
//! ```
//!
//! Links are the configured public base URL, a path and the token in the `token` query
//! parameter (`https://app.example/reset-password?token=…`), never built from a request's
//! `Host` header, which an attacker chooses. With the `smtp` feature, [`SmtpMailer`] delivers
//! over SMTP with TLS.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::ConfigError;
use crate::telemetry::TARGET_MAIL;

#[cfg(feature = "smtp")]
mod smtp;
#[cfg(feature = "smtp")]
pub use smtp::{SmtpMailer, SmtpMailerBuilder};

/// One plain-text message to one recipient. `Debug` leaves the body out (it holds a
/// one-time link).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// What [`Mailer::send`] returns.
pub type MailFuture = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send>>;

/// Delivers the router's mail. Implement it to send through another service (an HTTP mail
/// API, a queue); the router calls it off the request path, so a slow mailer delays no answer.
pub trait Mailer: Send + Sync + 'static {
    /// Sends `message`.
    ///
    /// # Errors
    ///
    /// A [`MailError`] when the message could not be handed over; the router logs it (the
    /// request that caused the mail was answered already).
    fn send(&self, message: Message) -> MailFuture;
}

/// Why a message could not be sent.
#[derive(Debug)]
pub struct MailError {
    message: &'static str,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl MailError {
    /// An error with this description.
    #[must_use]
    pub fn new(message: &'static str) -> Self {
        Self {
            message,
            source: None,
        }
    }

    /// An error with this description, caused by `source`.
    pub fn with_source(message: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        Self {
            message,
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(self.message),
        }
    }
}

impl Error for MailError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// A development mailer: writes each message, one-time link included, to the log at `INFO`
/// (target [`TARGET_MAIL`]) instead of sending it. Never in production: whoever reads the
/// logs can take over any account that asks for a reset.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send(&self, message: Message) -> MailFuture {
        tracing::info!(
            target: TARGET_MAIL,
            to = %message.to,
            subject = %message.subject,
            body = %message.body,
            "mail (development: logged, not sent)"
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The subject and plain-text body of one kind of message. `{username}`, `{link}` and
/// `{minutes}` (how long the link works) are replaced when it is rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailTemplate {
    subject: String,
    body: String,
}

impl MailTemplate {
    /// A template.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `body` has no `{link}` (the message would be
    /// useless) or `subject` is empty or spans lines.
    pub fn new(subject: &str, body: &str) -> Result<Self, ConfigError> {
        if !body.contains("{link}") {
            return Err(ConfigError::InvalidSetting(
                "a mail template's body must contain {link}",
            ));
        }
        if subject.trim().is_empty() || subject.chars().any(char::is_control) {
            return Err(ConfigError::InvalidSetting(
                "a mail subject must be one non-empty line",
            ));
        }
        Ok(Self {
            subject: subject.to_owned(),
            body: body.to_owned(),
        })
    }

    /// The message to `to` with the placeholders filled in. Values are inserted once, in one
    /// pass: a username that reads `{link}` stays as it is.
    #[must_use]
    pub fn render(&self, to: &str, username: &str, link: &str, minutes: u64) -> Message {
        let minutes = minutes.to_string();
        let fill = |text: &str| {
            let mut out = String::with_capacity(text.len() + link.len());
            let mut rest = text;
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let tail = &rest[open..];
                let (value, len) = [
                    ("{username}", username),
                    ("{link}", link),
                    ("{minutes}", minutes.as_str()),
                ]
                .into_iter()
                .find(|(name, _)| tail.starts_with(name))
                .map_or(("{", 1), |(name, value)| (value, name.len()));
                out.push_str(value);
                rest = &tail[len..];
            }
            out.push_str(rest);
            out
        };
        Message {
            to: to.to_owned(),
            subject: fill(&self.subject),
            body: fill(&self.body),
        }
    }
}

/// What the router's messages read. The defaults are plain English.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailTemplates {
    /// The password-reset mail (`POST /password/forgot`).
    pub password_reset: MailTemplate,
    /// The verification mail (on registration, `POST /email/verify/resend`).
    pub email_verification: MailTemplate,
}

impl Default for MailTemplates {
    fn default() -> Self {
        Self {
            password_reset: MailTemplate {
                subject: "Reset your password".to_owned(),
                body: "Hello {username},\n\n\
                       someone, hopefully you, asked to reset the password of your account. \
                       Open this link within {minutes} minutes to choose a new one:\n\n\
                       {link}\n\n\
                       If you did not ask for it, ignore this message: your password stays \
                       as it is.\n"
                    .to_owned(),
            },
            email_verification: MailTemplate {
                subject: "Confirm your e-mail address".to_owned(),
                body: "Hello {username},\n\n\
                       open this link within {minutes} minutes to confirm that this address \
                       is yours:\n\n\
                       {link}\n\n\
                       If you did not create an account, ignore this message.\n"
                    .to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_each_placeholder_once() {
        let template = MailTemplate::new("{username}: {x}", "{link} {minutes} {{link}").unwrap();
        let message = template.render("a@b.example", "{link}", "https://l/?token=t", 30);
        assert_eq!(
            message.subject, "{link}: {x}",
            "inserted values are not expanded again"
        );
        assert_eq!(message.body, "https://l/?token=t 30 {https://l/?token=t");
        assert_eq!(message.to, "a@b.example");
        assert!(
            !format!("{message:?}").contains("token=t"),
            "Debug hides the body"
        );
    }

    #[test]
    fn templates_must_carry_the_link_on_one_subject_line() {
        assert!(MailTemplate::new("Reset", "no link here").is_err());
        assert!(MailTemplate::new("", "{link}").is_err());
        assert!(MailTemplate::new("Re\r\nBcc: x@y", "{link}").is_err());
        let defaults = MailTemplates::default();
        for template in [&defaults.password_reset, &defaults.email_verification] {
            assert_eq!(
                MailTemplate::new(&template.subject, &template.body).as_ref(),
                Ok(template)
            );
        }
    }

    #[test]
    fn errors_say_what_failed() {
        let error = MailError::with_source("smtp", std::io::Error::other("refused"));
        assert_eq!(error.to_string(), "smtp: refused");
        assert!(error.source().is_some());
        assert_eq!(MailError::new("x").to_string(), "x");
    }
}
