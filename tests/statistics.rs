//! Aggregates over real mTLS: sums checked against an independent computation over the sample
//! files, revisions and `as_of`, sharing rules, embargoes and confidential values, small-cell
//! suppression at its thresholds and against differencing, the access trail, and the CLI's
//! exports and charts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use focalgate::rpc::statistics_client::StatisticsClient;
use std::collections::BTreeMap;

use common::{BIN, Gateway, Signer, body, pki, samples, seizure, submit_samples};
use focalgate::proto::{
    AggregateQuery, AggregateRow, ListAccessTrailRequest, Observation, QueryHeader,
    aggregate_query::AsOf, query_response::Item,
};
use tonic::Code;

async fn query(
    gw: &Gateway,
    who: &str,
    q: AggregateQuery,
) -> Result<(QueryHeader, Vec<AggregateRow>), tonic::Status> {
    let mut client = StatisticsClient::new(gw.channel(who).await);
    let mut stream = client.query(q).await?.into_inner();
    let (mut header, mut rows) = (None, Vec::new());
    while let Some(item) = stream.message().await? {
        match item.item.unwrap() {
            Item::Header(h) => header = Some(h),
            Item::Row(r) => rows.push(r),
        }
    }
    Ok((header.unwrap(), rows))
}

fn q(dataflow: &str, freq: &str, group_by: &[&str]) -> AggregateQuery {
    AggregateQuery {
        dataflow: dataflow.into(),
        freq: freq.into(),
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A decimal string as millionths, parsed independently of the gateway's own parser.
fn millionths(s: &str) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<6}");
    int.parse::<i128>().unwrap() * 1_000_000 + frac[..6].parse::<i128>().unwrap()
}

