//! Gateway configuration: a TOML file (`--config`), overridden by `FOCALGATE_*` environment
//! variables, over defaults that run the demo.
//!
//! Environment variables map to keys by dropping the `FOCALGATE_` prefix, lower-casing, and
//! reading `__` as a section separator: `FOCALGATE_DATA_DIR` sets `data_dir`,
//! `FOCALGATE_TLS__CA` sets `tls.ca`, `FOCALGATE_TLS__CRL=a.pem,b.pem` sets the list `tls.crl`.
//! Unknown keys, in the file or the environment, are refused at startup. Relative paths are
//! relative to the working directory.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Environment variables of the client commands, which share the prefix but are not settings.
pub const CLIENT_VARIABLES: [&str; 4] = [
    "FOCALGATE_SERVER",
    "FOCALGATE_IDENTITY",
    "FOCALGATE_CONFIG",
    "FOCALGATE_LOG_KEY",
];

/// Another name for `FOCALGATE_STORE__URL`.
pub const STORE_URL_ALIAS: &str = "FOCALGATE_STORE_URL";

/// The demo PKI folder, relative to the working directory.
pub const DEMO_PKI: &str = "certs-example";

/// Every setting. See the README's configuration reference for each key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address of the mTLS gRPC listener.
    pub listen: SocketAddr,
    /// Where the database and the gateway key live.
    pub data_dir: PathBuf,
    /// The policy file: roles and signing certificates per member.
    pub policy: Option<PathBuf>,
    /// Logging.
    pub logging: LogSettings,
    /// The transparency log.
    pub log: TransparencyLogSettings,
    /// TLS material.
    pub tls: TlsSettings,
    /// Storage.
    pub store: StoreSettings,
    /// Per-request limits.
    pub limits: LimitSettings,
    /// Schema options.
    pub schema: SchemaSettings,
    /// Statistics options.
    pub statistics: StatisticsSettings,
    /// The partnership CA, if this gateway holds it.
    pub ca: CaSettings,
    /// Reloading configuration files.
    pub reload: ReloadSettings,
    /// The operators' listener: metrics, readiness, liveness.
    pub metrics: MetricsSettings,
    /// Asking the policy's witnesses to cosign checkpoints.
    pub witnessing: WitnessingSettings,
    /// The SDMX REST API.
    pub sdmx: SdmxSettings,
    /// Serve a store whose log does not extend the checkpoint last published in the data
    /// directory (a restored backup). Only from `serve --accept-restored-log`, never from a file.
    #[serde(skip)]
    pub accept_restored_log: bool,
}

/// `[logging]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `focalgate=debug,info`; `RUST_LOG` wins if set.
    pub level: String,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: the transparency log.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransparencyLogSettings {
    /// The log's origin: a unique name, also its key's name in checkpoints (no spaces, no
    /// `+`), e.g. `hub.example.org/focalgate`. Fixed at first start.
    pub origin: Option<String>,
    /// The gateway's Ed25519 key (PKCS#8 PEM), which signs checkpoints and receipts; default
    /// `<data_dir>/gateway.key`, generated at first start.
    pub key: Option<PathBuf>,
}

/// The origin of the demo log.
pub const DEMO_ORIGIN: &str = "focalgate.demo/log";

/// `[tls]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM bundle of the partnership CA.
    pub ca: Option<PathBuf>,
    /// CRLs of the CA (PEM or DER). At least one is required.
    pub crl: Vec<PathBuf>,
    /// The gateway's server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// The gateway's server private key (PEM).
    pub key: Option<PathBuf>,
    /// Longest TLS handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            ca: None,
            crl: Vec::new(),
            cert: None,
            key: None,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// `[store]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`; default
    /// `sqlite://<data_dir>/focalgate.db`.
    pub url: Option<String>,
    /// Most submissions committed together.
    pub max_batch: usize,
    /// PostgreSQL: most connections this gateway opens.
    pub pool_size: usize,
    /// PostgreSQL: longest statement (and wait for the log lock), in milliseconds.
    pub statement_timeout_ms: u64,
    /// PostgreSQL: longest wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl StoreSettings {
    /// The PostgreSQL connection options.
    pub fn pg_options(&self) -> crate::store::postgres::PgOptions {
        crate::store::postgres::PgOptions {
            pool_size: self.pool_size,
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
        }
    }
}

