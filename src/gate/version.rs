//! etcd versions as the gate compares them: `major.minor[.patch]`, compared on major.minor the
//! way etcd compares cluster and storage versions (`version.Cluster`, `schema.trimToMinor`).

use std::fmt;

/// Newest minor release whose rules the gate knows (etcd v3.7.x).
pub const NEWEST_KNOWN: Version = Version::new(3, 7);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    /// As given (a target `3.5.26`), or as recorded (`/0/version` holds `3.4.0`).
    pub patch: Option<u64>,
}

impl Version {
    pub const fn new(major: u64, minor: u64) -> Version {
        Version {
            major,
            minor,
            patch: None,
        }
    }

    /// `3.6`, `v3.6`, `3.6.1`, `3.6.0-rc.1` (pre-release and build suffixes are ignored).
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let number = |p: Option<&str>| -> Option<u64> {
            let p = p?;
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = match parts.next() {
            None => None,
            Some(p) => Some(number(Some(p))?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// Major and minor only: what etcd's cluster version and storage schema compare.
    pub fn minor_key(self) -> (u64, u64) {
        (self.major, self.minor)
    }

    pub fn trim(self) -> Version {
        Version::new(self.major, self.minor)
    }

    /// `self` is an older minor release than `other`.
    pub fn minor_lt(self, other: Version) -> bool {
        self.minor_key() < other.minor_key()
    }

    pub fn at_least(self, major: u64, minor: u64) -> bool {
        self.minor_key() >= (major, minor)
    }

    /// The later of two versions by major.minor (the first on a tie).
    pub fn max_minor(a: Option<Version>, b: Option<Version>) -> Option<Version> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.minor_lt(a) || a.minor_key() == b.minor_key() {
                a
            } else {
                b
            }),
            (a, None) => a,
            (None, b) => b,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{}", self.major, self.minor, p),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_etcd_and_users_write() {
        assert_eq!(Version::parse("3.6"), Some(Version::new(3, 6)));
        assert_eq!(
            Version::parse("v3.5.26"),
            Some(Version {
                major: 3,
                minor: 5,
                patch: Some(26)
            })
        );
        assert_eq!(Version::parse("3.6.0-rc.1").map(|v| v.patch), Some(Some(0)));
        for bad in ["", "3", "three.six", "3.6.x", "3..6", "3.6.1.2", "-3.6"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn compares_on_major_minor() {
        let a = Version::parse("3.4.0").unwrap();
        let b = Version::parse("3.4.23").unwrap();
        assert!(!a.minor_lt(b) && !b.minor_lt(a));
        assert!(a.minor_lt(Version::new(3, 5)));
        assert!(Version::new(3, 6).at_least(3, 6));
        assert_eq!(
            Version::max_minor(Some(a), Some(Version::new(3, 1))),
            Some(a)
        );
        assert_eq!(a.to_string(), "3.4.0");
        assert_eq!(a.trim().to_string(), "3.4");
    }
}
