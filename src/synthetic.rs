//! Synthetic statistics: realistic in shape, invented in every figure. They feed the README
//! walkthrough, the tests and the benchmarks, and are labelled synthetic in every row.
//!
//! The generator is deterministic (a fixed-seed SplitMix64), so the files it writes are the
//! same on every machine.

use std::{fmt::Write as _, path::Path};

/// What every generated row says in its COMMENT.
pub const LABEL: &str = "SYNTHETIC demo data - not official statistics";

/// First and last year of the samples.
pub const YEARS: std::ops::RangeInclusive<i32> = 2019..=2025;

/// SplitMix64: small, fast, good enough for synthetic figures; never for keys.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A whole number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A factor in [1 - spread, 1 + spread], in thousandths.
    fn jitter_permille(&mut self, spread_permille: u64) -> u64 {
        1000 - spread_permille + self.below(2 * spread_permille + 1)
    }
}

/// One line of a country's seizure profile: a drug in a unit, its yearly quantity (in
/// thousandths of the unit) and yearly seizure count around 2019, its trend per year in
/// percent, and the transport modes it is found in.
struct Line {
    drug: &'static str,
    unit: &'static str,
    yearly_thousandths: u64,
    yearly_seizures: u64,
    trend_percent: i64,
    modes: &'static [&'static str],
}

const fn line(
    drug: &'static str,
    unit: &'static str,
    yearly: u64,
    seizures: u64,
    trend: i64,
    modes: &'static [&'static str],
) -> Line {
    Line {
        drug,
        unit,
        yearly_thousandths: yearly * 1000,
        yearly_seizures: seizures,
        trend_percent: trend,
        modes,
    }
}

/// Invented profiles for the five Central Asian members.
const PROFILES: &[(&str, &[Line])] = &[
    (
        "KAZ",
        &[
            line(
                "CANNABIS_HERB",
                "KG",
                28_000,
                2_400,
                -2,
                &["ROAD", "RAIL", "PEDESTRIAN"],
            ),
            line("CANNABIS_RESIN", "KG", 900, 300, 0, &["ROAD", "RAIL"]),
            line("HEROIN", "KG", 300, 260, -12, &["ROAD", "RAIL"]),
            line("OPIUM", "KG", 120, 90, -10, &["ROAD"]),
            line("METHAMPHETAMINE", "KG", 40, 120, 25, &["ROAD", "POSTAL"]),
            line(
                "SYNTHETIC_CATHINONES",
                "KG",
                350,
                900,
                18,
                &["POSTAL", "ROAD", "AIR"],
            ),
            line("TRAMADOL", "U", 400_000, 150, 5, &["POSTAL", "ROAD"]),
            line("ACETIC_ANHYDRIDE", "L", 2_000, 6, 0, &["RAIL", "ROAD"]),
        ],
    ),
    (
        "KGZ",
        &[
            line(
                "CANNABIS_HERB",
                "KG",
                9_000,
                700,
                0,
                &["ROAD", "PEDESTRIAN"],
            ),
            line("CANNABIS_RESIN", "KG", 1_200, 200, -3, &["ROAD"]),
            line("HEROIN", "KG", 110, 90, -15, &["ROAD", "AIR"]),
            line("OPIUM", "KG", 60, 40, -10, &["ROAD", "PEDESTRIAN"]),
            line("METHAMPHETAMINE", "KG", 8, 30, 20, &["ROAD"]),
            line(
                "SYNTHETIC_CATHINONES",
                "KG",
                40,
                120,
                22,
                &["POSTAL", "ROAD"],
            ),
        ],
    ),
    (
        "TJK",
        &[
            line("HEROIN", "KG", 520, 140, -14, &["ROAD", "PEDESTRIAN"]),
            line("OPIUM", "KG", 1_300, 120, -12, &["PEDESTRIAN", "ROAD"]),
            line(
                "CANNABIS_RESIN",
                "KG",
                2_600,
                160,
                -4,
                &["PEDESTRIAN", "ROAD"],
            ),
            line("CANNABIS_HERB", "KG", 1_100, 210, 0, &["ROAD"]),
            line("METHAMPHETAMINE", "KG", 30, 25, 30, &["ROAD", "PEDESTRIAN"]),
        ],
    ),
    (
        "TKM",
        &[
            line("HEROIN", "KG", 90, 30, -10, &["ROAD", "RAIL"]),
            line("OPIUM", "KG", 450, 60, -12, &["ROAD", "PEDESTRIAN"]),
            line("CANNABIS_HERB", "KG", 300, 80, 0, &["ROAD"]),
            line("TRAMADOL", "U", 250_000, 90, 4, &["ROAD", "SEA"]),
            line("METHAMPHETAMINE", "KG", 12, 15, 28, &["ROAD"]),
        ],
    ),
    (
        "UZB",
        &[
            line(
                "OPIUM",
                "KG",
                1_100,
                260,
                -12,
                &["ROAD", "RAIL", "PEDESTRIAN"],
            ),
            line("HEROIN", "KG", 210, 120, -13, &["ROAD", "RAIL"]),
            line(
                "CANNABIS_HERB",
                "KG",
                2_900,
                900,
                -1,
                &["ROAD", "PEDESTRIAN"],
            ),
            line("CANNABIS_RESIN", "KG", 1_500, 240, -2, &["ROAD"]),
            line("TRAMADOL", "U", 900_000, 420, 3, &["POSTAL", "ROAD", "AIR"]),
            line("METHAMPHETAMINE", "KG", 25, 60, 24, &["ROAD", "RAIL"]),
            line("EPHEDRINE", "KG", 40, 10, 10, &["ROAD", "RAIL"]),
        ],
    ),
];

