//! The signed transport every call goes through: the endpoint, the caller's proof (an AK/SK that
//! signs with `SDK-HMAC-SHA256` over exactly the bytes sent, or an IAM `X-Auth-Token`), and turning
//! answers into values or [`Error`]s.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, HOST, RETRY_AFTER};
use jobd_auth::Signer;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{DecodeError, Error, Result};

/// How long a call may take unless it says otherwise (a claim adds its `wait_seconds`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_ID_HEADER: &str = "x-request-id";
const AUTH_TOKEN_HEADER: &str = "x-auth-token";
/// How much of an unreadable body an error quotes.
const QUOTED_BODY_CHARS: usize = 512;

/// Everything but RFC 3986's unreserved characters is percent-encoded: the same set the signature's
/// canonical form keeps, so the path and query are signed exactly as they are sent.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// An access key and secret key. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key (AK), sent in the clear.
    pub access_key: String,
    /// The secret key (SK) that signs requests; never sent, never printed.
    pub secret_key: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials { access_key: access_key.into(), secret_key: secret_key.into() }
    }

    /// Reads `JOBD_ACCESS_KEY` and `JOBD_SECRET_KEY`; `None` unless both are set and non-empty.
    pub fn from_env() -> Option<Self> {
        let access_key = std::env::var("JOBD_ACCESS_KEY").ok().filter(|v| !v.is_empty())?;
        let secret_key = std::env::var("JOBD_SECRET_KEY").ok().filter(|v| !v.is_empty())?;
        Some(Credentials { access_key, secret_key })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key", &self.access_key).field("secret_key", &"<redacted>").finish()
    }
}

/// How a client proves who it is: an AK/SK pair that signs every request (`SDK-HMAC-SHA256`, as
/// the official SDKs sign), or an IAM token sent as `X-Auth-Token` (from `POST /v3/auth/tokens`,
/// the `X-Subject-Token` answer header). `Debug` prints neither secret.
///
/// A [`Credentials`] converts into an `Auth`, so `Client::new(endpoint, credentials)` signs.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Sign every request with this access key and secret key.
    AkSk(Credentials),
    /// Send this token as `X-Auth-Token`; nothing is signed.
    Token(String),
}

impl Auth {
    /// Signing with an access key and secret key.
    pub fn ak_sk(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Auth::AkSk(Credentials::new(access_key, secret_key))
    }

    /// An IAM token, sent as `X-Auth-Token`.
    pub fn token(token: impl Into<String>) -> Self {
        Auth::Token(token.into())
    }
}

impl From<Credentials> for Auth {
    fn from(credentials: Credentials) -> Self {
        Auth::AkSk(credentials)
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::AkSk(credentials) => f.debug_tuple("AkSk").field(credentials).finish(),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// The proof as the client holds it: a signer, or the token as a header value.
enum Proof {
    Signer(Signer),
    Token(HeaderValue),
}

/// A client for one endpoint. Cheap to clone (clones share one connection pool).
///
/// The endpoint is per client: jobd serves every API on one address, while Huawei Cloud serves
/// each service on its own (`https://elb.{region}.myhuaweicloud.com`, `https://cfw...`,
/// `https://waf...`): make one client per endpoint there.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]`, without a path.
    origin: String,
    /// The endpoint's own path (`/prefix`), without a trailing `/`; empty for most endpoints.
    base_path: String,
    /// The `Host` header as sent, which is also signed.
    host: HeaderValue,
    proof: Proof,
    /// Sent (and signed) with every call.
    default_headers: HeaderMap,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Client");
        debug.field("endpoint", &format_args!("{}{}", self.inner.origin, self.inner.base_path));
        match &self.inner.proof {
            Proof::Signer(signer) => debug.field("access_key", &signer.access_key),
            Proof::Token(_) => debug.field("token", &"<redacted>"),
        };
        debug.field("timeout", &self.inner.timeout).finish_non_exhaustive()
    }
}

/// Settings for a [`Client`] beyond the endpoint and credentials.
#[derive(Debug)]
pub struct ClientBuilder {
    endpoint: String,
    auth: Auth,
    timeout: Duration,
    http: Option<reqwest::Client>,
    headers: Vec<(String, String)>,
}

