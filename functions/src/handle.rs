//! [`App::handle`]: one request from the host to its answer. Find the
//! route; run the request's steps ([`Request::prepare`]) and its handler
//! ([`routes::dispatch`]), and end its transaction ([`Request::finish`]); if a database's schema proved behind (nothing was
//! written), migrate and run it once more; if optimistic work found its
//! clinic's data changed before its commit (nothing was written), run it
//! again; then answer
//! ([`Request::respond`]). Never panics on input; every error is rendered
//! in the API's error shape.

use bytes::Bytes;
use http::{Request as HttpRequest, Response};

use crate::app::{App, ClientIp};
use crate::body::Body;
use crate::error::ApiError;
use crate::host::Host;
use crate::request::ctx::{Ctx, Incoming};
use crate::request::pipeline::Request;
use crate::request::render::render;
use crate::routes;

impl<H: Host> App<H> {
    /// Handles one request.
    pub async fn handle(&self, req: HttpRequest<Bytes>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let ip = parts.extensions.get::<ClientIp>().map(|c| c.0);
        let Some((id, route, params)) =
            routes::find_in(&parts.method, &path, self.config.test_hooks)
        else {
            let api = path.starts_with("/api/") || path.starts_with(crate::fhir::BASE);
            // The FHIR face answers its own way (an OperationOutcome).
            let route = if path.starts_with(crate::fhir::BASE) {
                "/fhir/r4 (unmatched)"
            } else {
                "unmatched"
            };
            return render(Err(ApiError::not_found()), Vec::new(), api, route);
        };
        let api = route.no_store();
        let mut cx = Ctx::new(
            self,
            route,
            Incoming {
                params,
                query: parts.uri.query().map(str::to_owned),
                method: parts.method,
                headers: parts.headers,
                body,
                ip,
            },
        );
        cx.reads = routes::reads(id);
        let mut request = Request::new(cx);
        let mut first_try = true;
        loop {
            let result = match request.prepare().await {
                Ok(Some(replayed)) => Ok(replayed),
                Ok(None) => routes::dispatch(id, &mut request).await,
                Err(e) => Err(e),
            };
            let result = request.finish(result).await;
            if result.as_ref().is_err_and(|e| e.conflict) {
                // Optimistic work met a commit after its read: nothing was
                // written; run it again on the new data (after
                // `OPTIMISTIC_RUNS` conflicts, holding the lock, which
                // meets none).
                let conflicts = request.cx.conflicts + 1;
                request = request.restart();
                request.cx.conflicts = conflicts;
                continue;
            }
            if first_try && result.as_ref().is_err_and(|e| e.schema_behind) {
                // Nothing was written (the guard stopped the first batch):
                // migrate, then run the request again, once.
                first_try = false;
                let clinic = request.tenant.as_ref().map(|t| t.id.clone());
                if let Err(e) = self.recover_schema(clinic.as_ref()).await {
                    return render(Err(e), Vec::new(), api, route.path);
                }
                request = request.restart();
                continue;
            }
            return request.respond(result, api).await;
        }
    }
}
