//! The example server's sign-in page at `/`: one button per external provider, rendered on the
//! server, and a small script (served from `/signin.js`, no inline code) that runs the front
//! end's half of the flow: a PKCE verifier kept in `sessionStorage`, the start with its S256
//! challenge, and back at `/?code=…` the exchange at `/auth/token` and a call to `/users/me`.
//! The tokens stay in a variable of the page: nothing is written to storage or cookies.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

/// Scripts and requests to this origin only; no inline script, no framing, no forms.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page and its script, for these providers (route name, label).
pub fn router(providers: &[(String, String)]) -> Router {
    let page = page(providers);
    Router::new()
        .route(
            "/",
            get(move || {
                let page = page.clone();
                async move {
                    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
                }
            }),
        )
        .route(
            "/signin.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
}

/// HTML text escaping: `& < > " '`.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn page(providers: &[(String, String)]) -> String {
    let buttons = if providers.is_empty() {
        "<p>No sign-in provider is configured: set <code>AUTH_OIDC_&lt;NAME&gt;_ISSUER</code>, \
         <code>_CLIENT_ID</code> and <code>_CLIENT_SECRET</code>, or \
         <code>AUTH_GITHUB_CLIENT_ID</code> and <code>AUTH_GITHUB_CLIENT_SECRET</code>.</p>"
            .to_owned()
    } else {
        providers
            .iter()
            .map(|(name, label)| {
                format!(
                    "<p><button type=\"button\" data-provider=\"{}\">Sign in with {}</button></p>\n",
                    escape(name),
                    escape(label)
                )
            })
            .collect()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Sign in</title><script src=\"/signin.js\" defer></script></head>\n\
         <body><h1>Sign in</h1>\n{buttons}<p id=\"status\" role=\"status\"></p>\n\
         <p>Or log in with a password in the <a href=\"/docs\">API documentation</a>.</p>\
         </body></html>\n"
    )
}

/// The front end's half of the flow.
const SCRIPT: &str = r#""use strict";
const status = document.getElementById("status");
const show = (text, username) => {
  status.textContent = text;
  if (username) status.dataset.username = username;
};
const base64url = (bytes) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

async function start(provider) {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  sessionStorage.setItem("pkce_verifier", verifier);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const query = new URLSearchParams({
    redirect_to: location.origin + "/",
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  });
  location.assign("/auth/external/" + encodeURIComponent(provider) + "/start?" + query);
}

async function finish(code) {
  const verifier = sessionStorage.getItem("pkce_verifier");
  sessionStorage.removeItem("pkce_verifier");
  if (!verifier) {
    show("This sign-in was not started from this page.");
    return;
  }
  const answer = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code, code_verifier: verifier }),
  });
  const tokens = await answer.json();
  if (!answer.ok) {
    show("Sign-in failed: " + tokens.error);
    return;
  }
  const me = await fetch("/users/me", { headers: { Authorization: "Bearer " + tokens.access_token } });
  if (!me.ok) {
    show("Signed in, but /users/me answered " + me.status);
    return;
  }
  const user = await me.json();
  show("Signed in as " + user.username + " (/users/me " + me.status + ")", user.username);
}

for (const button of document.querySelectorAll("button[data-provider]")) {
  button.addEventListener("click", () => start(button.dataset.provider));
}
const params = new URLSearchParams(location.search);
// The code and any error leave the address bar (and the history) at once.
if (params.has("code") || params.has("error") || params.has("linked")) {
  history.replaceState(null, "", "/");
}
if (params.has("code")) {
  finish(params.get("code")).catch((error) => show("Sign-in failed: " + error));
} else if (params.has("error")) {
  show("Sign-in failed: " + params.get("error"));
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        let page = page(&[("x".to_owned(), "<b>\"X\"</b>".to_owned())]);
        assert!(page.contains("Sign in with &lt;b&gt;&quot;X&quot;&lt;/b&gt;"));
        assert!(!page.contains("<b>"));
    }
}