impl ClientBuilder {
    /// How long one call may take (default 30 s). A long poll adds its wait.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use this `reqwest` client (proxies, TLS roots, pools) instead of a default one. Its own
    /// timeout, if any, still applies.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// A header sent, and signed, with every call (for example a `User-Agent` of your own, which
    /// the official SDKs sign too). A call's own header of the same name wins.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn build(self) -> Result<Client> {
        let invalid =
            |reason: &str| Error::InvalidEndpoint { endpoint: self.endpoint.clone(), reason: reason.to_owned() };
        let url = Url::parse(&self.endpoint).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("an endpoint has no query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("an endpoint carries no user name or password; pass credentials instead"));
        }
        let host_name = url.host_str().ok_or_else(|| invalid("the endpoint has no host"))?;
        // `Url::port` is `None` for the scheme's default port, which is also how `Host` is sent.
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        let origin = format!("{}://{host}", url.scheme());
        let host = HeaderValue::from_str(&host).map_err(|_| invalid("the host cannot be sent in a header"))?;
        let base_path = url.path().trim_end_matches('/').to_owned();
        let mut default_headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let (name, value) = header_pair(name, value)?;
            default_headers.insert(name, value);
        }
        let proof = match self.auth {
            Auth::AkSk(credentials) => Proof::Signer(Signer::new(credentials.access_key, credentials.secret_key)),
            Auth::Token(token) => {
                let mut value = HeaderValue::from_str(&token)
                    .map_err(|_| Error::InvalidArgument("the token cannot be sent in a header".to_owned()))?;
                value.set_sensitive(true);
                Proof::Token(value)
            }
        };
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
                .user_agent(concat!("jobd-client/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(Error::Transport)?,
        };
        Ok(Client {
            inner: Arc::new(Inner { http, origin, base_path, host, proof, default_headers, timeout: self.timeout }),
        })
    }
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{name:?} is not a header name")))?;
    let header_value = HeaderValue::from_str(value)
        .map_err(|_| Error::InvalidArgument(format!("{name} cannot be sent in a header: {value:?}")))?;
    Ok((header_name, header_value))
}

impl Client {
    /// A client for `endpoint` (`http://127.0.0.1:8080`, `https://elb.cn-north-4.myhuaweicloud.com`)
    /// that signs with `auth` (a [`Credentials`]) or sends it as a token ([`Auth::Token`]).
    pub fn new(endpoint: &str, auth: impl Into<Auth>) -> Result<Client> {
        Client::builder(endpoint, auth).build()
    }