fn profile(country: &str) -> &'static [Line] {
    PROFILES
        .iter()
        .find(|(c, _)| *c == country)
        .map_or(&[], |(_, lines)| lines)
}

/// Invented trafficking routes seen by each member: drug, unit, origin, departure, transit,
/// destination, transport mode, yearly quantity (in units) and seizures around 2019.
type Route = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    u64,
    u64,
);

fn routes(country: &str) -> &'static [Route] {
    match country {
        "KAZ" => &[
            (
                "HEROIN",
                "KG",
                "AFG",
                "AFG",
                &["TJK", "KGZ"],
                "RUS",
                "ROAD",
                160,
                40,
            ),
            ("HEROIN", "KG", "AFG", "UZB", &[], "RUS", "RAIL", 60, 15),
            (
                "CANNABIS_HERB",
                "KG",
                "KAZ",
                "KAZ",
                &[],
                "RUS",
                "ROAD",
                4_000,
                220,
            ),
            (
                "METHAMPHETAMINE",
                "KG",
                "AFG",
                "AFG",
                &["TKM", "UZB"],
                "KAZ",
                "ROAD",
                20,
                18,
            ),
            (
                "SYNTHETIC_CATHINONES",
                "KG",
                "_U",
                "CHN",
                &[],
                "KAZ",
                "POSTAL",
                120,
                300,
            ),
            (
                "ACETIC_ANHYDRIDE",
                "L",
                "_U",
                "CHN",
                &["UZB"],
                "AFG",
                "RAIL",
                1_500,
                4,
            ),
        ],
        "KGZ" => &[
            (
                "HEROIN",
                "KG",
                "AFG",
                "AFG",
                &["TJK"],
                "KAZ",
                "ROAD",
                70,
                25,
            ),
            (
                "CANNABIS_HERB",
                "KG",
                "KGZ",
                "KGZ",
                &[],
                "KAZ",
                "ROAD",
                1_800,
                90,
            ),
            (
                "OPIUM",
                "KG",
                "AFG",
                "TJK",
                &[],
                "KGZ",
                "PEDESTRIAN",
                30,
                12,
            ),
        ],
        "TJK" => &[
            ("HEROIN", "KG", "AFG", "AFG", &[], "RUS", "ROAD", 300, 50),
            (
                "OPIUM",
                "KG",
                "AFG",
                "AFG",
                &[],
                "TJK",
                "PEDESTRIAN",
                900,
                60,
            ),
            (
                "CANNABIS_RESIN",
                "KG",
                "AFG",
                "AFG",
                &["KGZ", "KAZ"],
                "RUS",
                "ROAD",
                1_600,
                40,
            ),
            (
                "METHAMPHETAMINE",
                "KG",
                "AFG",
                "AFG",
                &[],
                "_U",
                "PEDESTRIAN",
                20,
                8,
            ),
        ],
        "TKM" => &[
            ("HEROIN", "KG", "AFG", "AFG", &[], "TUR", "ROAD", 50, 10),
            (
                "OPIUM",
                "KG",
                "AFG",
                "AFG",
                &[],
                "TKM",
                "PEDESTRIAN",
                300,
                25,
            ),
            (
                "TRAMADOL",
                "U",
                "IND",
                "IRN",
                &[],
                "TKM",
                "ROAD",
                200_000,
                30,
            ),
        ],
        "UZB" => &[
            (
                "OPIUM",
                "KG",
                "AFG",
                "AFG",
                &[],
                "UZB",
                "PEDESTRIAN",
                700,
                90,
            ),
            (
                "HEROIN",
                "KG",
                "AFG",
                "AFG",
                &["TJK"],
                "KAZ",
                "RAIL",
                110,
                30,
            ),
            ("HEROIN", "KG", "AFG", "TKM", &[], "RUS", "ROAD", 60, 20),
            (
                "TRAMADOL",
                "U",
                "IND",
                "_U",
                &[],
                "UZB",
                "POSTAL",
                500_000,
                200,
            ),
            (
                "ACETIC_ANHYDRIDE",
                "L",
                "_U",
                "KAZ",
                &[],
                "AFG",
                "RAIL",
                1_200,
                3,
            ),
        ],
        _ => &[],
    }
}

/// The members whose samples are generated.
pub const SAMPLE_MEMBERS: [&str; 5] = ["KAZ", "KGZ", "TJK", "TKM", "UZB"];

