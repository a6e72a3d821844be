//! Every route jobd answers, declared once: its method, path, who may call it, its dialect, what
//! `/openapi.json` says of it, and its handler. Each API module lists its own (`native::ENDPOINTS`,
//! `cfw::ENDPOINTS`, ...); `ALL` gathers the lists, and everything else is derived from them:
//!
//! - the router (`router`): each endpoint's handler bound once to its method and path;
//! - the permission check (`caller::authenticate` through `lookup`): a precomputed map from the
//!   matched path to its endpoints; a path or method without a declaration is refused;
//! - the dialect of a request (`lookup` for a matched path; `Dialect::of_path` for any path, even
//!   one no route matches, through a tree of the declared paths);
//! - the OpenAPI document's operations (`openapi::build`).
//!
//! Adding a route is one row in its module's `ENDPOINTS` (ARCHITECTURE.md, "A route"):
//!
//! ```text
//! API.get("/v1/{project_id}/things", Access::Needs(Action::Read), |m| on(m, list_things))
//!     .summary("List things")
//!     .answers(&[Answer::json(200, "ThingList")]),
//! ```

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use axum::{middleware, Router};
use jobd_auth::identity::Action;

use crate::dialect::Dialect;
use crate::openapi::Parameter;
use crate::AppState;

/// Every module's endpoints.
const ALL: &[&[Endpoint]] = &[
    crate::HEALTH_ENDPOINTS,
    crate::telemetry::ENDPOINTS,
    crate::openapi::ENDPOINTS,
    crate::native::ENDPOINTS,
    crate::watch::ENDPOINTS,
    crate::console::data::ENDPOINTS,
    crate::cfw::ENDPOINTS,
    crate::waf::ENDPOINTS,
    crate::elb::ENDPOINTS,
    crate::worker::ENDPOINTS,
    crate::admin::ENDPOINTS,
    crate::iam::ENDPOINTS,
    crate::console::ENDPOINTS,
];

/// Every declared endpoint, module by module.
pub fn endpoints() -> impl Iterator<Item = &'static Endpoint> {
    ALL.iter().flat_map(|endpoints| endpoints.iter())
}

/// The methods routes answer (`HEAD` is answered as `GET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    pub const ALL: [Verb; 3] = [Verb::Get, Verb::Post, Verb::Delete];

    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }

    /// The verb a request's method is routed as; `None` for a method no route declares.
    pub fn of(method: &Method) -> Option<Verb> {
        match *method {
            Method::GET | Method::HEAD => Some(Verb::Get),
            Method::POST => Some(Verb::Post),
            Method::DELETE => Some(Verb::Delete),
            _ => None,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the health routes, the metrics, the document, the token request.
    Public,
    /// The console's page, files and session: anyone, answered with the console's security
    /// headers; a page, not an API, so not in `/openapi.json`.
    Page,
    /// Any authenticated caller (`caller::authenticate`), whatever its role.
    AnyCaller,
    /// An authenticated caller whose role has this right.
    Needs(Action),
}

impl Access {
    /// Whether `caller::authenticate` runs before the handler.
    pub fn is_authenticated(self) -> bool {
        matches!(self, Access::AnyCaller | Access::Needs(_))
    }

    /// The right an authenticated route needs (`None`: any caller, or a public route).
    pub fn action(self) -> Option<Action> {
        match self {
            Access::Needs(action) => Some(action),
            _ => None,
        }
    }
}

/// What a success answer carries, for the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Nothing declared (an empty body, or a body the document does not describe).
    Undescribed,
    /// JSON of this component schema.
    Json(&'static str),
    /// Any JSON object (the document itself).
    AnyObject,
    /// `text/plain` (the Prometheus text format).
    Text,
    /// `text/event-stream`.
    EventStream,
}

/// A success answer: status, what it carries, and how the document describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content: Content,
    pub description: &'static str,
}

impl Answer {
    /// `200` with JSON of `schema`.
    pub const fn json(status: u16, schema: &'static str) -> Answer {
        Answer { status, content: Content::Json(schema), description: "Success" }
    }

    /// `status` with nothing described.
    pub const fn plain(status: u16) -> Answer {
        Answer { status, content: Content::Undescribed, description: "Success" }
    }

    /// `204`.
    pub const NO_CONTENT: Answer = Answer { status: 204, content: Content::Undescribed, description: "No content" };

    /// The same answer with another description.
    pub const fn described(self, description: &'static str) -> Answer {
        Answer { description, ..self }
    }
}

/// An API: the dialect and the document's tag its endpoints share.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub dialect: Dialect,
    pub tag: &'static str,
}

/// How an endpoint's handler is bound: `|m| on(m, handler)`.
pub type Bind = fn(MethodFilter) -> MethodRouter<AppState>;