fn cells(rows: &[AggregateRow]) -> BTreeMap<Vec<String>, (String, i128, u64, u32)> {
    rows.iter()
        .filter(|r| !r.total)
        .map(|r| {
            let mut key = r.key.clone();
            key.push(r.unit_measure.clone());
            (
                key,
                (
                    r.obs_status.clone(),
                    millionths(&r.quantity),
                    r.n_seizures.unwrap_or(0),
                    r.n_reporters,
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_over_the_samples_match_independent_sums() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    tokio::task::block_in_place(|| submit_samples(&gw));

    // Independently: every sample row an analyst may see (not C; E only once its embargo has
    // passed), summed per reporter, year, drug and unit.
    let mut want: BTreeMap<Vec<String>, (i128, u64)> = BTreeMap::new();
    let mut routes: BTreeMap<Vec<String>, (i128, u64)> = BTreeMap::new();
    let mut heroin_routes: BTreeMap<Vec<String>, i128> = BTreeMap::new();
    let now = time::OffsetDateTime::now_utc();
    for who in ["KAZ", "KGZ", "TJK", "TKM", "UZB"] {
        for (dataflow, into) in [("SEIZURES", &mut want), ("ROUTES", &mut routes)] {
            let mut r =
                csv::Reader::from_path(samples().join(format!("{who}-{dataflow}.csv"))).unwrap();
            let h: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
            for rec in r.records() {
                let rec = rec.unwrap();
                let get = |c: &str| {
                    rec.get(h.iter().position(|x| x == c).unwrap())
                        .unwrap()
                        .to_owned()
                };
                let conf = get("CONF_STATUS");
                if conf == "C" {
                    continue;
                }
                if conf == "E" {
                    let until = time::OffsetDateTime::parse(
                        &get("EMBARGO_TIME"),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap();
                    if until > now {
                        continue;
                    }
                }
                let key = if dataflow == "SEIZURES" {
                    vec![
                        get("REF_AREA"),
                        get("TIME_PERIOD")[..4].to_owned(),
                        get("DRUG"),
                        get("UNIT_MEASURE"),
                    ]
                } else {
                    vec![
                        get("ORIGIN_AREA"),
                        get("DESTINATION_AREA"),
                        get("UNIT_MEASURE"),
                    ]
                };
                if dataflow == "ROUTES" && get("DRUG") == "HEROIN" {
                    *heroin_routes.entry(key.clone()).or_default() += millionths(&get("QUANTITY"));
                }
                let e = into.entry(key).or_default();
                e.0 += millionths(&get("QUANTITY"));
                e.1 += get("N_SEIZURES").parse::<u64>().unwrap();
            }
        }
    }

    let mut s = q("SEIZURES", "Q", &["ref_area", "TIME_PERIOD", "Drug"]);
    s.rollup = "A".into();
    let (header, rows) = query(&gw, "analyst", s).await.unwrap();
    assert_eq!(header.dimensions, ["REF_AREA", "TIME_PERIOD", "DRUG"]);
    assert!(
        header
            .checkpoint
            .contains(&format!("\n{}\n", header.tree_size)),
        "the answer names its checkpoint"
    );
    let got = cells(&rows);
    let got_sums: BTreeMap<_, _> = got.iter().map(|(k, v)| (k.clone(), (v.1, v.2))).collect();
    assert_eq!(got_sums, want, "every cell equals the independent sum");
    assert!(
        got.values().all(|v| v.3 == 1),
        "one reporter per cell when grouped by reporter"
    );
    // Units are part of the key: tablets of tramadol are never added to kilograms.
    assert!(
        got.keys()
            .filter(|k| k[2] == "TRAMADOL")
            .all(|k| k[3] == "U")
    );
    assert!(
        got.keys()
            .filter(|k| k[2] == "HEROIN")
            .all(|k| k[3] == "KG")
    );

    let (_, rows) = query(
        &gw,
        "analyst",
        q("ROUTES", "A", &["origin_area", "destination_area"]),
    )
    .await
    .unwrap();
    let got: BTreeMap<_, _> = cells(&rows)
        .into_iter()
        .map(|(k, v)| (k, (v.1, v.2)))
        .collect();
    assert_eq!(got, routes);

    // Top routes: the largest flows by quantity, per unit.
    let mut top = q("ROUTES", "A", &["ORIGIN_AREA", "DESTINATION_AREA"]);
    top.drug = vec!["HEROIN".into()];
    top.top_n = 2;
    let (_, rows) = query(&gw, "analyst", top).await.unwrap();
    let mut want_top: Vec<(i128, Vec<String>)> =
        heroin_routes.into_iter().map(|(k, q)| (q, k)).collect();
    want_top.sort_by(|a, b| b.cmp(a));
    want_top.truncate(2);
    let mut got_top: Vec<(i128, Vec<String>)> = rows
        .iter()
        .map(|r| {
            (
                millionths(&r.quantity),
                vec![r.key[0].clone(), r.key[1].clone(), r.unit_measure.clone()],
            )
        })
        .collect();
    got_top.sort_by(|a, b| b.cmp(a));
    assert_eq!(got_top, want_top, "the two largest heroin routes");
    gw.stop().await;
}

#[tokio::test]
async fn revisions_count_once_and_as_of_reproduces_earlier_answers() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");
    let mut b = body(
        "SEIZURES",
        "KAZ",
        "2023",
        vec![
            seizure("HEROIN", "KG", "10.5", 4),
            seizure("OPIUM", "KG", "3", 3),
        ],
    );
    gw.client("KAZ").await.submit(kaz.seal(&b)).await.unwrap();
    let ask = q("SEIZURES", "A", &["DRUG"]);
    let (first_header, first) = query(&gw, "analyst", ask.clone()).await.unwrap();
    let before_revision = time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    b.observations[0].quantity = "25".into();
    b.prepared_at.as_mut().unwrap().seconds += 1;
    gw.client("KAZ").await.submit(kaz.seal(&b)).await.unwrap();
    let (_, now) = query(&gw, "analyst", ask.clone()).await.unwrap();
    let heroin = |rows: &[AggregateRow]| {
        rows.iter()
            .find(|r| r.key == ["HEROIN"])
            .unwrap()
            .quantity
            .clone()
    };
    assert_eq!(
        (heroin(&first), heroin(&now)),
        ("10.5".to_owned(), "25".to_owned()),
        "only the current revision counts"
    );

    let mut by_size = ask.clone();
    by_size.as_of = Some(AsOf::AsOfTreeSize(first_header.tree_size));
    let (h, again) = query(&gw, "analyst", by_size).await.unwrap();
    assert_eq!(
        (again, h.checkpoint),
        (first.clone(), first_header.checkpoint.clone()),
        "as_of reproduces the earlier answer and names its checkpoint"
    );
    let mut by_time = ask;
    by_time.as_of = Some(AsOf::AsOfTime(prost_types::Timestamp {
        seconds: before_revision.unix_timestamp(),
        nanos: before_revision.nanosecond() as i32,
    }));
    let (h, again) = query(&gw, "analyst", by_time).await.unwrap();
    assert_eq!((again, h.tree_size), (first, first_header.tree_size));
    gw.stop().await;
}

fn obs(drug: &str, quantity: &str, n: u64, conf: &str, embargo: Option<i64>) -> Observation {
    let mut o = seizure(drug, "KG", quantity, n);
    o.conf_status = conf.into();
    o.embargo_time = embargo.map(|s| prost_types::Timestamp {
        seconds: s,
        nanos: 0,
    });
    o
}

#[tokio::test]
async fn sharing_rules_embargoes_and_confidential_values() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // TKM shares its country-level figures with the regional analysis group only.
    let tkm = body(
        "SEIZURES",
        "TKM",
        "2024",
        vec![obs("HEROIN", "100", 10, "F", None)],
    );
    gw.client("TKM")
        .await
        .submit(Signer::of("TKM").seal(&tkm))
        .await
        .unwrap();
    let mut past = obs("METHAMPHETAMINE", "4", 4, "E", Some(now - 3600));
    past.transport_mode = "AIR".into();
    let kaz = body(
        "SEIZURES",
        "KAZ",
        "2024",
        vec![
            obs("HEROIN", "50", 5, "F", None),
            obs("COCAINE", "7", 3, "C", None),
            obs("METHAMPHETAMINE", "9", 9, "E", Some(now + 3600)),
            past,
        ],
    );
    gw.client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&kaz))
        .await
        .unwrap();
    let by_reporter = q("SEIZURES", "A", &["REF_AREA", "DRUG"]);
    let find = |rows: &[AggregateRow], key: &[&str]| rows.iter().find(|r| r.key == key).cloned();

    // The analyst is in the group: it sees TKM; never KAZ's confidential or embargoed values.
    let (_, rows) = query(&gw, "analyst", by_reporter.clone()).await.unwrap();
    assert_eq!(find(&rows, &["TKM", "HEROIN"]).unwrap().quantity, "100");
    assert!(
        find(&rows, &["KAZ", "COCAINE"]).is_none(),
        "confidential values never leave"
    );
    assert_eq!(
        find(&rows, &["KAZ", "METHAMPHETAMINE"]).unwrap().quantity,
        "4",
        "the lapsed embargo shows, the running one does not"
    );

    // DEU is not: TKM's country-level figure is suppressed for it.
    let (_, rows) = query(&gw, "DEU", by_reporter.clone()).await.unwrap();
    let tkm_cell = find(&rows, &["TKM", "HEROIN"]).unwrap();
    assert_eq!(
        (
            tkm_cell.quantity.as_str(),
            tkm_cell.n_seizures,
            tkm_cell.obs_status.as_str(),
            tkm_cell.conf_status.as_str()
        ),
        ("", None, "Q", "A")
    );
    assert_eq!(find(&rows, &["KAZ", "HEROIN"]).unwrap().quantity, "50");

    // KAZ always sees its own, confidential and embargoed included, and marked so.
    let (_, rows) = query(&gw, "KAZ", by_reporter).await.unwrap();
    let cocaine = find(&rows, &["KAZ", "COCAINE"]).unwrap();
    assert_eq!(
        (cocaine.quantity.as_str(), cocaine.conf_status.as_str()),
        ("7", "C")
    );
    let meth = find(&rows, &["KAZ", "METHAMPHETAMINE"]).unwrap();
    assert_eq!(
        (meth.quantity.as_str(), meth.conf_status.as_str()),
        ("13", "E")
    );
    gw.stop().await;
}

#[tokio::test]
async fn suppression_at_its_thresholds_and_against_differencing() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    // DEU may see KAZ's figures but not TKM's. k = 3 seizures, m = 2 reporters.
    let tkm = body(
        "SEIZURES",
        "TKM",
        "2024",
        vec![
            seizure("HEROIN", "KG", "11", 1),
            seizure("OPIUM", "KG", "13", 1),
            seizure("COCAINE", "KG", "17", 50),
        ],
    );
    let kaz = body(
        "SEIZURES",
        "KAZ",
        "2024",
        vec![
            seizure("HEROIN", "KG", "2", 1),
            seizure("OPIUM", "KG", "5", 2),
        ],
    );
    gw.client("TKM")
        .await
        .submit(Signer::of("TKM").seal(&tkm))
        .await
        .unwrap();
    gw.client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&kaz))
        .await
        .unwrap();

    let mut by_drug = q("SEIZURES", "A", &["DRUG"]);
    by_drug.totals = true;
    let (header, rows) = query(&gw, "DEU", by_drug.clone()).await.unwrap();
    assert_eq!((header.min_seizures, header.min_reporters), (3, 2));
    let cell = |drug: &str| {
        rows.iter()
            .find(|r| r.key == [drug] && !r.total)
            .unwrap()
            .clone()
    };
    assert_eq!(
        cell("HEROIN").obs_status,
        "Q",
        "2 seizures (k-1) from a hidden reporter: suppressed"
    );
    assert_eq!(
        (cell("OPIUM").quantity.as_str(), cell("OPIUM").n_seizures),
        ("18", Some(3)),
        "3 seizures (k) from 2 reporters: shown"
    );
    assert_eq!(
        cell("COCAINE").obs_status,
        "Q",
        "1 reporter (m-1), however many seizures: suppressed"
    );

    // The differencing attack: total minus the visible cells would give the suppressed ones
    // away, so the total is withheld.
    let total = rows.iter().find(|r| r.total).unwrap();
    assert_eq!(
        (total.quantity.as_str(), total.obs_status.as_str()),
        ("", "Q")
    );
    let visible: Vec<&AggregateRow> = rows.iter().filter(|r| !r.quantity.is_empty()).collect();
    assert_eq!(
        visible.len(),
        1,
        "nothing in the answer but OPIUM carries a number"
    );

    // The analyst may see TKM: nothing is suppressed, the total is exact.
    let (_, rows) = query(&gw, "analyst", by_drug).await.unwrap();
    assert!(rows.iter().all(|r| r.obs_status != "Q"));
    assert_eq!(rows.iter().find(|r| r.total).unwrap().quantity, "48");
    gw.stop().await;
}

