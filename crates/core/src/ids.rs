//! Identifiers and names, parsed once at the edge: project ids, service names, job types, job ids.

use std::fmt;

use crate::error::ValidationError;

/// The enterprise project every job belongs to unless the producer names another.
pub const DEFAULT_ENTERPRISE_PROJECT_ID: &str = "0";

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// What [`parse_enterprise_project_id`] accepts, as a regular expression (for `/openapi.json`).
pub const ENTERPRISE_PROJECT_ID_PATTERN: &str = "^[A-Za-z0-9-]{1,64}$";

/// Checks an enterprise project id and folds it to lowercase: `0` (the default) or 1–64 letters,
/// digits and `-` (EPS ids are UUIDs). The WAF query word `all_granted_eps` is not an id.
pub fn parse_enterprise_project_id(raw: &str) -> Result<String, ValidationError> {
    let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ValidationError::field(
            "enterprise_project_id",
            format!("{raw:?} is not an enterprise project id: expected \"0\" or 1 to 64 letters, digits or '-'"),
        ))
    }
}

/// A project id: 1–64 characters of letters, digits, `-` and `_` (Huawei projects use 32 hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);
string_newtype!(ProjectId);

impl ProjectId {
    /// What [`ProjectId::parse`] accepts, as a regular expression (for `/openapi.json`).
    pub const PATTERN: &'static str = "^[A-Za-z0-9_-]{1,64}$";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok =
            (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(ProjectId(raw.to_owned()))
        } else {
            Err(ValidationError::field("project_id", "must be 1 to 64 letters, digits, '-' or '_'"))
        }
    }
}

/// The cloud service a job belongs to: `cfw`, `waf`, `elb` or any name `[a-z][a-z0-9-]{0,31}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);
string_newtype!(ServiceName);

impl ServiceName {
    pub const CFW: &'static str = "cfw";
    pub const WAF: &'static str = "waf";
    pub const ELB: &'static str = "elb";
    /// What [`ServiceName::parse`] accepts, as a regular expression (for `/openapi.json`).
    pub const PATTERN: &'static str = "^[a-z][a-z0-9-]{0,31}$";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bytes = raw.as_bytes();
        let ok = (1..=32).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes[1..].iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok {
            Ok(ServiceName(raw.to_owned()))
        } else {
            Err(ValidationError::field(
                "service",
                format!("{raw:?} is not a service name: expected [a-z][a-z0-9-]{{0,31}}"),
            ))
        }
    }

    pub fn is(&self, name: &str) -> bool {
        self.0 == name
    }

    /// The shape of the job ids this service hands out.
    pub fn job_id_format(&self) -> JobIdFormat {
        if self.is(Self::WAF) {
            JobIdFormat::Hex32
        } else {
            JobIdFormat::Uuid
        }
    }
}

/// A job type such as `UPGRADE` or `createFirewall`: 1–64 of letters, digits, `_`, `-`, `.`, `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobType(String);
string_newtype!(JobType);

impl JobType {
    /// What [`JobType::parse`] accepts, as a regular expression (for `/openapi.json`).
    pub const PATTERN: &'static str = "^[A-Za-z0-9_.:-]{1,64}$";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if ok {
            Ok(JobType(raw.to_owned()))
        } else {
            Err(ValidationError::field("job_type", "must be 1 to 64 letters, digits, '_', '-', '.' or ':'"))
        }
    }
}

/// How a service spells its job ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobIdFormat {
    /// `8-4-4-4-12` lowercase hex (CFW, ELB and every other service).
    Uuid,
    /// 32 lowercase hex characters (WAF).
    Hex32,
}

/// A job id, as handed out by jobd: a lowercase UUID, or 32 lowercase hex digits for WAF.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);
string_newtype!(JobId);

impl JobId {
    /// What [`JobId::parse`] accepts, as a regular expression (for `/openapi.json`).
    pub const PATTERN: &'static str =
        "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[0-9A-Fa-f]{32})$";