/// `[limits]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest gRPC message, in bytes.
    pub max_message_bytes: usize,
    /// Longest time one RPC may take on the server, in milliseconds.
    pub request_timeout_ms: u64,
    /// Most observations in one submission.
    pub max_observations: usize,
    /// Most TRANSIT_AREA entries in one route observation.
    pub max_transit: usize,
    /// Most characters in a COMMENT.
    pub max_comment_chars: usize,
    /// Most TCP connections open at once, TLS handshakes in progress included.
    pub max_connections: usize,
    /// Most established connections of one member.
    pub max_connections_per_member: usize,
    /// Most TLS handshakes in progress at once.
    pub max_pending_handshakes: usize,
    /// Most TLS handshakes in progress from one source address.
    pub max_pending_handshakes_per_address: usize,
    /// A connection on which nothing moved this long is closed, in milliseconds; and one
    /// with no request in flight, this long after its last request ended.
    pub idle_timeout_ms: u64,
    /// Longest from the end of a connection's TLS handshake to its first complete request
    /// head, in milliseconds, however the bytes arrive (HTTP/1.1 and HTTP/2 alike).
    pub head_timeout_ms: u64,
}

impl LimitSettings {
    /// The bounds on one submission that the schema checks.
    pub fn schema(&self) -> crate::schema::Limits {
        crate::schema::Limits {
            max_observations: self.max_observations,
            max_transit: self.max_transit,
            max_comment_chars: self.max_comment_chars,
        }
    }
}

/// `[statistics]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatisticsSettings {
    /// k: a cell computed from fewer seizures is suppressed for callers who may not see every
    /// contributing reporter's country-level figures.
    pub min_seizures: u64,
    /// m: likewise for cells computed from fewer reporters.
    pub min_reporters: u32,
    /// Most aggregate queries and downloads under way at once, over every surface (0: twice
    /// the cores, at least 4).
    pub max_queries: usize,
    /// Most of them one member has under way at once (0: a quarter of `max_queries`, at least
    /// 1).
    pub max_queries_per_member: usize,
    /// Longest a query waits for room before it is refused as busy.
    pub queue_ms: u64,
}

impl Default for StatisticsSettings {
    fn default() -> Self {
        let t = crate::statistics::Thresholds::default();
        Self {
            min_seizures: t.min_seizures,
            min_reporters: t.min_reporters,
            max_queries: 0,
            max_queries_per_member: 0,
            queue_ms: 2_000,
        }
    }
}

impl StatisticsSettings {
    /// `max_queries` and `max_queries_per_member`, their defaults resolved.
    pub fn query_slots(&self) -> (usize, usize) {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let total = match self.max_queries {
            0 => (2 * cores).max(4),
            n => n,
        };
        let per_member = match self.max_queries_per_member {
            0 => (total / 4).max(1),
            n => n.min(total),
        };
        (total, per_member)
    }

    /// The small-cell suppression thresholds.
    pub fn thresholds(&self) -> crate::statistics::Thresholds {
        crate::statistics::Thresholds {
            min_seizures: self.min_seizures,
            min_reporters: self.min_reporters,
        }
    }
}

/// `[ca]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaSettings {
    /// A CA directory (`focalgate ca init`): lets the Admin service issue and revoke. Its
    /// `crl.pem` should be one of `tls.crl`.
    pub dir: Option<PathBuf>,
}

/// `[reload]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSettings {
    /// How often the CA bundle, CRLs, policy and server certificate files are checked for
    /// changes, in milliseconds; 0: only on SIGHUP.
    pub watch_ms: u64,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        Self { watch_ms: 1_000 }
    }
}

/// `[metrics]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics`, `/readyz` and `/livez` at all.
    pub enabled: bool,
    /// Where, in plain HTTP: keep it on loopback, or behind a firewall that only lets the
    /// monitoring system in.
    pub listen: SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[sdmx]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SdmxSettings {
    /// Serve the SDMX REST API at all.
    pub enabled: bool,
    /// Where: HTTPS with the gateway's certificate and the same client certificate checks as
    /// the gRPC listener, HTTP/1.1 and HTTP/2.
    pub listen: SocketAddr,
}

impl Default for SdmxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
        }
    }
}

/// `[witnessing]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessingSettings {
    /// The identity folder (`ca.pem`, `auth.pem`, `auth.key`) the gateway presents to
    /// witnesses: a client certificate of the partnership CA. Without it, the policy's
    /// witnesses are not asked.
    pub identity: Option<PathBuf>,
    /// How often the latest checkpoint is looked at and handed to the witnesses that have not
    /// cosigned it, in milliseconds.
    pub period_ms: u64,
    /// Longest one witness may take to answer, connection included, in milliseconds.
    pub timeout_ms: u64,
    /// How long a witness that failed is left alone before it is asked again, in
    /// milliseconds.
    pub retry_ms: u64,
}

impl Default for WitnessingSettings {
    fn default() -> Self {
        Self {
            identity: None,
            period_ms: 500,
            timeout_ms: 5_000,
            retry_ms: 5_000,
        }
    }
}

