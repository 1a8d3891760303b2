//! The operator console (`admin_listen:`): server-rendered pages on their own listener, for
//! people who run the gateway. Operators sign in at the gateway's authorization server (OAuth
//! authorization code with PKCE, the same login MCP clients use) and must hold `admin_role`;
//! every change made here (approving a tool, cancelling a job) is checked against a CSRF token
//! made for the operator's sign-in and leaves an audit row like any request.
//!
//! Pages: the last hour from the gateway's own counters ([`stats`]); scopes and upstreams with
//! health, ejections, processes, the running configuration and its reload history; the tool
//! registry with a readable diff of a changed definition and its approval; the audit trail,
//! searched and paged; the jobs, cancellable. No script, no outside asset (the pages are whole in
//! the binary), readable in light and dark, usable on a phone.

mod login;
mod pages;
mod stats;

use crate::config::ConsoleSettings;
use crate::proxy::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::Arc;

/// The console's state: the gateway's current runtime (read on every page), its pages, the
/// counters' history and the OAuth client it signs operators in with.
pub struct Console {
    rt: Arc<ArcSwap<Runtime>>,
    settings: ConsoleSettings,
    pages: minijinja::Environment<'static>,
    stats: stats::Stats,
    http: reqwest::Client,
    /// The console's registration at the authorization server, per redirect URI.
    clients: tokio::sync::Mutex<HashMap<String, Arc<crate::connect::oauth::Client>>>,
}

impl Console {
    pub fn new(rt: Arc<ArcSwap<Runtime>>, settings: ConsoleSettings) -> Arc<Self> {
        let mut pages = minijinja::Environment::new();
        for (name, text) in TEMPLATES {
            if let Err(e) = pages.add_template(name, text) {
                tracing::error!(template = name, error = %e, "console: a page template does not compile");
            }
        }
        Arc::new(Self {
            rt,
            settings,
            pages,
            stats: stats::Stats::default(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            clients: Default::default(),
        })
    }

    fn runtime(&self) -> Arc<Runtime> {
        self.rt.load_full()
    }

    /// A page rendered with the operator's name and CSRF token beside `ctx`.
    fn render(&self, name: &str, op: &Operator, ctx: minijinja::Value) -> Response {
        let page =
            minijinja::context! { operator => op.user, csrf => op.csrf, page => name, ..ctx };
        self.page(StatusCode::OK, name, page)
    }

    fn page(&self, status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
        match self.pages.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(page = name, error = %e, "console: a page did not render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        }
    }

    /// A page that says what went wrong, in words.
    fn problem(&self, status: StatusCode, title: &str, what: &str) -> Response {
        self.page(
            status,
            "problem.html",
            minijinja::context! { title => title, what => what },
        )
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("problem.html", include_str!("templates/problem.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("scopes.html", include_str!("templates/scopes.html")),
    ("tools.html", include_str!("templates/tools.html")),
    ("tool.html", include_str!("templates/tool.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
];

/// The signed-in operator of a request.
pub struct Operator {
    pub user: String,
    /// The token every form of this page carries back.
    pub csrf: String,
}

fn router(console: Arc<Console>) -> axum::Router {
    axum::Router::new()
        .route("/", get(pages::overview))
        .route("/scopes", get(pages::scopes))
        .route("/tools", get(pages::tools))
        .route("/tools/{scope}/{tool}", get(pages::tool))
        .route("/tools/{scope}/{tool}/approve", post(pages::approve))
        .route("/audit", get(pages::audit))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{id}/cancel", post(pages::cancel))
        .route("/login", get(login::start))
        .route("/login/callback", get(login::callback))
        .route("/logout", post(login::logout))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(console)
        .layer(axum::middleware::map_response(guarded))
}

/// Every answer: never cached, never framed, no referrer to other sites, and nothing loaded from anywhere (the
/// pages carry their style inline and run no script).
async fn guarded(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: with it a browser sends `Origin: null` on the console's own forms.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// The operator signed in on this browser; a request without one is sent to sign in.
impl axum::extract::FromRequestParts<Arc<Console>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        c: &Arc<Console>,
    ) -> Result<Self, Response> {
        let rt = c.runtime();
        let login = login::cookie(&parts.headers).and_then(|v| login::opened(&v, &rt.sessions));
        let Some(login) = login else {
            return Err(Redirect::to("/login").into_response());
        };
        let csrf = login::csrf_for(&login.user, &rt.sessions).unwrap_or_default();
        Ok(Operator {
            user: login.user,
            csrf,
        })
    }
}

/// Runs the console on its listener until the gateway stops, and samples the counters.
pub struct ConsoleService(pub Arc<Console>);

#[async_trait]
impl BackgroundService for ConsoleService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let console = self.0.clone();
        let listener = match tokio::net::TcpListener::bind(console.settings.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %console.settings.listen, error = %e, "console: cannot listen; it is off");
                return;
            }
        };
        tracing::info!(address = %console.settings.listen, "operator console listening");
        let sampler = tokio::spawn({
            let console = console.clone();
            async move {
                loop {
                    console.stats.sample();
                    tokio::time::sleep(stats::EVERY).await;
                }
            }
        });
        let mut stop = shutdown.clone();
        let served = axum::serve(listener, router(console))
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "console: the listener failed");
        }
        sampler.abort();
    }
}