    /// A builder, to set a timeout, headers of your own, or bring a `reqwest::Client`.
    pub fn builder(endpoint: &str, auth: impl Into<Auth>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.to_owned(),
            auth: auth.into(),
            timeout: DEFAULT_TIMEOUT,
            http: None,
            headers: Vec::new(),
        }
    }

    /// The endpoint, as `scheme://host[:port][/prefix]`.
    pub fn endpoint(&self) -> String {
        format!("{}{}", self.inner.origin, self.inner.base_path)
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The calls of one project, without repeating its id.
    pub fn project(&self, project_id: impl Into<String>) -> ProjectClient {
        ProjectClient { client: self.clone(), project_id: project_id.into() }
    }

    /// The request exactly as this client would send `call` at the time `at`: the URL, every
    /// header it sets (`Host`, `X-Sdk-Date`, `Authorization` or `X-Auth-Token`...) and the body.
    /// The HTTP library adds only unsigned transport headers (`Accept`, `Content-Length`...).
    ///
    /// Useful to see what is signed, or to check the signer against known signatures:
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use jobd_client::{cfw::ListJobRequest, ApiRequest, Client, Credentials};
    ///
    /// let client = Client::new("http://127.0.0.1:8080", Credentials::new("AK", "SK")).unwrap();
    /// let call = ListJobRequest::new("job-1").to_call("0123456789abcdef0123456789abcdef").unwrap();
    /// let request = client.prepare(&call, Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()).unwrap();
    /// assert_eq!(request.headers()["x-sdk-date"], "20240102T030405Z");
    /// assert!(request.headers()["authorization"].to_str().unwrap().starts_with("SDK-HMAC-SHA256 Access=AK, "));
    /// ```
    pub fn prepare(&self, call: &Call, at: DateTime<Utc>) -> Result<http::Request<Vec<u8>>> {
        let inner = &*self.inner;
        let raw_path = format!("{}{}", inner.base_path, call.path);
        let raw_query = encode_query(&call.query);
        let body = call.body.clone().unwrap_or_default();

        let mut headers = HeaderMap::new();
        headers.insert(HOST, inner.host.clone());
        if let Some(content_type) = &call.content_type {
            headers.insert(CONTENT_TYPE, content_type.clone());
        }
        for (name, value) in &inner.default_headers {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &call.headers {
            headers.insert(name.clone(), value.clone());
        }
        match &inner.proof {
            Proof::Signer(signer) => signer
                .sign(call.method.as_str(), &raw_path, raw_query.as_deref(), &mut headers, &body, at)
                .map_err(Error::Signing)?,
            Proof::Token(token) => {
                headers.insert(AUTH_TOKEN_HEADER, token.clone());
            }
        }

        let url = match &raw_query {
            Some(query) => format!("{}{raw_path}?{query}", inner.origin),
            None => format!("{}{raw_path}", inner.origin),
        };
        let parsed = Url::parse(&url).map_err(|e| Error::InvalidArgument(format!("cannot form the URL {url}: {e}")))?;
        debug_assert_eq!(parsed.path(), raw_path, "the URL keeps the signed path");
        let mut request = http::Request::new(body);
        *request.method_mut() = call.method.clone();
        *request.uri_mut() =
            url.parse().map_err(|e| Error::InvalidArgument(format!("cannot form the URI {url}: {e}")))?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Signs and sends `call`, returning the response once its headers arrive. Non-2xx answers
    /// become [`Error::Api`]. `total_timeout` bounds the whole exchange, body included.
    async fn execute(&self, call: &Call, total_timeout: Option<Duration>) -> Result<reqwest::Response> {
        let prepared = self.prepare(call, Utc::now())?;
        let mut request = reqwest::Request::try_from(prepared).map_err(Error::Transport)?;
        *request.timeout_mut() = total_timeout;
        tracing::debug!(method = %call.method, path = %call.path, "jobd call");
        let response = self.inner.http.execute(request).await.map_err(Error::Transport)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let request_id = request_id_of(&headers);
        let body = response.bytes().await.map_err(Error::Transport)?.to_vec();
        tracing::debug!(status, request_id = request_id.as_deref().unwrap_or(""), "jobd error answer");
        Err(Answer { status, headers, request_id, body }.into_api_error())
    }

    /// Signs and sends one call and reads the whole answer. Non-2xx answers become [`Error::Api`].
    pub(crate) async fn send(&self, call: Call) -> Result<Answer> {
        let timeout = self.inner.timeout + call.extra_timeout;
        let response = self.execute(&call, Some(timeout)).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let request_id = request_id_of(&headers);
        let body = response.bytes().await.map_err(Error::Transport)?.to_vec();
        tracing::debug!(status, request_id = request_id.as_deref().unwrap_or(""), "jobd answer");
        Ok(Answer { status, headers, request_id, body })
    }

    /// Signs and sends a call whose answer is a stream: no total timeout (the caller bounds each
    /// read), only the connect timeout and the per-call timeout for the answer's headers.
    pub(crate) async fn open_stream(&self, call: Call) -> Result<reqwest::Response> {
        match tokio::time::timeout(self.inner.timeout, self.execute(&call, None)).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::Stream(format!("no answer to {} within {:?}", call.path, self.inner.timeout))),
        }
    }

    /// Sends a typed request of any of the APIs (the dialects' models implement [`ApiRequest`]).
    pub async fn call<R: ApiRequest>(&self, project_id: &str, request: &R) -> Result<R::Response> {
        self.send(request.to_call(project_id)?).await?.json()
    }
}

fn request_id_of(headers: &HeaderMap) -> Option<String> {
    headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A typed request: one operation of an API as a model (`cfw::ListJobRequest`,
/// `elb::ListJobsRequest`...), which knows its HTTP form and its answer's type.
pub trait ApiRequest {
    /// The answer's model.
    type Response: DeserializeOwned;

    /// The request's HTTP form for a project, before signing (see [`Client::prepare`]).
    fn to_call(&self, project_id: &str) -> Result<Call>;
}

/// A [`Client`] bound to one project id.
#[derive(Debug, Clone)]
pub struct ProjectClient {
    pub(crate) client: Client,
    pub(crate) project_id: String,
}

impl ProjectClient {
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// One HTTP request before it is signed: method, path (percent-encoded segment by segment), query
/// pairs (encoded when sent), headers and body. [`ApiRequest::to_call`] makes one from a typed
/// request; [`Call::new`] makes any other, for an operation this crate has no model of.
#[derive(Debug, Clone)]
pub struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) content_type: Option<HeaderValue>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) extra_timeout: Duration,
}

