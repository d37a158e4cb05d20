//! `GET /healthz`: the server's state as JSON for load balancers and people
//! (503 when draining, or when the store or the job database is unreachable).
//! Open to everyone, so it names no path or URL: the store's location and the
//! job database (its credentials redacted) are shown only to a caller who
//! presents the bearer token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::App;

/// The answer to `GET /healthz`.
pub(super) async fn healthz(
    State(app): State<std::sync::Arc<App>>,
    headers: HeaderMap,
) -> Response {
    let admission = &app.exec.admission;
    let detailed = app
        .gate
        .is_verified(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()));
    let store = match &app.exec.store {
        None => json!({ "configured": false }),
        Some(s) => {
            let mut v = json!({
                "configured": true,
                "reachable": s.reachable().await,
                "cached_result_bytes": s.cache.bytes(),
            });
            if detailed {
                v["location"] = json!(s.describe());
            }
            v
        }
    };
    let jobs = match &app.jobs {
        None => json!({ "configured": false }),
        Some(j) => {
            let q = j.queue();
            let mut v = json!({
                "configured": true,
                "reachable": q.reachable().await,
                "queued": q.count(crate::jobs::db::state::QUEUED).await.ok(),
                "running": q.count(crate::jobs::db::state::RUNNING).await.ok(),
            });
            if detailed {
                v["database"] = json!(j.describe());
            }
            v
        }
    };
    let draining = app.gate.draining();
    let healthy = !draining
        && store.get("reachable").is_none_or(|r| r == true)
        && jobs.get("reachable").is_none_or(|r| r == true);
    let body = json!({
        "status": if draining { "draining" } else if healthy { "serving" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "workers": app.workers,
        "queue_depth": admission.queued(),
        "memory_budget_bytes": admission.budget(),
        "memory_in_use_bytes": admission.in_use(),
        "store": store,
        "jobs": jobs,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}
