#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::{
    checkpoint::{Checkpoint, NoteSigner, note},
    merkle,
};

const MEMBERS: [&str; 5] = ["KAZ", "KGZ", "TJK", "TKM", "UZB"];

fn log_key() -> NoteSigner {
    NoteSigner::from_seed("focalgate.example/log", KeyType::Ed25519, &[1; 32]).unwrap()
}

fn witness_key(i: usize) -> NoteSigner {
    NoteSigner::from_seed(
        &format!("witness.{}.example", MEMBERS[i].to_lowercase()),
        KeyType::Cosignature,
        &[10 + i as u8; 32],
    )
    .unwrap()
}

/// Five Central Asian witnesses, three of whom make a quorum.
fn policy_text(quorum_lines: &str) -> String {
    let mut text = format!("log {}\n", log_key().verifier());
    for (i, m) in MEMBERS.iter().enumerate() {
        text.push_str(&format!(
            "witness {m} {} https://witness.{}.example\n",
            witness_key(i).verifier(),
            m.to_lowercase()
        ));
    }
    text.push_str(quorum_lines);
    text
}

/// The log's checkpoint, cosigned by the witnesses `by`.
fn cosigned(by: &[usize]) -> String {
    let body = Checkpoint {
        origin: "focalgate.example/log".into(),
        size: 3,
        root: merkle::leaf_hash(b"root"),
        extensions: Vec::new(),
    }
    .body();
    let mut sigs = vec![log_key().sign(&body, 0)];
    sigs.extend(
        by.iter()
            .map(|&i| witness_key(i).sign(&body, 1_700_000_000)),
    );
    note::sign(&body, &sigs).unwrap()
}

#[test]
fn three_of_five_is_a_quorum_and_two_is_not() {
    let policy = Policy::parse(&policy_text(
        "group central-asia 3 KAZ KGZ TJK TKM UZB\nquorum central-asia\n",
    ))
    .unwrap();
    assert_eq!(policy.witnesses().len(), 5);
    assert_eq!(
        policy.witnesses()[0].url.as_deref(),
        Some("https://witness.kaz.example")
    );

    let (cp, by) = policy.verify(cosigned(&[0, 2, 4]).as_bytes()).unwrap();
    assert_eq!(cp.checkpoint().size, 3);
    assert_eq!(by, ["KAZ", "TJK", "UZB"]);
    match policy.verify(cosigned(&[1, 3]).as_bytes()) {
        Err(QuorumError::NoQuorum { cosigned, quorum }) => {
            assert_eq!(cosigned, ["KGZ", "TKM"]);
            assert_eq!(quorum, "central-asia");
        }
        other => panic!("two of five accepted: {other:?}"),
    }
    assert!(matches!(
        policy.verify(cosigned(&[]).as_bytes()),
        Err(QuorumError::NoQuorum { .. })
    ));
}

#[test]
fn nested_groups_any_all_and_none() {
    let nested = Policy::parse(&policy_text(
        "group north any KAZ KGZ\ngroup south all TJK TKM\ngroup both all north south\nquorum both\n",
    ))
    .unwrap();
    assert!(nested.verify(cosigned(&[1, 2, 3]).as_bytes()).is_ok());
    assert!(
        nested.verify(cosigned(&[0, 1, 2]).as_bytes()).is_err(),
        "south needs TKM too"
    );
    let single = Policy::parse(&policy_text("quorum UZB\n")).unwrap();
    assert!(single.verify(cosigned(&[4]).as_bytes()).is_ok());
    assert!(single.verify(cosigned(&[0, 1, 2, 3]).as_bytes()).is_err());
    let none = Policy::parse(&policy_text("quorum none\n")).unwrap();
    assert!(none.verify(cosigned(&[]).as_bytes()).is_ok());
}

