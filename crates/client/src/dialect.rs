//! What the three Huawei Cloud dialects' calls share: the headers the official SDKs send, and
//! jobd's optional `X-Jobd-Wait`.

use std::time::Duration;

use http::Method;

use crate::client::Call;
use crate::error::Result;

/// jobd's extension header: hold a dialect GET up to N seconds until the job is terminal.
pub(crate) const JOBD_WAIT_HEADER: &str = "x-jobd-wait";
/// The longest `X-Jobd-Wait` jobd accepts.
pub const MAX_JOBD_WAIT_SECONDS: u32 = 60;

/// A dialect GET as the official SDKs send it: `Content-Type: application/json` and
/// `X-Project-Id` (both signed), the query sorted by name then value, and `X-Jobd-Wait` only when
/// the caller asked for it.
pub(crate) fn dialect_get(segments: &[&str], project_id: &str, wait_seconds: Option<u32>) -> Result<Call> {
    let mut call =
        Call::new(Method::GET, segments)?.content_type("application/json").header("x-project-id", project_id)?;
    if let Some(seconds) = wait_seconds {
        call = call.header(JOBD_WAIT_HEADER, &seconds.to_string())?.extra_timeout(Duration::from_secs(seconds.into()));
    }
    Ok(call)
}