/// `[schema]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaSettings {
    /// A directory of code list files replacing the built-in lists of the same id.
    pub codelists_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("focalgate-data"),
            policy: None,
            logging: LogSettings::default(),
            log: TransparencyLogSettings::default(),
            tls: TlsSettings::default(),
            store: StoreSettings::default(),
            limits: LimitSettings::default(),
            schema: SchemaSettings::default(),
            statistics: StatisticsSettings::default(),
            ca: CaSettings::default(),
            reload: ReloadSettings::default(),
            metrics: MetricsSettings::default(),
            witnessing: WitnessingSettings::default(),
            sdmx: SdmxSettings::default(),
            accept_restored_log: false,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        // PostgreSQL's options are the backend's own defaults.
        let pg = crate::store::postgres::PgOptions::default();
        Self {
            url: None,
            max_batch: 256,
            pool_size: pg.pool_size,
            statement_timeout_ms: pg.statement_timeout.as_millis() as u64,
            connect_timeout_ms: pg.connect_timeout.as_millis() as u64,
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        // The schema's bounds are the schema's own defaults.
        let schema = crate::schema::Limits::default();
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 30_000,
            max_observations: schema.max_observations,
            max_transit: schema.max_transit,
            max_comment_chars: schema.max_comment_chars,
            max_connections: 4_096,
            max_connections_per_member: 64,
            max_pending_handshakes: 256,
            max_pending_handshakes_per_address: 32,
            idle_timeout_ms: 300_000,
            head_timeout_ms: 10_000,
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `--config` nor `--demo`.
    #[error(
        "no configuration: pass --config FILE (see the README's configuration reference), or run `focalgate serve --demo` to try the gateway with the demo PKI"
    )]
    Missing,
    /// The file named by `--config` does not exist.
    #[error("configuration file {0} does not exist")]
    NoFile(String),
    /// The file or the environment could not be read or has unknown or ill-typed keys.
    #[error("configuration (file and FOCALGATE_* environment variables): {0}")]
    Invalid(String),
    /// A required key has no value.
    #[error("configuration: {key} is required (environment variable {env})")]
    Required {
        /// The key.
        key: &'static str,
        /// Its environment variable.
        env: &'static str,
    },
}

/// The TLS and policy paths, once resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// CA bundle.
    pub ca: PathBuf,
    /// CRLs.
    pub crl: Vec<PathBuf>,
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Policy file.
    pub policy: PathBuf,
    /// The transparency log's origin.
    pub origin: String,
    /// The gateway key file.
    pub log_key: PathBuf,
}

impl Settings {
    /// Loads settings from `file` (if any) and the process environment. With `demo`, the TLS
    /// and policy paths default to the demo PKI in `certs-example/`.
    pub fn load(file: Option<&Path>, demo: bool) -> Result<Self, ConfigError> {
        Self::load_with_env(file, demo, std::env::vars())
    }

