//! Virtual MFA devices as IAM has them: RFC 6238 TOTP, SHA-1, 6 digits, 30 s steps (the codes
//! every authenticator app shows), through the `totp-rs` crate. A code is accepted for the step
//! it was made in, one step before or after (clock drift), and each step at most once: the
//! caller keeps the last step used per user and accepts only later ones.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// The issuer an authenticator app shows.
pub const ISSUER: &str = "jobd";

/// A new device's secret (160 random bits, RFC 4226's recommended length).
pub fn generate_secret() -> Vec<u8> {
    match Secret::generate_secret().to_bytes() {
        Ok(bytes) => bytes,
        // A generated secret is raw bytes, which always convert.
        Err(_) => unreachable!("a generated TOTP secret is raw bytes"),
    }
}

fn totp(secret: &[u8], account: &str) -> Option<TOTP> {
    // `:` separates issuer and account in the URI's label; it cannot be part of either.
    let account = account.replace(':', "_");
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECONDS, secret.to_vec(), Some(ISSUER.to_owned()), account).ok()
}

/// The `otpauth://totp/jobd:{account}?secret=...&issuer=jobd` URI an authenticator app reads
/// (as text or a QR code). `None` for a secret shorter than RFC 4226 allows.
pub fn otpauth_uri(secret: &[u8], account: &str) -> Option<String> {
    totp(secret, account).map(|totp| totp.get_url())
}

/// The step a code was made in, if it is the code of the step of `unix_seconds` or of the one
/// before or after it (the latest such step). Every candidate is computed and compared in
/// constant time; a code that is not six digits matches nothing.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: u64) -> Option<u64> {
    let totp = totp(secret, "")?;
    let well_formed = code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit());
    let current = unix_seconds / STEP_SECONDS;
    let mut matched = None;
    for step in current.saturating_sub(1)..=current + 1 {
        let expected = totp.generate(step * STEP_SECONDS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && well_formed {
            matched = Some(step);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret, whose 8-digit codes end in these 6 digits.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_the_rfc_6238_vectors() {
        for (time, code) in [(59u64, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924")] {
            assert_eq!(matching_step(RFC_SECRET, code, time), Some(time / STEP_SECONDS), "{time}");
        }
    }

    #[test]
    fn one_step_either_way_and_no_further() {
        let secret = generate_secret();
        let at = 1_700_000_000;
        let code_of = |seconds: u64| totp(&secret, "").unwrap().generate(seconds);
        let step = at / STEP_SECONDS;
        assert_eq!(matching_step(&secret, &code_of(at), at), Some(step));
        assert_eq!(matching_step(&secret, &code_of(at - 30), at), Some(step - 1));
        assert_eq!(matching_step(&secret, &code_of(at + 30), at), Some(step + 1));
        assert_eq!(matching_step(&secret, &code_of(at - 60), at), None);
        assert_eq!(matching_step(&secret, &code_of(at + 60), at), None);
        for bad in ["", "00000", "0000000", "not-a-code", "12345a"] {
            assert_eq!(matching_step(&secret, bad, at), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_is_what_authenticator_apps_read() {
        let uri = otpauth_uri(RFC_SECRET, "alice@example").unwrap();
        assert_eq!(uri, "otpauth://totp/jobd:alice%40example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=jobd");
        assert!(otpauth_uri(b"short", "a").is_none());
        assert_eq!(generate_secret().len(), 20);
    }
}
