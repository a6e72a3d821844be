//! The IAM token request body (`POST /v3/auth/tokens`): any bytes are read without panicking, and
//! what is read as a password request has every part it needs.
#![no_main]

use jobd_auth::token_request::parse_token_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = parse_token_request(data) {
        // The parser's promise: a domain name and a scope, always (a body lacking them is a 400).
        let _ = (&request.domain, &request.user_name, &request.password, &request.scope);
    }
});
