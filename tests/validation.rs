//! Every schema rule, broken one at a time over real mTLS: each answer is INVALID_ARGUMENT
//! with the field path and rule in the BadRequest details and in the message, and nothing is
//! stored. Then many at once: every violation comes back in one answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, Signer, body, route, seizure};
use focalgate::proto::SubmissionBody;
use tonic::Code;
use tonic_types::StatusExt;

type Mutation = Box<dyn Fn(&mut SubmissionBody)>;
/// (what, base body, mutation, field path, reason, words the description must contain)
type Case = (
    &'static str,
    fn() -> SubmissionBody,
    Mutation,
    &'static str,
    &'static str,
    &'static str,
);

fn seizures() -> SubmissionBody {
    body(
        "SEIZURES",
        "KAZ",
        "2024-Q3",
        vec![
            seizure("HEROIN", "KG", "12.5", 3),
            seizure("MDMA", "U", "5000", 2),
        ],
    )
}

fn routes() -> SubmissionBody {
    body(
        "ROUTES",
        "KAZ",
        "2024",
        vec![route("HEROIN", "AFG", &["TJK"], "RUS", "10")],
    )
}

#[tokio::test]
async fn each_rule_is_reported_with_its_field_path_and_nothing_is_stored() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let kaz = Signer::of("KAZ");
    let mut client = gw.client("KAZ").await;

    let cases: Vec<Case> = vec![
        (
            "dataflow missing",
            seizures,
            Box::new(|b| b.dataflow.clear()),
            "dataflow",
            "REQUIRED",
            "dataflow is required",
        ),
        (
            "unknown dataflow",
            seizures,
            Box::new(|b| b.dataflow = "PRICES".into()),
            "dataflow",
            "UNKNOWN_CODE",
            "not a dataflow",
        ),
        (
            "unknown drug",
            seizures,
            Box::new(|b| b.observations[1].drug = "HEROINE".into()),
            "observations[1].drug",
            "UNKNOWN_CODE",
            "\"HEROINE\" is not in CL_DRUG",
        ),
        (
            "lower-case code",
            seizures,
            Box::new(|b| b.observations[0].drug = "heroin".into()),
            "observations[0].drug",
            "UNKNOWN_CODE",
            "did you mean HEROIN?",
        ),
        (
            "drug group",
            seizures,
            Box::new(|b| b.observations[0].drug = "OPIOIDS".into()),
            "observations[0].drug",
            "NOT_REPORTABLE",
            "may not be submitted",
        ),
        (
            "unknown transport mode",
            seizures,
            Box::new(|b| b.observations[0].transport_mode = "CAMEL".into()),
            "observations[0].transport_mode",
            "UNKNOWN_CODE",
            "CL_TRANSPORT_MODE",
        ),
        (
            "unknown frequency",
            seizures,
            Box::new(|b| b.freq = "W".into()),
            "freq",
            "UNKNOWN_CODE",
            "CL_FREQ",
        ),
        (
            "route dimension in SEIZURES",
            seizures,
            Box::new(|b| b.observations[0].origin_area = "AFG".into()),
            "observations[0].origin_area",
            "NOT_IN_DATAFLOW",
            "ORIGIN_AREA is not a dimension of SEIZURES",
        ),
        (
            "malformed period",
            seizures,
            Box::new(|b| b.time_period = "2024/3".into()),
            "time_period",
            "PERIOD_MALFORMED",
            "not a reporting period",
        ),
        (
            "period not matching FREQ",
            seizures,
            Box::new(|b| b.freq = "M".into()),
            "time_period",
            "PERIOD_NOT_MATCHING_FREQ",
            "does not match FREQ M",
        ),
        (
            "period in the future",
            seizures,
            Box::new(|b| {
                b.freq = "A".into();
                b.time_period = "2099".into()
            }),
            "time_period",
            "PERIOD_IN_FUTURE",
            "after today",
        ),
        (
            "negative quantity",
            seizures,
            Box::new(|b| b.observations[0].quantity = "-3".into()),
            "observations[0].quantity",
            "QUANTITY_NEGATIVE",
            "must not be negative",
        ),
        (
            "over-precise quantity",
            seizures,
            Box::new(|b| b.observations[0].quantity = "0.0000001".into()),
            "observations[0].quantity",
            "QUANTITY_OVER_PRECISE",
            "more than 6 digits after the decimal point",
        ),
        (
            "too large quantity",
            seizures,
            Box::new(|b| b.observations[0].quantity = "1000000000000".into()),
            "observations[0].quantity",
            "QUANTITY_TOO_LARGE",
            "more than 12 digits",
        ),
        (
            "float-style quantity",
            seizures,
            Box::new(|b| b.observations[0].quantity = "1.5e3".into()),
            "observations[0].quantity",
            "QUANTITY_MALFORMED",
            "plain decimal",
        ),
        (
            "quantity without unit",
            seizures,
            Box::new(|b| b.observations[0].unit_measure.clear()),
            "observations[0].unit_measure",
            "UNIT_REQUIRED",
            "needs its UNIT_MEASURE",
        ),
        (
            "unit not allowed for drug",
            seizures,
            Box::new(|b| b.observations[0].unit_measure = "U".into()),
            "observations[0].unit_measure",
            "UNIT_NOT_ALLOWED_FOR_DRUG",
            "HEROIN is not reported in U; allowed: KG",
        ),
        (
            "no measure",
            seizures,
            Box::new(|b| {
                b.observations[0].quantity.clear();
                b.observations[0].n_seizures = None
            }),
            "observations[0]",
            "NO_MEASURE",
            "needs N_SEIZURES or QUANTITY",
        ),
        (
            "count too large",
            seizures,
            Box::new(|b| b.observations[0].n_seizures = Some(5_000_000_000)),
            "observations[0].n_seizures",
            "COUNT_TOO_LARGE",
            "at most 1000000000",
        ),
        (
            "duplicate key",
            seizures,
            Box::new(|b| {
                let o = b.observations[0].clone();
                b.observations.push(o)
            }),
            "observations[2]",
            "DUPLICATE_KEY",
            "same key as observations[0] (DRUG=HEROIN, TRANSPORT_MODE=ROAD, UNIT_MEASURE=KG)",
        ),
        (
            "embargo without time",
            seizures,
            Box::new(|b| b.observations[0].conf_status = "E".into()),
            "observations[0].embargo_time",
            "EMBARGO_TIME_REQUIRED",
            "needs an EMBARGO_TIME",
        ),
        (
            "embargo time without embargo",
            seizures,
            Box::new(|b| {
                b.observations[0].embargo_time = Some(prost_types::Timestamp {
                    seconds: 1_900_000_000,
                    nanos: 0,
                })
            }),
            "observations[0].embargo_time",
            "EMBARGO_TIME_WITHOUT_EMBARGO",
            "only allowed with CONF_STATUS E",
        ),
        (
            "receiver-set status",
            seizures,
            Box::new(|b| b.observations[0].obs_status = "Q".into()),
            "observations[0].obs_status",
            "NOT_REPORTABLE",
            "may not be submitted",
        ),
        (
            "over-long comment",
            seizures,
            Box::new(|b| b.observations[0].comment = "x".repeat(501)),
            "observations[0].comment",
            "COMMENT_TOO_LONG",
            "501 characters, at most 500",
        ),
        (
            "control character in comment",
            seizures,
            Box::new(|b| b.observations[0].comment = "line\nbreak".into()),
            "observations[0].comment",
            "COMMENT_CONTROL_CHARACTER",
            "control characters",
        ),
        (
            "too many observations",
            seizures,
            Box::new(|b| {
                b.observations = (0..10_001)
                    .map(|i| seizure("HEROIN", "KG", &i.to_string(), 1))
                    .collect()
            }),
            "observations",
            "TOO_MANY_OBSERVATIONS",
            "10001 observations, at most 10000",
        ),
        (
            "no observations",
            seizures,
            Box::new(|b| b.observations.clear()),
            "observations",
            "NO_OBSERVATIONS",
            "at least one observation",
        ),
        (
            "unsupported action",
            seizures,
            Box::new(|b| b.action = "D".into()),
            "action",
            "UNSUPPORTED_ACTION",
            "only R (replace)",
        ),
        (
            "invalid timestamp",
            seizures,
            Box::new(|b| {
                b.observations[0].conf_status = "E".into();
                b.observations[0].embargo_time = Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                })
            }),
            "observations[0].embargo_time",
            "TIMESTAMP_INVALID",
            "not a valid timestamp",
        ),
        (
            "route without destination",
            routes,
            Box::new(|b| b.observations[0].destination_area.clear()),
            "observations[0].destination_area",
            "REQUIRED",
            "DESTINATION_AREA is required",
        ),
        (
            "route without transport mode",
            routes,
            Box::new(|b| b.observations[0].transport_mode.clear()),
            "observations[0].transport_mode",
            "REQUIRED",
            "TRANSPORT_MODE is required",
        ),
        (
            "unknown transit country",
            routes,
            Box::new(|b| b.observations[0].transit_area.push("XYZ".into())),
            "observations[0].transit_area[1]",
            "UNKNOWN_CODE",
            "\"XYZ\" is not in CL_AREA",
        ),
        (
            "too many transit countries",
            routes,
            Box::new(|b| b.observations[0].transit_area = vec!["UZB".into(); 9]),
            "observations[0].transit_area",
            "TOO_MANY_TRANSIT_AREAS",
            "9 transit areas, at most 8",
        ),
    ];

    let mut wrong = Vec::new();
    for (what, base, mutate, field, reason, text) in &cases {
        let mut b = base();
        mutate(&mut b);
        let status = match client.submit(kaz.seal(&b)).await {
            Ok(_) => {
                wrong.push(format!("{what}: accepted"));
                continue;
            }
            Err(s) => s,
        };
        let details = status
            .get_details_bad_request()
            .map(|d| d.field_violations)
            .unwrap_or_default();
        let hit = details
            .iter()
            .find(|v| v.field == *field && v.reason == *reason);
        match hit {
            _ if status.code() != Code::InvalidArgument => {
                wrong.push(format!("{what}: {:?} {}", status.code(), status.message()))
            }
            None => wrong.push(format!(
                "{what}: no {field} {reason} in {:?}",
                details
                    .iter()
                    .map(|v| (&v.field, &v.reason))
                    .collect::<Vec<_>>()
            )),
            Some(v) if !v.description.contains(text) => wrong.push(format!(
                "{what}: description {:?} lacks {text:?}",
                v.description
            )),
            Some(_) if !status.message().contains(field) => wrong.push(format!(
                "{what}: message lacks the field: {}",
                status.message()
            )),
            Some(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(
        (
            gw.count("submissions").await,
            gw.count("observations").await
        ),
        (0, 0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn every_violation_comes_back_in_one_answer() {
    let dir = common::tempdir();
    let gw = Gateway::start(dir.path()).await;
    let mut b = seizures();
    b.freq = "M".into();
    b.observations[0].drug = "HEROINE".into();
    b.observations[1].quantity = "-1".into();
    b.observations[1].unit_measure = "L".into();
    b.observations
        .push(seizure("COCAINE", "KG", "1.1234567", 1));
    let status = gw
        .client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&b))
        .await
        .unwrap_err();
    let fields: Vec<_> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "time_period",
            "observations[0].drug",
            "observations[1].unit_measure",
            "observations[1].quantity",
            "observations[2].quantity"
        ]
    );
    assert!(
        status
            .message()
            .starts_with("the request breaks 5 rule(s): time_period: "),
        "{}",
        status.message()
    );

    // Thousands of problems (an unknown code in each of 3,000 rows, 2,999 of them duplicates
    // too): the details are capped to what clients accept, and say how many were left out.
    let mut b = seizures();
    b.observations = (0..3_000)
        .map(|i| seizure("HEROINE", "KG", &i.to_string(), 1))
        .collect();
    let status = gw
        .client("KAZ")
        .await
        .submit(Signer::of("KAZ").seal(&b))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_details_bad_request().unwrap().field_violations;
    let listed = details.len() - 1;
    assert!(listed >= 20, "{listed}");
    assert_eq!(
        details[listed].description,
        format!(
            "{} more violations not listed; `focalgate submit --dry-run` lists them all",
            5999 - listed
        )
    );
    let trailer_bytes: usize = status.message().len()
        + details
            .iter()
            .map(|v| v.field.len() + v.description.len() + v.reason.len())
            .sum::<usize>();
    assert!(
        trailer_bytes < 6_000,
        "the status must fit common clients' 8 KiB metadata limit: {trailer_bytes}"
    );
    assert!(
        status.message().contains("the request breaks 5999 rule(s)"),
        "{}",
        status.message()
    );
    gw.stop().await;
}