#[tokio::test]
async fn empty_answers_bad_queries_rights_and_the_access_trail() {
    let dir = common::tempdir();
    // A policy in which the analyst has lost its role.
    let p = pki().display().to_string();
    let policy = format!(
        "version = 1\n\
         [members.\"KAZ:nfp\"]\nroles = [\"submitter\"]\nsigning_certificates = [\"{p}/KAZ/signing.pem\"]\n\
         [members.\"PRT:analyst\"]\nroles = []\n\
         [members.\"LTU:auditor\"]\nroles = [\"auditor\"]\n"
    );
    std::fs::write(dir.path().join("policy.toml"), &policy).unwrap();
    let mut settings = common::settings(&dir.path().join("data"));
    settings.policy = Some(dir.path().join("policy.toml"));
    let gw = Gateway::start_with(settings).await;
    gw.client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&body(
            "SEIZURES",
            "KAZ",
            "2024",
            vec![seizure("HEROIN", "KG", "1", 1)],
        )))
        .await
        .unwrap();

    let err = query(&gw, "analyst", q("SEIZURES", "A", &["DRUG"]))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "an analyst without rights"
    );
    let err = query(&gw, "auditor", q("SEIZURES", "A", &["DRUG"]))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "an auditor does not query"
    );

    // A filter that matches nothing: an empty answer, not an error.
    let mut nothing = q("SEIZURES", "A", &["DRUG"]);
    nothing.drug = vec!["LSD".into()];
    let (_, rows) = query(&gw, "KAZ", nothing).await.unwrap();
    assert!(rows.is_empty());

    // Without a frequency: the one the selected series have, named in the header.
    let (header, rows) = query(&gw, "KAZ", q("SEIZURES", "", &["DRUG"]))
        .await
        .unwrap();
    assert_eq!((header.freq.as_str(), rows.len()), ("A", 1));
    let mut rolled_down = q("SEIZURES", "", &["TIME_PERIOD"]);
    rolled_down.rollup = "Q".into();
    let err = query(&gw, "KAZ", rolled_down).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("rollup"), "{}", err.message());
    // Quarterly series beside the annual one: months are never added to years, so a query
    // that would mix them must name a frequency; one whose filter selects one of them need not.
    gw.client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&body(
            "SEIZURES",
            "KAZ",
            "2024-Q1",
            vec![seizure("OPIUM", "KG", "2", 1)],
        )))
        .await
        .unwrap();
    let err = query(&gw, "KAZ", q("SEIZURES", "", &["DRUG"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("freq") && err.message().contains("A, Q"),
        "{}",
        err.message()
    );
    let mut opium = q("SEIZURES", "", &["DRUG"]);
    opium.drug = vec!["OPIUM".into()];
    let (header, rows) = query(&gw, "KAZ", opium).await.unwrap();
    assert_eq!((header.freq.as_str(), rows.len()), ("Q", 1));

    // Bad queries: every problem, with its field.
    let bad = AggregateQuery {
        dataflow: "SEIZURES".into(),
        freq: "W".into(),
        group_by: vec!["ORIGIN_AREA".into(), "color".into()],
        drug: vec!["HEROINE".into()],
        ..Default::default()
    };
    let err = query(&gw, "KAZ", bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for field in ["freq", "drug[0]", "group_by[0]", "group_by[1]"] {
        assert!(
            err.message().contains(field),
            "{field} in {}",
            err.message()
        );
    }

    // Every query is in the trail, readable by auditors only.
    let mut trail = StatisticsClient::new(gw.channel("auditor").await);
    let mut stream = trail
        .list_access_trail(ListAccessTrailRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut records = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        records.push(r);
    }
    // Refused queries never ran; those that ran are there, newest first.
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r.member == "KAZ:nfp" && r.method == "Query")
    );
    let lsd = &records[2];
    assert_eq!(lsd.rows, 0);
    assert!(
        lsd.request.contains("\"drug\":[\"LSD\"]"),
        "{}",
        lsd.request
    );
    let err = StatisticsClient::new(gw.channel("KAZ").await)
        .list_access_trail(ListAccessTrailRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exports_sdmx_csv_json_and_charts() {
    let dir = common::tempdir();
    let gw = Gateway::start(&dir.path().join("data")).await;
    tokio::task::block_in_place(|| submit_samples(&gw));
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["query", "--server", &gw.url(), "--identity"])
            .arg(pki().join("analyst"))
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let series = dir.path().join("series.svg");
    let sdmx = tokio::task::block_in_place(|| {
        run(&[
            "--dataflow",
            "seizures",
            "--freq",
            "Q",
            "--rollup",
            "A",
            "--group-by",
            "Time_Period,drug,unit_measure",
            "--totals",
            "--format",
            "sdmx-csv",
            "--chart",
            series.to_str().unwrap(),
        ])
    });
    let mut reader = csv::Reader::from_reader(sdmx.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "STRUCTURE",
            "STRUCTURE_ID",
            "ACTION",
            "FREQ",
            "REF_AREA",
            "DRUG",
            "TRANSPORT_MODE",
            "REPORTED_STATUS",
            "UNIT_MEASURE",
            "TIME_PERIOD",
            "OBS_VALUE",
            "N_SEIZURES",
            "N_REPORTERS",
            "OBS_STATUS",
            "CONF_STATUS"
        ],
        "the full key of SEIZURES_AGG, then its measure (the quantity) and attributes"
    );
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert!(records.len() > 50);
    assert!(
        records
            .iter()
            .all(|r| &r[0] == "dataflow" && &r[1] == "FOCALGATE:SEIZURES_AGG(1.0)" && &r[2] == "I")
    );
    let (cells, totals): (Vec<_>, Vec<_>) = records.iter().partition(|r| &r[5] != "_T");
    assert!(!totals.is_empty(), "totals are coded _T in DRUG");
    for r in &cells {
        // Rolled up to years; REF_AREA, TRANSPORT_MODE and REPORTED_STATUS were summed over.
        assert_eq!(
            (&r[3], &r[4], &r[6], &r[7]),
            ("A", "_T", "_T", "_T"),
            "{r:?}"
        );
        assert!(r[9].len() == 4 && r[9].parse::<u16>().is_ok(), "{r:?}");
    }
    for r in &totals {
        // A total sums every period: its TIME_PERIOD is the time range they span.
        assert_eq!(&r[3], "Q", "{r:?}");
        assert!(
            r[9].starts_with("20") && r[9].contains("-01-01/P") && r[9].ends_with(['Y', 'M']),
            "{r:?}"
        );
    }

    let csv_out = tokio::task::block_in_place(|| {
        run(&[
            "--dataflow",
            "SEIZURES",
            "--group-by",
            "drug,unit_measure",
            "--format",
            "csv",
        ])
    });
    assert!(
        csv_out.starts_with(
            "DRUG,UNIT_MEASURE,QUANTITY,N_SEIZURES,N_REPORTERS,OBS_STATUS,CONF_STATUS\n"
        ),
        "{csv_out}"
    );

    let json_out = tokio::task::block_in_place(|| {
        run(&[
            "--dataflow",
            "ROUTES",
            "--freq",
            "A",
            "--group-by",
            "origin_area,destination_area",
            "--format",
            "json",
        ])
    });
    let doc: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(
        doc["dimensions"],
        serde_json::json!(["ORIGIN_AREA", "DESTINATION_AREA"])
    );
    assert!(
        doc["checkpoint"]
            .as_str()
            .unwrap()
            .contains("focalgate.demo/log")
    );

    let flows = dir.path().join("flows.svg");
    tokio::task::block_in_place(|| {
        run(&[
            "--dataflow",
            "ROUTES",
            "--freq",
            "A",
            "--group-by",
            "origin_area,transit_area,destination_area",
            "--drug",
            "HEROIN",
            "--top",
            "5",
            "--chart",
            flows.to_str().unwrap(),
        ])
    });
    for svg in [series, flows] {
        let text = std::fs::read_to_string(&svg).unwrap();
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{}: not valid SVG: {e}", svg.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(
            doc.descendants()
                .filter(|n| n.has_tag_name("path")
                    || n.has_tag_name("polyline")
                    || n.has_tag_name("line"))
                .count()
                > 2
        );
    }
    gw.stop().await;
}