    /// As [`load`](Self::load), with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        demo: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        if file.is_none() && !demo {
            return Err(ConfigError::Missing);
        }
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::NoFile(path.display().to_string()));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let mut vars: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("FOCALGATE_") && !CLIENT_VARIABLES.contains(&k.as_str()))
            .collect();
        // FOCALGATE_STORE_URL is the conventional spelling of FOCALGATE_STORE__URL.
        let store_url = vars.remove(STORE_URL_ALIAS);
        let store_url_too = vars.get("FOCALGATE_STORE__URL").cloned();
        builder = builder.add_source(
            config::Environment::with_prefix("FOCALGATE")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("tls.crl")
                .try_parsing(true)
                .source(Some(vars)),
        );
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(url) = store_url {
            if store_url_too.is_some_and(|other| other != url) {
                return Err(ConfigError::Invalid(format!(
                    "{STORE_URL_ALIAS} and FOCALGATE_STORE__URL name different stores"
                )));
            }
            settings.store.url = Some(url);
        }
        if demo {
            let pki = Path::new(DEMO_PKI);
            let tls = &mut settings.tls;
            tls.ca.get_or_insert_with(|| pki.join("ca/ca.pem"));
            if tls.crl.is_empty() {
                tls.crl.push(pki.join("ca/crl.pem"));
            }
            tls.cert
                .get_or_insert_with(|| pki.join("server/server.pem"));
            tls.key.get_or_insert_with(|| pki.join("server/server.key"));
            settings
                .policy
                .get_or_insert_with(|| pki.join("policy.toml"));
            settings.ca.dir.get_or_insert_with(|| pki.join("ca"));
            settings
                .witnessing
                .identity
                .get_or_insert_with(|| pki.join("hub"));
            settings
                .log
                .origin
                .get_or_insert_with(|| DEMO_ORIGIN.to_owned());
        }
        Ok(settings)
    }

    /// The TLS and policy paths, each required.
    pub fn resolved(&self) -> Result<Resolved, ConfigError> {
        let need =
            |v: &Option<PathBuf>, key, env| v.clone().ok_or(ConfigError::Required { key, env });
        if self.tls.crl.is_empty() {
            return Err(ConfigError::Required {
                key: "tls.crl",
                env: "FOCALGATE_TLS__CRL",
            });
        }
        Ok(Resolved {
            ca: need(&self.tls.ca, "tls.ca", "FOCALGATE_TLS__CA")?,
            crl: self.tls.crl.clone(),
            cert: need(&self.tls.cert, "tls.cert", "FOCALGATE_TLS__CERT")?,
            key: need(&self.tls.key, "tls.key", "FOCALGATE_TLS__KEY")?,
            policy: need(&self.policy, "policy", "FOCALGATE_POLICY")?,
            origin: self.log.origin.clone().ok_or(ConfigError::Required {
                key: "log.origin",
                env: "FOCALGATE_LOG__ORIGIN",
            })?,
            log_key: self
                .log
                .key
                .clone()
                .unwrap_or_else(|| self.data_dir.join("gateway.key")),
        })
    }

    /// The store URL, defaulting to a SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        self.store
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("focalgate.db").display()))
    }

    /// Longest TLS handshake.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls.handshake_timeout_ms)
    }

    /// Longest RPC.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }

    /// What peers may hold: connections, handshakes, idle time. An idle timeout no longer than
    /// the longest RPC is refused: it could cut an RPC in progress.
    pub fn connection_limits(&self) -> Result<crate::connections::ConnectionLimits, ConfigError> {
        let l = &self.limits;
        if l.idle_timeout_ms <= l.request_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "limits.idle_timeout_ms ({}) must exceed limits.request_timeout_ms ({})",
                l.idle_timeout_ms, l.request_timeout_ms
            )));
        }
        for (key, value) in [
            ("limits.max_connections", l.max_connections),
            (
                "limits.max_connections_per_member",
                l.max_connections_per_member,
            ),
            ("limits.max_pending_handshakes", l.max_pending_handshakes),
            (
                "limits.max_pending_handshakes_per_address",
                l.max_pending_handshakes_per_address,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{key} must be at least 1")));
            }
        }
        Ok(crate::connections::ConnectionLimits {
            max_connections: l.max_connections,
            max_connections_per_member: l.max_connections_per_member,
            max_pending_handshakes: l.max_pending_handshakes,
            max_pending_per_address: l.max_pending_handshakes_per_address,
            handshake_timeout: self.handshake_timeout(),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms),
            head_timeout: Duration::from_millis(l.head_timeout_ms.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn demo_defaults_and_environment_overrides() {
        let s = Settings::load_with_env(
            None,
            true,
            env(&[
                ("FOCALGATE_LISTEN", "127.0.0.1:6000"),
                ("FOCALGATE_DATA_DIR", "/tmp/x"),
                ("FOCALGATE_LIMITS__MAX_OBSERVATIONS", "50"),
                ("FOCALGATE_TLS__CRL", "a.pem,b.pem"),
                ("FOCALGATE_SERVER", "https://ignored"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.limits.max_observations, 50);
        assert_eq!(s.tls.crl, [PathBuf::from("a.pem"), PathBuf::from("b.pem")]);
        assert_eq!(
            s.resolved().unwrap().policy,
            PathBuf::from("certs-example/policy.toml")
        );
        assert_eq!(s.store_url(), "sqlite:///tmp/x/focalgate.db");
    }

    #[test]
    fn refuses_no_configuration_missing_files_and_unknown_keys() {
        assert!(matches!(
            Settings::load_with_env(None, false, env(&[])),
            Err(ConfigError::Missing)
        ));
        let missing = Settings::load_with_env(
            Some(Path::new("/nonexistent/focalgate.toml")),
            false,
            env(&[]),
        );
        assert!(matches!(missing, Err(ConfigError::NoFile(_))));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\n[tls]\nca = \"ca.pem\"\ncrt = \"typo.pem\"\n",
        )
        .unwrap();
        let err = Settings::load_with_env(Some(&file), false, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("crt"), "{err}");

        let err = Settings::load_with_env(None, true, env(&[("FOCALGATE_LISTNE", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn required_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.toml");
        std::fs::write(
            &file,
            "[tls]\nca = \"ca.pem\"\ncrl = [\"crl.pem\"]\ncert = \"s.pem\"\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&file), false, env(&[])).unwrap();
        let err = s.resolved().unwrap_err().to_string();
        assert_eq!(
            err,
            "configuration: tls.key is required (environment variable FOCALGATE_TLS__KEY)"
        );
    }
}