#[test]
fn a_tampered_cosignature_or_another_log_is_refused() {
    let policy = Policy::parse(&policy_text("group g 3 KAZ KGZ TJK TKM UZB\nquorum g\n")).unwrap();
    let good = cosigned(&[0, 1, 2]);
    // Flip a byte inside KAZ's cosignature (not in its key id).
    let line = good
        .lines()
        .find(|l| l.contains("witness.kaz.example"))
        .unwrap();
    let (head, b64) = line.rsplit_once(' ').unwrap();
    let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
    raw[20] ^= 1;
    let forged = good.replace(
        line,
        &format!(
            "{head} {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw)
        ),
    );
    assert!(matches!(
        policy.verify(forged.as_bytes()),
        Err(QuorumError::Checkpoint(_))
    ));
    // A checkpoint of a log the policy does not name.
    let other = NoteSigner::from_seed("other.example/log", KeyType::Ed25519, &[2; 32]).unwrap();
    let body = Checkpoint {
        origin: "other.example/log".into(),
        size: 1,
        root: merkle::leaf_hash(b"x"),
        extensions: Vec::new(),
    }
    .body();
    let foreign = note::sign(&body, &[other.sign(&body, 0)]).unwrap();
    assert!(policy.verify(foreign.as_bytes()).is_err());
}

#[test]
fn malformed_policies_name_their_line() {
    let log = format!("log {}\n", log_key().verifier());
    let w = |i: usize| format!("witness {} {}\n", MEMBERS[i], witness_key(i).verifier());
    for (text, line, says) in [
        (
            format!("{log}{}{}quorum KAZ\n", w(0), w(0)),
            3,
            "defined twice",
        ),
        (
            format!("{log}group g 1 KAZ\nquorum g\n"),
            2,
            "not defined above",
        ),
        (
            format!("{log}{}group g 2 KAZ\nquorum g\n", w(0)),
            3,
            "threshold 2",
        ),
        (
            format!("{log}{}group g 0 KAZ\nquorum g\n", w(0)),
            3,
            "threshold 0",
        ),
        (
            format!("{log}{}group g 1 KAZ KAZ\nquorum g\n", w(0)),
            3,
            "named twice",
        ),
        (
            format!("{log}{}quorum nobody\n", w(0)),
            3,
            "not defined above",
        ),
        (
            format!("{log}{}quorum KAZ\n{}", w(0), w(1)),
            4,
            "follow the quorum",
        ),
        (format!("{log}{}", w(0)), 0, "quorum line"),
        (format!("{}quorum KAZ\n", w(0)), 0, "at least one log"),
        (
            format!(
                "{log}witness none {}\nquorum none\n",
                witness_key(0).verifier()
            ),
            2,
            "reserved",
        ),
        (
            format!("{log}witness KAZ not-a-key\nquorum none\n"),
            2,
            "witness key",
        ),
        (
            format!("{log}frobnicate\nquorum none\n"),
            2,
            "not a policy line",
        ),
    ] {
        let e = Policy::parse(&text).unwrap_err();
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.to_string().contains(says), "{text}: {e}");
    }
    // Comments and blank lines are ignored.
    let commented = format!(
        "# the demo policy\n\n{log}{} # Kazakhstan\nquorum KAZ\n",
        w(0)
    );
    assert!(Policy::parse(&commented).is_ok());
}

#[test]
fn deeply_shared_groups_are_decided_once_each() {
    // Each group needs the two before it: deciding names recursively would take 2^500 steps.
    let mut text = policy_text("group g0 any KAZ KGZ\ngroup g1 any TJK TKM\n");
    for i in 2..500 {
        text.push_str(&format!("group g{i} all g{} g{}\n", i - 1, i - 2));
    }
    text.push_str("quorum g499\n");
    let policy = Policy::parse(&text).unwrap();
    assert!(policy.verify(cosigned(&[0, 2]).as_bytes()).is_ok());
    assert!(policy.verify(cosigned(&[0, 1]).as_bytes()).is_err());
}

#[test]
fn a_roster_has_no_log_line_and_takes_the_logs_key() {
    let full = policy_text("group central-asia 3 KAZ KGZ TJK TKM UZB\nquorum central-asia\n");
    let roster_text = full.split_once('\n').unwrap().1;
    let roster = Policy::parse_roster(roster_text).unwrap();
    assert_eq!(roster.logs().count(), 0);
    assert_eq!(roster.witnesses().len(), 5);
    let policy = roster.with_log(log_key().verifier().clone());
    assert_eq!(policy, Policy::parse(&full).unwrap());
    policy.verify(cosigned(&[0, 1, 2]).as_bytes()).unwrap();

    let e = Policy::parse_roster(&full).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.why.contains("no log line"), "{e}");
}
