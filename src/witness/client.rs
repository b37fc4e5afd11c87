//! The hub's side of C2SP tlog-witness: asking the policy's witnesses, in parallel and each
//! within a bounded time, to cosign a checkpoint, retrying once from the size a witness
//! reports when it holds another than the hub thought, and keeping only cosignatures that
//! verify with the witness's key.

use std::{collections::HashMap, sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::net::TcpStream;

use super::SIZE_CONTENT_TYPE;
use crate::{
    checkpoint::{self, NoteVerifier, policy::PolicyWitness},
    merkle::Hash,
};

/// Most bytes read of a witness's answer.
const MAX_ANSWER: usize = 4 * 1024;

/// What a witness answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Its cosignature line, verified.
    Cosigned(String),
    /// It holds another size: ask again from it.
    Stale(u64),
    /// It refused (or failed), with the status and what it said.
    Refused(u16, String),
}

/// An open HTTP/1.1 connection to a witness: where its requests are sent.
type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A client for witnesses, with the hub's client identity. It keeps one connection per
/// witness, opened when first needed and again when the witness closed it: a round costs a
/// witness a request, not a TLS handshake.
#[derive(Clone)]
pub struct WitnessClient {
    tls: Arc<ClientConfig>,
    timeout: Duration,
    /// The idle connection to each witness, by URL (at most one: rounds ask a witness one
    /// request at a time).
    idle: Arc<std::sync::Mutex<HashMap<String, Connection>>>,
}

impl WitnessClient {
    /// A client presenting `tls`'s identity (its ALPN is set to `http/1.1`), giving each
    /// request at most `timeout`, connection included.
    pub fn new(mut tls: ClientConfig, timeout: Duration) -> Self {
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            tls: Arc::new(tls),
            timeout,
            idle: Arc::default(),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Posts one `add-checkpoint` request to the witness at `url` (`https://host:port`, with
    /// or without a path prefix), and checks a cosignature it returns against `key`.
    pub async fn add_checkpoint(
        &self,
        url: &str,
        key: &NoteVerifier,
        old: u64,
        proof: &[Hash],
        note: &str,
    ) -> Result<Answer, String> {
        let mut body = format!("old {old}\n");
        for h in proof {
            body.push_str(&STANDARD.encode(h.as_bytes()));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let (status, content_type, text) = tokio::time::timeout(self.timeout, self.post(url, body))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))??;
        match status {
            StatusCode::OK => {
                let line = text.trim_end().to_owned();
                let cosigned = format!("{}\n{line}\n", note.trim_end());
                let opened = checkpoint::note::open(cosigned.as_bytes(), std::slice::from_ref(key))
                    .map_err(|e| format!("its cosignature does not verify: {e}"))?;
                if opened.verified().is_empty() {
                    return Err("it answered without a cosignature by its key".into());
                }
                Ok(Answer::Cosigned(line))
            }
            StatusCode::CONFLICT if content_type.starts_with(SIZE_CONTENT_TYPE) => text
                .trim()
                .parse()
                .map(Answer::Stale)
                .map_err(|_| format!("409 with a size that is not one: {}", text.trim())),
            other => Ok(Answer::Refused(other.as_u16(), text.trim().to_owned())),
        }
    }

    /// Posts `body` on the witness's open connection, or on a new one when there is none or
    /// the witness closed it before reading the request (add-checkpoint may be asked again:
    /// a witness that took the first answers the second from the size it then holds).
    async fn post(&self, url: &str, body: String) -> Result<(StatusCode, String, String), String> {
        let reused = self.idle().remove(url);
        if let Some(mut connection) = reused
            && connection.ready().await.is_ok()
        {
            match self.exchange(url, &mut connection, body.clone()).await {
                Ok(answer) => {
                    self.idle().insert(url.to_owned(), connection);
                    return Ok(answer);
                }
                Err(e) if !e.1 => return Err(e.0),
                Err(_) => {} // closed under it: once more, on a new connection
            }
        }
        let mut connection = self.connect(url).await?;
        let answer = self
            .exchange(url, &mut connection, body)
            .await
            .map_err(|e| e.0)?;
        self.idle().insert(url.to_owned(), connection);
        Ok(answer)
    }

    /// Sends one request on `connection`: the answer, or why not and whether the request may
    /// not have reached the witness (the connection was closed before it was written).
    async fn exchange(
        &self,
        url: &str,
        connection: &mut Connection,
        body: String,
    ) -> Result<(StatusCode, String, String), (String, bool)> {
        let (authority, prefix) = split(url).map_err(|e| (e, false))?;
        let path = match prefix.trim_end_matches('/') {
            "" => "/add-checkpoint".to_owned(),
            p => format!("/{p}/add-checkpoint"),
        };
        let request = Request::post(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| (e.to_string(), false))?;
        let response = connection
            .send_request(request)
            .await
            .map_err(|e| (format!("{url}: {e}"), e.is_canceled() || e.is_closed()))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| (format!("{url}: answer: {e}"), false))?
            .to_bytes();
        Ok((
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }

    /// A new connection to the witness at `url`; its driver runs until either side closes it.
    async fn connect(&self, url: &str) -> Result<Connection, String> {
        let (authority, _) = split(url)?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{url}: bad port"))?),
            None => (authority, 443),
        };
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{url}: {e}"))?;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{url}: TLS: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// The authority (`host:port`) and path prefix of a witness URL.
fn split(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: a witness URL starts with https://"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// How one witness's round went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It cosigned: its cosignature line.
    Cosigned(String),
    /// It answered with a refusal: the status and what it said (or it stayed stale).
    Refused(String),
    /// It could not be asked, or its answer was unusable: why.
    Failed(String),
}

impl Outcome {
    /// `cosigned`, `refused` or `failed`: the metrics' label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Cosigned(_) => "cosigned",
            Self::Refused(_) => "refused",
            Self::Failed(_) => "failed",
        }
    }

    /// What went wrong, if anything.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Cosigned(_) => None,
            Self::Refused(why) | Self::Failed(why) => Some(why),
        }
    }
}

