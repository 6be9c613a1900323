//! The route tables: each route as its method, path and handler, in one list per router. The
//! routers are built from these lists and nothing else, so the OpenAPI test can compare what is
//! served with what is described (`openapi.rs`): a route added here without a `#[utoipa::path]`
//! listed in the document fails that test.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get, post};

/// The methods the management API serves: GET reads, POST changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    /// The name as an OpenAPI path item spells it.
    pub fn openapi_name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
        }
    }
}

pub struct Route<S> {
    pub verb: Verb,
    pub path: &'static str,
    handler: MethodRouter<S>,
}

impl<S: Clone + Send + Sync + 'static> Route<S> {
    pub fn get<H: Handler<T, S>, T: 'static>(path: &'static str, handler: H) -> Self {
        Route { verb: Verb::Get, path, handler: get(handler) }
    }

    pub fn post<H: Handler<T, S>, T: 'static>(path: &'static str, handler: H) -> Self {
        Route { verb: Verb::Post, path, handler: post(handler) }
    }

    /// The same route with its handler wrapped (a per-route layer such as a body limit).
    pub fn map(self, wrap: impl FnOnce(MethodRouter<S>) -> MethodRouter<S>) -> Self {
        Route { handler: wrap(self.handler), ..self }
    }
}

/// A router serving exactly `routes` (two methods on one path are merged by axum).
pub fn router<S: Clone + Send + Sync + 'static>(routes: Vec<Route<S>>) -> Router<S> {
    routes.into_iter().fold(Router::new(), |router, r| router.route(r.path, r.handler))
}
