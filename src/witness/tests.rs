#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;
use crate::merkle::Nodes;

const ORIGIN: &str = "focalgate.example/log";

/// A log in memory: its leaves' tree nodes, signed by `key`.
struct TestLog {
    key: NoteSigner,
    nodes: Nodes,
    size: u64,
}

impl TestLog {
    fn new(seed: u8) -> Self {
        Self {
            key: NoteSigner::from_seed(ORIGIN, KeyType::Ed25519, &[seed; 32]).unwrap(),
            nodes: Nodes::new(),
            size: 0,
        }
    }

    fn grow(&mut self, n: u64, tag: &str) {
        for _ in 0..n {
            self.push(&format!("{tag} {}", self.size));
        }
    }

    fn push(&mut self, label: &str) {
        let leaf = merkle::leaf_hash(label.as_bytes());
        let added = merkle::append(self.size, leaf, &self.nodes).unwrap();
        self.nodes.extend(added);
        self.size += 1;
    }

    fn checkpoint(&self) -> String {
        Checkpoint {
            origin: ORIGIN.into(),
            size: self.size,
            root: merkle::root(self.size, &self.nodes).unwrap(),
            extensions: Vec::new(),
        }
        .sign(&self.key)
        .unwrap()
    }

    fn proof(&self, from: u64) -> Vec<Hash> {
        if from == 0 || from == self.size {
            return Vec::new();
        }
        merkle::consistency_proof(from, self.size, &self.nodes).unwrap()
    }

    /// The request body asking to move from `old` to the current checkpoint.
    fn request(&self, old: u64) -> Vec<u8> {
        body(old, &self.proof(old), &self.checkpoint())
    }
}

fn body(old: u64, proof: &[Hash], checkpoint: &str) -> Vec<u8> {
    let mut out = format!("old {old}\n");
    for h in proof {
        out.push_str(&STANDARD.encode(h.as_bytes()));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(checkpoint);
    out.into_bytes()
}

fn witness_key() -> NoteSigner {
    NoteSigner::from_seed("witness.kaz.example", KeyType::Cosignature, &[9; 32]).unwrap()
}

fn witness(dir: &Path, log: &TestLog) -> Witness {
    Witness::new(
        witness_key(),
        vec![log.key.verifier().clone()],
        State::open(&dir.join("witness.db")).unwrap(),
    )
    .unwrap()
}

#[test]
fn cosigns_a_log_that_grows_and_the_cosignature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(1);
    log.grow(5, "a");
    let w = witness(dir.path(), &log);

    let first = w.add_checkpoint(&log.request(0), 1_700_000_000);
    assert_eq!(first.status, 200, "{}", first.body);
    log.grow(7, "a");
    let second = w.add_checkpoint(&log.request(5), 1_700_000_010);
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.starts_with("\u{2014} witness.kaz.example "));

    // The cosigned note verifies with the log's key and the witness's, with any C2SP reader.
    let cosigned = cosigned_note(&log.checkpoint(), second.body.trim_end());
    let opened = checkpoint::open(
        cosigned.as_bytes(),
        log.key.verifier(),
        &[w.verifier().clone()],
    )
    .unwrap();
    assert!(
        opened
            .note()
            .verified()
            .iter()
            .any(|s| s.name == "witness.kaz.example")
    );

    // What a monitor reads back is that cosigned checkpoint.
    let origin_hash = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        ORIGIN.as_bytes(),
    ));
    assert_eq!(
        w.latest(&origin_hash).unwrap().as_deref(),
        Some(cosigned.as_str())
    );
    assert_eq!(w.latest("00").unwrap(), None);
}

#[test]
fn a_stale_caller_learns_the_size_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(1);
    log.grow(4, "a");
    let w = witness(dir.path(), &log);
    assert_eq!(w.add_checkpoint(&log.request(0), 1).status, 200);
    log.grow(4, "a");
    let stale = w.add_checkpoint(&log.request(2), 2);
    assert_eq!(stale.status, 409);
    assert_eq!(stale.content_type, SIZE_CONTENT_TYPE);
    assert_eq!(stale.body, "4\n");
    // The caller retries from the size the witness reported.
    assert_eq!(w.add_checkpoint(&log.request(4), 3).status, 200);
}

#[test]
fn a_forked_or_rolled_back_checkpoint_is_never_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(1);
    log.grow(6, "a");
    let w = witness(dir.path(), &log);
    assert_eq!(w.add_checkpoint(&log.request(0), 1).status, 200);
    let held = w.state.held(ORIGIN).unwrap().unwrap();

    // Another history of the same log, signed with the log's key: a split view.
    let mut fork = TestLog::new(1);
    fork.grow(10, "b");
    let forged = w.add_checkpoint(&fork.request(6), 2);
    assert_eq!(forged.status, 422, "{}", forged.body);
    // The same size with another root.
    let mut same_size = TestLog::new(1);
    same_size.grow(6, "b");
    assert_eq!(w.add_checkpoint(&same_size.request(6), 3).status, 422);
    // A proof that does not belong to the checkpoint.
    log.grow(3, "a");
    let mut bad = log.proof(6);
    bad[0] = merkle::leaf_hash(b"not a node");
    assert_eq!(
        w.add_checkpoint(&body(6, &bad, &log.checkpoint()), 4)
            .status,
        422
    );
    // A rollback: an older checkpoint of the true log.
    let mut older = TestLog::new(1);
    older.grow(3, "a");
    assert_eq!(w.add_checkpoint(&older.request(3), 5).status, 409);
    assert_eq!(
        w.add_checkpoint(&body(6, &[], &older.checkpoint()), 6)
            .status,
        400
    );

    assert_eq!(
        w.state.held(ORIGIN).unwrap().unwrap(),
        held,
        "nothing moved"
    );
}