/// One route: everything the router, the permission check, the dialect lookup and the document
/// know of it.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub method: Verb,
    pub path: &'static str,
    pub access: Access,
    pub dialect: Dialect,
    /// The document's tag (the API it belongs to).
    pub tag: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// The component schema of the request body (required); a `POST` without one takes an
    /// optional JSON object.
    pub request: Option<&'static str>,
    /// The success answers, the first the usual one.
    pub answers: &'static [Answer],
    /// A header of the success answer: name and description.
    pub answer_header: Option<(&'static str, &'static str)>,
    /// The query and header parameters it reads (path values are read from `path`).
    pub parameters: fn() -> Vec<Parameter>,
    /// It may answer `404` (a job, user, key or project that is not there for the caller).
    pub not_found: bool,
    /// It may answer `409` (a job, task or name in a state that refuses the call).
    pub conflict: bool,
    /// It checks a password (`401` is its own answer, not the gateway's).
    pub checks_password: bool,
    /// It answers even when the store cannot (no `503`).
    pub always_answers: bool,
    bind: Bind,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.method.as_str(), self.path, self.access)
    }
}

fn no_parameters() -> Vec<Parameter> {
    Vec::new()
}

impl Api {
    pub const fn new(dialect: Dialect, tag: &'static str) -> Api {
        Api { dialect, tag }
    }

    pub const fn get(self, path: &'static str, access: Access, bind: Bind) -> Endpoint {
        self.endpoint(Verb::Get, path, access, bind)
    }

    pub const fn post(self, path: &'static str, access: Access, bind: Bind) -> Endpoint {
        self.endpoint(Verb::Post, path, access, bind)
    }

    pub const fn delete(self, path: &'static str, access: Access, bind: Bind) -> Endpoint {
        self.endpoint(Verb::Delete, path, access, bind)
    }

    const fn endpoint(self, method: Verb, path: &'static str, access: Access, bind: Bind) -> Endpoint {
        const OK: &[Answer] = &[Answer::plain(200)];
        Endpoint {
            method,
            path,
            access,
            dialect: self.dialect,
            tag: self.tag,
            summary: "",
            request: None,
            answers: OK,
            answer_header: None,
            parameters: no_parameters,
            not_found: false,
            conflict: false,
            checks_password: false,
            always_answers: false,
            bind,
        }
    }
}

/// The declaration's builder: each sets one field.
impl Endpoint {
    pub const fn summary(self, summary: &'static str) -> Self {
        Endpoint { summary, ..self }
    }

    pub const fn request(self, schema: &'static str) -> Self {
        Endpoint { request: Some(schema), ..self }
    }

    pub const fn answers(self, answers: &'static [Answer]) -> Self {
        Endpoint { answers, ..self }
    }

    pub const fn answer_header(self, name: &'static str, description: &'static str) -> Self {
        Endpoint { answer_header: Some((name, description)), ..self }
    }

    pub const fn parameters(self, parameters: fn() -> Vec<Parameter>) -> Self {
        Endpoint { parameters, ..self }
    }

    pub const fn not_found(self) -> Self {
        Endpoint { not_found: true, ..self }
    }

    pub const fn conflict(self) -> Self {
        Endpoint { conflict: true, ..self }
    }

    pub const fn checks_password(self) -> Self {
        Endpoint { checks_password: true, ..self }
    }

    pub const fn always_answers(self) -> Self {
        Endpoint { always_answers: true, ..self }
    }
}

/// The router of every endpoint: the public ones as they are, the console's pages with their
/// headers, both counted by `telemetry::record_http`; the authenticated ones behind
/// `caller::authenticate` (which counts them).
pub fn router(state: &AppState) -> Router<AppState> {
    let (mut public, mut pages, mut authenticated) = (Router::new(), Router::new(), Router::new());
    for endpoint in endpoints() {
        let route = (endpoint.bind)(endpoint.method.filter());
        match endpoint.access {
            Access::Public => public = public.route(endpoint.path, route),
            Access::Page => pages = pages.route(endpoint.path, route),
            Access::AnyCaller | Access::Needs(_) => authenticated = authenticated.route(endpoint.path, route),
        }
    }
    let pages = pages.layer(middleware::from_fn(crate::console::console_headers));
    let counted = public.merge(pages).route_layer(middleware::from_fn(crate::telemetry::record_http));
    // `authenticate` counts and times its routes itself: one layer less on the hot path.
    let authenticated =
        authenticated.route_layer(middleware::from_fn_with_state(state.clone(), crate::caller::authenticate));
    counted.merge(authenticated)
}

/// The endpoints of one path, by method.
#[derive(Debug)]
pub struct PathEndpoints {
    /// The dialect every endpoint of the path speaks.
    pub dialect: Dialect,
    by_verb: [Option<&'static Endpoint>; 3],
    /// Which `/`-separated segment of the path is `{project_id}`, if one is.
    project_segment: Option<usize>,
}

impl PathEndpoints {
    /// The project a request to this path names, still percent-encoded as sent (`None` when the
    /// path has no `{project_id}`).
    pub fn raw_project_id<'p>(&self, request_path: &'p str) -> Option<&'p str> {
        self.project_segment.and_then(|index| request_path.split('/').nth(index))
    }

    /// The endpoint answering `method` here; `None` when the path has no such method.
    pub fn endpoint(&self, method: &Method) -> Option<&'static Endpoint> {
        Verb::of(method).and_then(|verb| self.by_verb[verb.index()])
    }
}