/// One witness's part of a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// How it went.
    pub outcome: Outcome,
    /// The size the witness holds afterwards, as far as the hub knows.
    pub size: u64,
    /// How long it took, a retry included.
    pub took: Duration,
}

/// Asks every witness in parallel to cosign `note` (the checkpoint of `size`), from the size
/// each is believed to hold (`held`, 0 when unknown), retrying once from the size a witness
/// reports. `proof(from)` gives the consistency proof from `from` to `size`. Returns each
/// witness's round, by policy name.
pub async fn collect<F, Fut>(
    client: &WitnessClient,
    witnesses: &[PolicyWitness],
    held: &HashMap<String, u64>,
    size: u64,
    note: &str,
    proof: F,
) -> HashMap<String, Round>
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<Hash>, String>> + Send,
{
    let note: Arc<str> = note.into();
    let mut rounds = tokio::task::JoinSet::new();
    for w in witnesses {
        let (client, proof, note, w) = (client.clone(), proof.clone(), note.clone(), w.clone());
        let start = held.get(&w.name).copied().unwrap_or(0);
        rounds.spawn(async move {
            let began = std::time::Instant::now();
            let (outcome, size) = ask(&client, &w, start, size, &note, &proof).await;
            let took = began.elapsed();
            (
                w.name,
                Round {
                    outcome,
                    size,
                    took,
                },
            )
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = rounds.join_next().await {
        if let Ok((name, round)) = done {
            out.insert(name, round);
        }
    }
    out
}

async fn ask<F, Fut>(
    client: &WitnessClient,
    w: &PolicyWitness,
    start: u64,
    size: u64,
    note: &str,
    proof: &F,
) -> (Outcome, u64)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Hash>, String>>,
{
    let Some(url) = w.url.as_deref() else {
        return (Outcome::Failed("the policy gives it no URL".into()), start);
    };
    let mut old = start;
    for _ in 0..2 {
        if old > size {
            return (
                Outcome::Failed(format!(
                    "it holds size {old}, beyond the log's {size}: a rollback, or another log"
                )),
                old,
            );
        }
        let hashes = if old == 0 || old == size {
            Ok(Vec::new())
        } else {
            proof(old).await
        };
        let hashes = match hashes {
            Ok(h) => h,
            Err(e) => return (Outcome::Failed(e), old),
        };
        match client.add_checkpoint(url, &w.key, old, &hashes, note).await {
            Ok(Answer::Cosigned(line)) => return (Outcome::Cosigned(line), size),
            Ok(Answer::Stale(n)) => old = n,
            Ok(Answer::Refused(status, why)) => {
                return (Outcome::Refused(format!("{status}: {why}")), old);
            }
            Err(e) => return (Outcome::Failed(e), old),
        }
    }
    (
        Outcome::Refused(format!("still stale after a retry from size {old}")),
        old,
    )
}