const SEIZURES_HEADER: &str = "STRUCTURE,STRUCTURE_ID,ACTION,REF_AREA,FREQ,TIME_PERIOD,DRUG,TRANSPORT_MODE,UNIT_MEASURE,N_SEIZURES,QUANTITY,OBS_STATUS,CONF_STATUS,EMBARGO_TIME,COMMENT\n";
const ROUTES_HEADER: &str = "STRUCTURE[;],STRUCTURE_ID,ACTION,REF_AREA,FREQ,TIME_PERIOD,DRUG,ORIGIN_AREA,DEPARTURE_AREA,TRANSIT_AREA,DESTINATION_AREA,TRANSPORT_MODE,UNIT_MEASURE,N_SEIZURES,QUANTITY,OBS_STATUS,CONF_STATUS,COMMENT\n";

/// Applies a yearly trend in percent over `years` years to a base figure.
fn trended(base: u64, trend_percent: i64, years: i32) -> u64 {
    let mut v = base as i128;
    for _ in 0..years {
        v = v * (100 + i128::from(trend_percent)) / 100;
    }
    v.max(0) as u64
}

/// A thousandths figure as a decimal string, whole units for countable units.
fn quantity(thousandths: u64, unit: &str) -> String {
    if matches!(unit, "U" | "PLANT" | "DOSE") {
        (thousandths / 1000).max(1).to_string()
    } else {
        let s = format!("{}.{:03}", thousandths / 1000, thousandths % 1000);
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Quarterly SEIZURES for one member over [`YEARS`], as SDMX-CSV.
pub fn seizures_csv(country: &str) -> String {
    let mut rng = Rng::new(seed(country, 1));
    let mut out = String::from(SEIZURES_HEADER);
    for year in YEARS {
        let obs_status = if year == *YEARS.end() { "P" } else { "A" };
        for quarter in 1..=4 {
            for l in profile(country) {
                let yearly = trended(l.yearly_thousandths, l.trend_percent, year - YEARS.start());
                let yearly_n =
                    trended(l.yearly_seizures, l.trend_percent / 2, year - YEARS.start());
                for (m, mode) in l.modes.iter().enumerate() {
                    // The first mode carries most of the traffic.
                    let share = if m == 0 {
                        600
                    } else {
                        400 / (l.modes.len() as u64 - 1).max(1)
                    };
                    let q = yearly / 4 * share / 1000 * rng.jitter_permille(300) / 1000;
                    let n = (yearly_n / 4 * share / 1000 * rng.jitter_permille(250) / 1000).max(1);
                    let (conf, embargo) = match (country, year, quarter, l.drug) {
                        ("UZB", 2025, 4, "METHAMPHETAMINE") => ("E", "2027-01-01T00:00:00Z"),
                        ("TKM", _, _, "TRAMADOL") if *mode == "SEA" => ("C", ""),
                        _ => ("F", ""),
                    };
                    let _ = writeln!(
                        out,
                        "dataflow,FOCALGATE:SEIZURES(1.0),R,{country},Q,{year}-Q{quarter},{},{mode},{},{n},{},{obs_status},{conf},{embargo},{LABEL}",
                        l.drug,
                        l.unit,
                        quantity(q, l.unit)
                    );
                }
            }
        }
    }
    out
}

/// Annual ROUTES for one member over [`YEARS`], as SDMX-CSV.
pub fn routes_csv(country: &str) -> String {
    let mut rng = Rng::new(seed(country, 2));
    let mut out = String::from(ROUTES_HEADER);
    for year in YEARS {
        let obs_status = if year == *YEARS.end() { "P" } else { "A" };
        for &(drug, unit, origin, departure, transit, destination, mode, yearly, seizures) in
            routes(country)
        {
            let trend = if drug == "METHAMPHETAMINE" {
                25
            } else if matches!(drug, "HEROIN" | "OPIUM") {
                -12
            } else {
                0
            };
            let q = trended(yearly * 1000, trend, year - YEARS.start()) * rng.jitter_permille(300)
                / 1000;
            let n = (trended(seizures, trend / 2, year - YEARS.start()) * rng.jitter_permille(250)
                / 1000)
                .max(1);
            let _ = writeln!(
                out,
                "dataflow,FOCALGATE:ROUTES(1.0),R,{country},A,{year},{drug},{origin},{departure},{},{destination},{mode},{unit},{n},{},{obs_status},F,{LABEL}",
                transit.join(";"),
                quantity(q, unit)
            );
        }
    }
    out
}

fn seed(country: &str, salt: u64) -> u64 {
    country
        .bytes()
        .fold(salt.wrapping_mul(0x1000_0000_01b3), |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Writes `<ISO3>-SEIZURES.csv` and `<ISO3>-ROUTES.csv` for each sample member into `out`.
pub fn write_samples(out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    for country in SAMPLE_MEMBERS {
        std::fs::write(
            out.join(format!("{country}-SEIZURES.csv")),
            seizures_csv(country),
        )?;
        std::fs::write(
            out.join(format!("{country}-ROUTES.csv")),
            routes_csv(country),
        )?;
    }
    Ok(())
}