    pub fn generate(format: JobIdFormat) -> Self {
        let uuid = uuid::Uuid::new_v4();
        match format {
            JobIdFormat::Uuid => JobId(uuid.hyphenated().to_string()),
            JobIdFormat::Hex32 => JobId(uuid.simple().to_string()),
        }
    }

    /// Parses an id in either format. Uppercase hex is accepted and folded to lowercase.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::parse_as(raw, JobIdFormat::Uuid).or_else(|_| Self::parse_as(raw, JobIdFormat::Hex32)).map_err(|_| {
            ValidationError::field(
                "job_id",
                format!("{raw:?} is not a job id: expected a UUID (8-4-4-4-12 hex digits) or 32 hex digits"),
            )
        })
    }

    /// Parses an id that must have the given format.
    pub fn parse_as(raw: &str, format: JobIdFormat) -> Result<Self, ValidationError> {
        let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        let ok = match format {
            JobIdFormat::Uuid => {
                let groups: Vec<&str> = raw.split('-').collect();
                groups.len() == 5
                    && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
                    && groups.iter().all(|g| is_hex(g))
            }
            JobIdFormat::Hex32 => raw.len() == 32 && is_hex(raw),
        };
        if ok {
            Ok(JobId(raw.to_ascii_lowercase()))
        } else {
            let expected = match format {
                JobIdFormat::Uuid => "a UUID (8-4-4-4-12 hex digits)",
                JobIdFormat::Hex32 => "32 hex digits",
            };
            Err(ValidationError::field("job_id", format!("{raw:?} is not a job id: expected {expected}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_the_pattern() {
        for good in ["cfw", "waf", "elb", "a", "rds-2", "x1234567890123456789012345678901"] {
            assert!(ServiceName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "CFW", "1cfw", "-x", "cf_w", "x12345678901234567890123456789012"] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_ids_have_the_service_format() {
        let uuid = JobId::generate(JobIdFormat::Uuid);
        assert_eq!(uuid.as_str().len(), 36);
        assert!(JobId::parse_as(uuid.as_str(), JobIdFormat::Uuid).is_ok());
        let hex = JobId::generate(JobIdFormat::Hex32);
        assert_eq!(hex.as_str().len(), 32);
        assert!(hex.as_str().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(JobId::parse_as(hex.as_str(), JobIdFormat::Uuid).is_err());
    }

    /// Strings matching a whole-string pattern (`^...$`: proptest generates without the anchors).
    fn matching(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).expect("an anchored pattern");
        proptest::string::string_regex(inner).unwrap()
    }

    proptest::proptest! {
        /// The patterns `/openapi.json` declares: whatever matches one parses.
        #[test]
        fn what_the_patterns_match_parses(
            project in matching(ProjectId::PATTERN),
            service in matching(ServiceName::PATTERN),
            job_type in matching(JobType::PATTERN),
            job_id in matching(JobId::PATTERN),
            eps in matching(ENTERPRISE_PROJECT_ID_PATTERN),
        ) {
            proptest::prop_assert!(ProjectId::parse(&project).is_ok(), "{project:?}");
            proptest::prop_assert!(ServiceName::parse(&service).is_ok(), "{service:?}");
            proptest::prop_assert!(JobType::parse(&job_type).is_ok(), "{job_type:?}");
            proptest::prop_assert!(JobId::parse(&job_id).is_ok(), "{job_id:?}");
            proptest::prop_assert!(parse_enterprise_project_id(&eps).is_ok(), "{eps:?}");
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "job-1", "f588ce71-e26c-400d-8981-f854355f684", "zz88ce71-e26c-400d-8981-f854355f6849"] {
            assert!(JobId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            JobId::parse("F588CE71-E26C-400D-8981-F854355F6849").unwrap().as_str(),
            "f588ce71-e26c-400d-8981-f854355f6849"
        );
    }
}