static BY_PATH: LazyLock<HashMap<&'static str, PathEndpoints>> = LazyLock::new(|| {
    let mut by_path: HashMap<&'static str, PathEndpoints> = HashMap::new();
    for endpoint in endpoints() {
        let entry = by_path.entry(endpoint.path).or_insert(PathEndpoints {
            dialect: endpoint.dialect,
            by_verb: [None; 3],
            project_segment: endpoint.path.split('/').position(|segment| segment == "{project_id}"),
        });
        entry.by_verb[endpoint.method.index()] = Some(endpoint);
    }
    by_path
});

/// The endpoints declared at a route's path (axum's `MatchedPath`); `None` for an undeclared one.
pub fn lookup(matched_path: &str) -> Option<&'static PathEndpoints> {
    BY_PATH.get(matched_path)
}

/// A tree of the declared paths, segment by segment (`{name}` matches any segment), for the
/// dialect of any path, routed or not.
struct PathTree {
    nodes: Vec<Node>,
}

#[derive(Default)]
struct Node {
    literals: Vec<(&'static str, usize)>,
    wildcard: Option<usize>,
    /// The dialect of every endpoint at or below this node, if they share one.
    dialect: Option<Dialect>,
    /// No endpoint below yet.
    empty: bool,
}

impl PathTree {
    fn build() -> PathTree {
        let mut tree = PathTree { nodes: vec![Node { empty: true, ..Node::default() }] };
        for endpoint in endpoints() {
            let mut node = 0;
            tree.mark(node, endpoint.dialect);
            for segment in endpoint.path.trim_start_matches('/').split('/') {
                node = tree.child(node, segment);
                tree.mark(node, endpoint.dialect);
            }
        }
        tree
    }

    fn child(&mut self, node: usize, segment: &'static str) -> usize {
        let wildcard = segment.starts_with('{');
        let existing = if wildcard {
            self.nodes[node].wildcard
        } else {
            self.nodes[node].literals.iter().find(|(literal, _)| *literal == segment).map(|(_, child)| *child)
        };
        if let Some(child) = existing {
            return child;
        }
        let child = self.nodes.len();
        self.nodes.push(Node { empty: true, ..Node::default() });
        if wildcard {
            self.nodes[node].wildcard = Some(child);
        } else {
            self.nodes[node].literals.push((segment, child));
        }
        child
    }

    fn mark(&mut self, node: usize, dialect: Dialect) {
        let node = &mut self.nodes[node];
        node.dialect = if node.empty || node.dialect == Some(dialect) { Some(dialect) } else { None };
        node.empty = false;
    }

    /// The deepest node a prefix of the path reaches (then the one with more literal segments
    /// matched): `(depth, literals, node)`.
    fn deepest<'p>(&self, node: usize, mut segments: impl Iterator<Item = &'p str> + Clone) -> (usize, usize, usize) {
        let Some(segment) = segments.next() else { return (0, 0, node) };
        let mut best = (0, 0, node);
        let here = &self.nodes[node];
        if let Some((_, child)) = here.literals.iter().find(|(literal, _)| *literal == segment) {
            let (depth, literals, found) = self.deepest(*child, segments.clone());
            best = (depth + 1, literals + 1, found);
        }
        if let Some(child) = here.wildcard {
            let (depth, literals, found) = self.deepest(child, segments);
            if (depth + 1, literals) > (best.0, best.1) {
                best = (depth + 1, literals, found);
            }
        }
        best
    }

    fn dialect_of(&self, path: &str) -> Dialect {
        let (_, _, node) = self.deepest(0, path.trim_start_matches('/').split('/'));
        self.nodes[node].dialect.unwrap_or(Dialect::Native)
    }
}

static PATH_TREE: LazyLock<PathTree> = LazyLock::new(PathTree::build);

/// The dialect of any path: that of the declared routes its longest matching prefix leads to
/// (literal segments before `{name}` ones), when they share one; `Native` otherwise.
pub fn dialect_of_path(path: &str) -> Dialect {
    PATH_TREE.dialect_of(path)
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::{lookup, Access};

    #[test]
    fn the_permission_lookup_fails_closed() {
        assert!(lookup("/v1/{project_id}/things").is_none(), "an undeclared path has no endpoint");
        let jobs = lookup("/v1/{project_id}/jobs").expect("declared");
        assert!(jobs.endpoint(&Method::DELETE).is_none(), "nor an undeclared method");
        assert!(jobs.endpoint(&Method::PATCH).is_none());
        let read = jobs.endpoint(&Method::HEAD).expect("HEAD is GET's");
        assert_eq!(read.access, Access::Needs(jobd_auth::identity::Action::Read));
    }
}
