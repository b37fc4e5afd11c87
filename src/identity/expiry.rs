//! Certificates in use and when they expire: the CA, its CRLs, the gateway's server
//! certificate, members' signing certificates, and the authentication certificates seen on
//! requests. Anything within [`WARN_DAYS`] of its end is logged as a warning.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::Directory;

/// Days before the end of validity from which a warning is logged.
pub const WARN_DAYS: i64 = 30;

/// One certificate (or CRL) in use and its end of validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiring {
    /// What it is: `ca`, `crl`, `server`, `member signing`, `member authentication`.
    pub kind: &'static str,
    /// Whose: the member id, or the certificate's subject CN.
    pub subject: String,
    /// Serial number (lowercase hex), or the CRL's issuer for CRLs.
    pub serial: String,
    /// End of validity (a CRL's nextUpdate), Unix seconds.
    pub not_after: i64,
}

impl Expiring {
    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// Logs a warning if a certificate ends within [`WARN_DAYS`] of `now` (Unix seconds).
pub fn warn_if_expiring(kind: &str, subject: &str, serial: &str, not_after: i64, now: i64) {
    let days_left = (not_after - now).div_euclid(86_400);
    if days_left < 0 {
        tracing::error!(target: "focalgate::expiry", kind, subject, serial, days_left, "certificate has expired");
    } else if days_left <= WARN_DAYS {
        tracing::warn!(target: "focalgate::expiry", kind, subject, serial, days_left, "certificate expires soon");
    }
}

/// Everything in use that can expire: the CA certificates and CRLs in force, the server
/// certificate (its leaf, DER), every signing certificate, and the authentication
/// certificates seen since start.
pub fn in_use(directory: &Directory, server_leaf: Option<&[u8]>) -> Vec<Expiring> {
    let mut out = Vec::new();
    let mut cert = |kind, der: &[u8], subject: Option<String>| {
        if let Ok((_, c)) = X509Certificate::from_der(der) {
            let cn = c
                .subject()
                .iter_common_name()
                .next()
                .and_then(|n| n.as_str().ok())
                .unwrap_or_default()
                .to_owned();
            out.push(Expiring {
                kind,
                subject: subject.unwrap_or(cn),
                serial: c.raw_serial_as_string().replace(':', ""),
                not_after: c.validity().not_after.timestamp(),
            });
        }
    };
    for ca in directory.trust.ca_certs() {
        cert("ca", ca.as_ref(), None);
    }
    if let Some(leaf) = server_leaf {
        cert("server", leaf, None);
    }
    // Revoked signing certificates are no longer in use.
    for s in directory.signing_certs().into_iter().filter(|s| {
        !directory.trust.revoked_serials().contains_key(&s.serial)
            && !directory.registry().is_revoked(&s.serial)
    }) {
        cert("member signing", &s.der, Some(s.member.to_string()));
    }
    for crl in directory.trust.crls() {
        if let Ok((_, c)) = x509_parser::parse_x509_crl(crl.as_ref())
            && let Some(next) = c.next_update()
        {
            out.push(Expiring {
                kind: "crl",
                subject: c.issuer().to_string(),
                serial: c
                    .crl_number()
                    .map(|n| n.to_str_radix(16))
                    .unwrap_or_default(),
                not_after: next.timestamp(),
            });
        }
    }
    out.extend(
        directory
            .registry()
            .seen_auth()
            .into_iter()
            .map(|s| Expiring {
                kind: "member authentication",
                subject: s.member.to_string(),
                serial: s.serial,
                not_after: s.not_after,
            }),
    );
    out.sort_by(|a, b| (a.not_after, &a.serial).cmp(&(b.not_after, &b.serial)));
    out
}

/// Logs a warning for everything in use within [`WARN_DAYS`] of its end. An expired signing
/// certificate of a member that holds a valid one is no fault: it stays in the policy so that
/// the submissions it signed can still be re-verified, and is only noted.
pub fn warn_all(items: &[Expiring], now: i64) {
    const SIGNING: &str = "member signing";
    for e in items {
        let superseded = e.kind == SIGNING
            && e.not_after < now
            && items
                .iter()
                .any(|o| o.kind == SIGNING && o.subject == e.subject && o.not_after >= now);
        if superseded {
            tracing::info!(
                target: "focalgate::expiry",
                kind = e.kind,
                subject = %e.subject,
                serial = %e.serial,
                days_left = e.days_left(now),
                "expired signing certificate kept to re-verify what it signed; the member signs with a valid one"
            );
        } else {
            warn_if_expiring(e.kind, &e.subject, &e.serial, e.not_after, now);
        }
    }
}