#[test]
fn every_refusal_has_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(1);
    log.grow(3, "a");
    let w = witness(dir.path(), &log);

    // Another log's key with the same origin name: the signature does not verify.
    let mut impostor = TestLog::new(2);
    impostor.grow(3, "a");
    assert_eq!(w.add_checkpoint(&impostor.request(0), 1).status, 403);

    // A log this witness does not witness.
    let other = NoteSigner::from_seed("other.example/log", KeyType::Ed25519, &[3; 32]).unwrap();
    let note = Checkpoint {
        origin: "other.example/log".into(),
        size: 1,
        root: merkle::leaf_hash(b"x"),
        extensions: Vec::new(),
    }
    .sign(&other)
    .unwrap();
    assert_eq!(w.add_checkpoint(&body(0, &[], &note), 1).status, 404);

    // Malformed requests.
    let good = log.checkpoint();
    for (what, bytes) in [
        ("no old line", format!("\n{good}").into_bytes()),
        (
            "old with a leading zero",
            format!("old 01\n\n{good}").into_bytes(),
        ),
        (
            "a proof line that is not a hash",
            format!("old 1\nnot-base64\n\n{good}").into_bytes(),
        ),
        ("no empty line", b"old 0\n".to_vec()),
        ("not a note", b"old 0\n\nhello\n".to_vec()),
        ("not UTF-8", b"old 0\n\n\xff\xfe".to_vec()),
        ("too large", vec![b'a'; MAX_BODY + 1]),
        ("old beyond the checkpoint", body(9, &[], &good)),
    ] {
        let reply = w.add_checkpoint(&bytes, 1);
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
    }
    // Well-formed, but no proof could make them hold: 422 (tlog-witness, July 2026).
    let empty_log_wrong_root = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root: merkle::leaf_hash(b"not the empty tree"),
        extensions: Vec::new(),
    }
    .sign(&log.key)
    .unwrap();
    for (what, bytes) in [
        (
            "a proof from size 0",
            body(0, &[merkle::leaf_hash(b"x")], &good),
        ),
        (
            "a proof to the same size",
            body(3, &[merkle::leaf_hash(b"x")], &good),
        ),
        (
            "size 0 with another root than the empty tree's",
            body(0, &[], &empty_log_wrong_root),
        ),
    ] {
        let reply = w.add_checkpoint(&bytes, 1);
        assert_eq!(reply.status, 422, "{what}: {}", reply.body);
    }
    assert_eq!(w.state.held(ORIGIN).unwrap(), None, "nothing was held");
}

#[test]
fn the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(1);
    log.grow(4, "a");
    {
        let w = witness(dir.path(), &log);
        assert_eq!(w.add_checkpoint(&log.request(0), 1).status, 200);
    }
    let w = witness(dir.path(), &log);
    assert_eq!(w.state.held(ORIGIN).unwrap().unwrap().size, 4);
    log.grow(1, "a");
    assert_eq!(w.add_checkpoint(&log.request(0), 2).status, 409);
    assert_eq!(w.add_checkpoint(&log.request(4), 2).status, 200);
}

#[test]
fn two_callers_at_once_never_get_two_inconsistent_checkpoints_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let log_of = |history: &[String]| {
        let mut log = TestLog::new(1);
        for label in history {
            log.push(label);
        }
        log
    };
    let mut history: Vec<String> = (0..8).map(|i| format!("a {i}")).collect();
    let first = log_of(&history);
    assert_eq!(
        witness(dir.path(), &first)
            .add_checkpoint(&first.request(0), 1)
            .status,
        200
    );

    for round in 0..20 {
        // Two replicas' views that agree up to the size held and differ after it, posted at
        // the same moment through two connections to one state file.
        let held = history.len() as u64;
        let views: Vec<Vec<String>> = ["x", "y"]
            .iter()
            .map(|tag| {
                let mut view = history.clone();
                view.extend((0..3).map(|i| format!("{tag} {round} {i}")));
                view
            })
            .collect();
        let requests: Vec<Vec<u8>> = views.iter().map(|v| log_of(v).request(held)).collect();
        let barrier = std::sync::Barrier::new(2);
        let codes: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = requests
                .iter()
                .map(|req| {
                    let w = witness(dir.path(), &first);
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        w.add_checkpoint(req, 2).status
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(sorted, [200, 409], "round {round}: {codes:?}");
        // The view that won is what the witness holds now.
        history = views[codes.iter().position(|&c| c == 200).unwrap()].clone();
        let winner = log_of(&history);
        let held = witness(dir.path(), &first)
            .state
            .held(ORIGIN)
            .unwrap()
            .unwrap();
        assert_eq!(held.size, winner.size, "round {round}");
        assert_eq!(held.root, merkle::root(winner.size, &winner.nodes).unwrap());
    }
}