impl Call {
    /// A request for the path made of `segments`, each percent-encoded (so an id can never add a
    /// segment or a query); `.` and `..` are refused.
    pub fn new(method: Method, segments: &[&str]) -> Result<Self> {
        Ok(Call::with_path(method, path(segments)?))
    }

    /// A request for an already-encoded path.
    pub(crate) fn with_path(method: Method, path: String) -> Self {
        Call {
            method,
            path,
            query: Vec::new(),
            body: None,
            content_type: None,
            headers: Vec::new(),
            extra_timeout: Duration::ZERO,
        }
    }

    pub(crate) fn get(path: String) -> Self {
        Call::with_path(Method::GET, path)
    }

    pub(crate) fn post(path: String) -> Self {
        Call::with_path(Method::POST, path)
    }

    /// The body, serialised once: these bytes are both signed and sent, as `application/json`.
    pub fn json(self, body: &impl Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::InvalidArgument(format!("the request body cannot be serialised: {e}")))?;
        Ok(self.body(bytes, "application/json"))
    }

    /// A body of these exact bytes, with its content type.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>, content_type: &'static str) -> Self {
        self.body = Some(bytes.into());
        self.content_type = Some(HeaderValue::from_static(content_type));
        self
    }

    /// The `Content-Type` header without a body (the official SDKs send `application/json` on
    /// every request, and sign it).
    pub fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = Some(HeaderValue::from_static(content_type));
        self
    }

    /// One query pair; pairs are sent in the order given.
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    /// Sorts the query pairs by name, then value, as the official SDKs send them.
    pub fn sort_query(mut self) -> Self {
        self.query.sort();
        self
    }

    /// A header, sent and signed (replacing one of the same name).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let (name, value) = header_pair(name, value)?;
        self.headers.retain(|(existing, _)| *existing != name);
        self.headers.push((name, value));
        Ok(self)
    }

    /// More time for the answer than the client's timeout (a long poll adds its wait).
    pub fn extra_timeout(mut self, extra: Duration) -> Self {
        self.extra_timeout = extra;
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path as sent (without the endpoint's own prefix).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A received answer with a 2xx status.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub request_id: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as `T`; a body that does not fit is an [`Error::Decode`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Decode(DecodeError {
                status: self.status,
                request_id: self.request_id.clone(),
                detail: format!("{e}; the body begins {}", quote_body(&self.body)),
            })
        })
    }

    /// An error answer as [`Error::Api`], reading the Huawei error body shapes: `{"error_code",
    /// "error_msg"}` (jobd, CFW, WAF, ELB) and `{"error": {"code", "message"}}` (IAM and others).
    fn into_api_error(self) -> Error {
        let value: Option<Value> = serde_json::from_slice(&self.body).ok();
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let (mut error_code, mut error_msg, mut body_request_id) = (None, None, None);
        if let Some(value) = &value {
            error_code = text(value.get("error_code")).or_else(|| text(value.pointer("/error/code")));
            error_msg = text(value.get("error_msg")).or_else(|| text(value.pointer("/error/message")));
            body_request_id = text(value.get("request_id"));
        }
        let retry_after = self
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Error::Api {
            status: self.status,
            error_code: error_code.unwrap_or_default(),
            error_msg: error_msg.unwrap_or_else(|| {
                if self.body.is_empty() {
                    http::StatusCode::from_u16(self.status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("no error body")
                        .to_owned()
                } else {
                    quote_body(&self.body)
                }
            }),
            request_id: self.request_id.or(body_request_id),
            retry_after,
        }
    }
}

fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
    if text.chars().count() > QUOTED_BODY_CHARS {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

/// A path from segments, each percent-encoded, so an id can never add a segment or a query.
/// `.` and `..` are refused: URL parsers would fold them away, and the signed path would differ.
pub(crate) fn path(segments: &[&str]) -> Result<String> {
    let mut path = String::new();
    for segment in segments {
        if matches!(*segment, "." | ".." | "") {
            return Err(Error::InvalidArgument(format!("{segment:?} cannot be a path segment")));
        }
        path.push('/');
        path.extend(utf8_percent_encode(segment, COMPONENT));
    }
    Ok(path)
}

/// `k=v&...` in the given order, every key and value percent-encoded (a space is `%20`, a `+` is
/// `%2B`, as the signature's canonical query expects). `None` when there is nothing to send.
fn encode_query(pairs: &[(String, String)]) -> Option<String> {
    if pairs.is_empty() {
        return None;
    }
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, COMPONENT), utf8_percent_encode(v, COMPONENT)))
        .collect();
    Some(encoded.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_and_dots_refused() {
        assert_eq!(path(&["v1", "p 1", "jobs", "a/b?c#d%"]).unwrap(), "/v1/p%201/jobs/a%2Fb%3Fc%23d%25");
        assert_eq!(path(&["v1", "ü-_.~"]).unwrap(), "/v1/%C3%BC-_.~");
        assert!(path(&["v1", ".."]).is_err());
        assert!(path(&["v1", ""]).is_err());
    }

    #[test]
    fn queries_encode_plus_and_space() {
        let pairs = vec![("status".to_owned(), "A B+C".to_owned()), ("job_type".to_owned(), "x&y=z".to_owned())];
        assert_eq!(encode_query(&pairs).unwrap(), "status=A%20B%2BC&job_type=x%26y%3Dz");
        assert_eq!(encode_query(&[]), None);
    }

    #[test]
    fn endpoints_keep_port_and_prefix() {
        let creds = Credentials::new("AK", "SK");
        let client = Client::new("http://127.0.0.1:8080/", creds.clone()).unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:8080");
        assert_eq!(client.inner.host, "127.0.0.1:8080");
        let client = Client::new("https://jobd.example.com:443/gw/", creds.clone()).unwrap();
        assert_eq!(client.endpoint(), "https://jobd.example.com/gw");
        assert_eq!(client.inner.host, "jobd.example.com");
        let client = Client::new("http://[::1]:9000", creds.clone()).unwrap();
        assert_eq!(client.inner.host, "[::1]:9000");
        assert!(matches!(Client::new("ftp://x", creds.clone()), Err(Error::InvalidEndpoint { .. })));
        assert!(matches!(Client::new("not a url", creds.clone()), Err(Error::InvalidEndpoint { .. })));
        assert!(matches!(Client::new("http://h/?q=1", creds), Err(Error::InvalidEndpoint { .. })));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let creds = Credentials::new("AK_VISIBLE", "SK_HIDDEN");
        assert!(!format!("{creds:?}").contains("SK_HIDDEN"));
        let client = Client::new("http://127.0.0.1:1", creds).unwrap();
        let printed = format!("{client:?}");
        assert!(printed.contains("AK_VISIBLE") && !printed.contains("SK_HIDDEN"), "{printed}");
    }

    #[test]
    fn error_bodies_of_every_shape_are_read() {
        let answer = |status: u16, body: &str, request_id: Option<&str>| Answer {
            status,
            headers: HeaderMap::new(),
            request_id: request_id.map(str::to_owned),
            body: body.as_bytes().to_vec(),
        };
        let error = answer(404, r#"{"error_code":"JOBD.JOB_NOT_FOUND","error_msg":"gone","request_id":"b"}"#, None)
            .into_api_error();
        assert!(matches!(&error, Error::Api { status: 404, error_code, request_id: Some(id), .. }
            if error_code == "JOBD.JOB_NOT_FOUND" && id == "b"));
        let error = answer(403, r#"{"error":{"code":"IAM.0001","message":"no"}}"#, Some("h")).into_api_error();
        assert_eq!(error.error_code(), Some("IAM.0001"));
        assert_eq!(error.request_id(), Some("h"), "the header wins");
        let error = answer(502, "<html>bad gateway</html>", None).into_api_error();
        assert!(matches!(&error, Error::Api { error_code, error_msg, .. }
            if error_code.is_empty() && error_msg.contains("bad gateway")));
        assert!(error.is_retryable());
        let error = answer(503, "", None).into_api_error();
        assert!(matches!(&error, Error::Api { error_msg, .. } if error_msg == "Service Unavailable"));
    }
}
