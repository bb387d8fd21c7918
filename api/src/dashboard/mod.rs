//! `GET /dashboard`: one static page served from the binary (issue #5, ADR 0020) — HTML,
//! vanilla JavaScript and CSS embedded with `include_str!`, no build step, no CDN.
//!
//! **Owns:** the three assets and their headers: a strict Content-Security-Policy (`'self'`
//! only, no inline script or style), `no-store` for the page. The page signs in through
//! `POST /api/v1/auth/login` (or takes a pasted token), keeps the token in `sessionStorage`,
//! and polls the analytics endpoints every 2 s with `Authorization: Bearer`.
//!
//! **Must not:** compute any figure itself (everything comes from the analytics API, under the
//! caller's permissions and tenant), load anything from another origin, or need a session of
//! its own on the server.

use crate::app::AppState;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page.
pub const INDEX_HTML: &str = include_str!("index.html");
/// Its script.
pub const APP_JS: &str = include_str!("app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("app.css");

/// The page's Content-Security-Policy: same origin only, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8", "no-store")
}

async fn script() -> Response {
    asset(
        APP_JS,
        "text/javascript; charset=utf-8",
        "no-cache, max-age=0",
    )
}

async fn style() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8", "no-cache, max-age=0")
}

/// `/dashboard`, `/dashboard/app.js`, `/dashboard/app.css` (public: the data needs a token).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/app.css", get(style))
}
