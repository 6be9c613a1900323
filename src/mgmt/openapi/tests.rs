//! The document against the route tables, and its structure as OpenAPI 3.x.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ApiDoc;
use crate::mgmt::routes::Verb;
use crate::mgmt::{api, hygiene};
use utoipa::OpenApi;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap()
}

/// (method, path) of every operation the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|k| METHODS.contains(&k.as_str())) {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

/// (method, path) of every route the routers serve.
fn served() -> BTreeSet<(String, String)> {
    let mut routes: Vec<(Verb, &str)> = api::guarded_routes().iter().map(|r| (r.verb, r.path)).collect();
    routes.extend(api::injection_routes().iter().map(|r| (r.verb, r.path)));
    routes.extend(hygiene::routes().iter().map(|r| (r.verb, r.path)));
    routes.into_iter().map(|(v, p)| (v.openapi_name().to_string(), p.to_string())).collect()
}

#[test]
fn every_route_served_is_described_and_nothing_else() {
    let served = served();
    let described = operations(&document());
    let undescribed: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(undescribed.is_empty(), "routes without a #[utoipa::path] listed in ApiDoc: {undescribed:?}");
    assert!(unserved.is_empty(), "described but not served: {unserved:?}");
    assert!(served.len() >= 30, "the route tables look empty: {served:?}");
}

/// The route tables are the only way in: a `.route(...)` elsewhere would serve a path the
/// comparison above cannot see.
#[test]
fn routers_are_built_only_from_the_route_tables() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mgmt");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("routes.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for needle in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(!text.contains(needle), "{} adds routes with {needle}: use a Route in its table", path.display());
        }
        checked += 1;
    }
    assert!(checked > 10, "read only {checked} files of {}", dir.display());
}

#[test]
fn document_is_openapi_3_with_the_key_scheme_and_responses_everywhere() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "Ember management API");
    assert!(doc["info"]["version"].is_string());
    let key = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(
        (key["type"].as_str(), key["in"].as_str(), key["name"].as_str()),
        (Some("apiKey"), Some("header"), Some("X-API-Key"))
    );

    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let responses = op["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{method} {path} has no response");
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{method} {path}: {status}"
            );
            assert!(response["description"].is_string(), "{method} {path} {status} has no description");
        }
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path} has no summary");
        assert!(op["tags"].as_array().is_some_and(|t| t.len() == 1), "{method} {path} has no tag");
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        assert!(ids.insert(id.clone()), "operationId {id:?} of {method} {path} is not unique");
        // Everything but the unsubscribe link takes the API key.
        let security = op["security"].as_array().unwrap_or_else(|| panic!("{method} {path} has no security"));
        let takes_key = security.iter().any(|s| s.get("api_key").is_some());
        assert_eq!(takes_key, !path.starts_with("/unsubscribe/"), "{method} {path}: {security:?}");
        for param in op["parameters"].as_array().into_iter().flatten() {
            assert!(["query", "path", "header"].contains(&param["in"].as_str().unwrap()), "{method} {path}: {param}");
        }
    }
    assert_refs_resolve(&doc, &doc);
}

/// Every `$ref` points at a component that exists.
fn assert_refs_resolve(doc: &Value, at: &Value) {
    match at {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
                assert!(doc.pointer(pointer).is_some(), "$ref {r} resolves to nothing");
            }
            map.values().for_each(|v| assert_refs_resolve(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(doc, v)),
        _ => {}
    }
}

#[test]
fn served_document_is_the_derived_one() {
    let served: Value = serde_json::from_str(&super::DOCUMENT).unwrap();
    assert_eq!(served, document());
}
