//! The common, SDMX-aligned schema: dataflows, code lists and validation.
//!
//! A [`SubmissionBody`] that passes [`validate`] becomes a [`ValidSubmission`], the only form in
//! which observations reach the store. Validation never stops at the first problem: it returns
//! every [`Violation`], each with its field path (`observations[3].unit_measure`) and the
//! [`Rule`] broken.
//!
//! | dataflow   | key dimensions                                                             |
//! |------------|----------------------------------------------------------------------------|
//! | `SEIZURES` | DRUG, TRANSPORT_MODE (optional), UNIT_MEASURE                               |
//! | `ROUTES`   | DRUG, ORIGIN_AREA, DEPARTURE_AREA, TRANSIT_AREA…, DESTINATION_AREA, TRANSPORT_MODE, UNIT_MEASURE |
//!
//! Both dataflows are reported by REF_AREA for one FREQ and TIME_PERIOD, carry the measures
//! N_SEIZURES (a count) and QUANTITY (an exact decimal in UNIT_MEASURE), and the attributes
//! OBS_STATUS, CONF_STATUS, EMBARGO_TIME and COMMENT.

mod codelist;
mod decimal;
mod period;
pub mod structure;
pub mod wire;

use std::{collections::HashMap, fmt, sync::Arc};

use time::OffsetDateTime;

pub use codelist::{
    Code, CodeList, CodeListError, CodeLists, MAX_REPORTING_AREAS, NOT_APPLICABLE, TOTAL,
};
pub use decimal::{
    MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS, Quantity, QuantityError, format_millionths,
};
pub use period::{FIRST_YEAR, Frequency, Period, PeriodError};

use crate::proto::{Observation, SubmissionBody};

/// Largest N_SEIZURES accepted in one observation.
pub const MAX_SEIZURES: u64 = 1_000_000_000;

/// The DSSE payload type of a serialised [`SubmissionBody`].
pub const SUBMISSION_PAYLOAD_TYPE: &str = "application/vnd.focalgate.submission.v1+protobuf";

/// A dataflow: what kind of statistics a submission carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dataflow {
    /// Seizures by drug and transport mode.
    Seizures,
    /// Trafficking routes: origin, departure, transit and destination of seized consignments.
    Routes,
}

impl Dataflow {
    /// Both dataflows.
    pub const ALL: [Dataflow; 2] = [Dataflow::Seizures, Dataflow::Routes];

    /// The dataflow id, e.g. `SEIZURES`.
    pub fn id(self) -> &'static str {
        match self {
            Self::Seizures => "SEIZURES",
            Self::Routes => "ROUTES",
        }
    }

    /// Parses a dataflow id.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.id() == id)
    }
}

impl fmt::Display for Dataflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Bounds on what one submission may carry.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most observations in one submission.
    pub max_observations: usize,
    /// Most TRANSIT_AREA entries in one route observation.
    pub max_transit: usize,
    /// Most characters in a COMMENT.
    pub max_comment_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_observations: 10_000,
            max_transit: 8,
            max_comment_chars: 500,
        }
    }
}

/// The rule a [`Violation`] breaks. Its [`name`](Rule::name) is stable and part of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A required field is empty.
    Required,
    /// A code that is not in the field's code list.
    UnknownCode,
    /// A code that exists but may not be submitted (a drug group, a receiver-set status).
    NotReportable,
    /// A field that does not belong to the submission's dataflow.
    NotInDataflow,
    /// A TIME_PERIOD in none of the accepted forms.
    PeriodMalformed,
    /// A TIME_PERIOD of another frequency than FREQ.
    PeriodFrequency,
    /// A TIME_PERIOD that starts after today.
    PeriodInFuture,
    /// A negative QUANTITY.
    QuantityNegative,
    /// A QUANTITY with more fractional digits than allowed.
    QuantityOverPrecise,
    /// A QUANTITY with more integer digits than allowed.
    QuantityTooLarge,
    /// A QUANTITY that is not a plain decimal.
    QuantityMalformed,
    /// An N_SEIZURES above [`MAX_SEIZURES`].
    CountTooLarge,
    /// A QUANTITY without UNIT_MEASURE.
    UnitRequired,
    /// A UNIT_MEASURE the drug may not be reported in.
    UnitNotAllowed,
    /// Neither N_SEIZURES nor QUANTITY, and no "missing value" OBS_STATUS.
    NoMeasure,
    /// Two observations with the same key.
    DuplicateKey,
    /// CONF_STATUS `E` without EMBARGO_TIME.
    EmbargoTimeRequired,
    /// EMBARGO_TIME without CONF_STATUS `E`.
    EmbargoTimeUnexpected,
    /// A COMMENT over the length limit.
    CommentTooLong,
    /// A COMMENT with control characters.
    CommentControlCharacter,
    /// More observations than allowed.
    TooManyObservations,
    /// More transit countries than allowed.
    TooManyTransitAreas,
    /// No observations at all.
    NoObservations,
    /// An ACTION other than `R`.
    UnsupportedAction,
    /// A REF_AREA that is not the sender's country.
    ReporterNotSender,
    /// A timestamp outside the representable range.
    TimestampInvalid,
    /// The envelope's payload_type is not a submission.
    EnvelopeType,
    /// The envelope's signatures are missing, too many, or do not verify.
    EnvelopeSignature,
    /// No signature is by a signing certificate that may sign for the sender.
    EnvelopeSigner,
    /// The payload is not a serialised SubmissionBody.
    PayloadMalformed,
    /// The signed payload carries a field the schema does not define.
    UnknownField,
    /// A number outside what the request may name (a tree size, an index).
    OutOfRange,
    /// A certificate signing request that cannot be honoured.
    CertificateRequest,
    /// A policy that does not load.
    PolicyInvalid,
}

impl Rule {
    /// The stable, kebab-case name of the rule.
    pub fn name(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::UnknownCode => "unknown-code",
            Self::NotReportable => "not-reportable",
            Self::NotInDataflow => "not-in-dataflow",
            Self::PeriodMalformed => "period-malformed",
            Self::PeriodFrequency => "period-not-matching-freq",
            Self::PeriodInFuture => "period-in-future",
            Self::QuantityNegative => "quantity-negative",
            Self::QuantityOverPrecise => "quantity-over-precise",
            Self::QuantityTooLarge => "quantity-too-large",
            Self::QuantityMalformed => "quantity-malformed",
            Self::CountTooLarge => "count-too-large",
            Self::UnitRequired => "unit-required",
            Self::UnitNotAllowed => "unit-not-allowed-for-drug",
            Self::NoMeasure => "no-measure",
            Self::DuplicateKey => "duplicate-key",
            Self::EmbargoTimeRequired => "embargo-time-required",
            Self::EmbargoTimeUnexpected => "embargo-time-without-embargo",
            Self::CommentTooLong => "comment-too-long",
            Self::CommentControlCharacter => "comment-control-character",
            Self::TooManyObservations => "too-many-observations",
            Self::TooManyTransitAreas => "too-many-transit-areas",
            Self::NoObservations => "no-observations",
            Self::UnsupportedAction => "unsupported-action",
            Self::ReporterNotSender => "reporter-not-sender",
            Self::TimestampInvalid => "timestamp-invalid",
            Self::EnvelopeType => "envelope-payload-type",
            Self::EnvelopeSignature => "envelope-signature",
            Self::EnvelopeSigner => "envelope-signer",
            Self::PayloadMalformed => "payload-malformed",
            Self::UnknownField => "unknown-field",
            Self::OutOfRange => "out-of-range",
            Self::CertificateRequest => "certificate-request",
            Self::PolicyInvalid => "policy-invalid",
        }
    }
}

/// One problem with a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending field, e.g. `observations[3].unit_measure`.
    pub field: String,
    /// The rule broken.
    pub rule: Rule,
    /// What exactly is wrong, for a person.
    pub detail: String,
}

impl Violation {
    /// A violation of `rule` at `field`.
    pub fn new(field: impl Into<String>, rule: Rule, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule,
            detail: detail.into(),
        }
    }
}

/// A value from a request, quoted for an error message and cut to a few characters: a status
/// travels in HTTP/2 trailers that common clients cap at 8 KiB, so no value is echoed whole.
/// `Echo("HEROINE")` shows `"HEROINE"`; a 20,000-digit quantity shows its first 32 characters
/// and its length. Control characters are escaped.
#[derive(Clone, Copy, Debug)]
pub struct Echo<'a>(pub &'a str);

impl Echo<'_> {
    /// Characters shown whole; longer values show [`Self::SHOWN`] of them.
    pub const WHOLE: usize = 40;
    /// Characters shown of a longer value.
    pub const SHOWN: usize = 32;
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.chars().count();
        let shown = if count > Self::WHOLE {
            Self::SHOWN
        } else {
            count
        };
        f.write_str("\"")?;
        for c in self.0.chars().take(shown) {
            write!(f, "{}", c.escape_debug())?;
        }
        if shown < count {
            write!(f, "…\" ({count} characters)")
        } else {
            f.write_str("\"")
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.detail, self.rule.name())
    }
}

/// A submission that passed validation. Built only by [`validate`] (outside this crate too:
/// the type is non-exhaustive).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidSubmission {
    /// The dataflow.
    pub dataflow: Dataflow,
    /// Reporting country (ISO 3166-1 alpha-3).
    pub ref_area: String,
    /// Reporting period; its frequency is FREQ.
    pub period: Period,
    /// Optimistic lock on the current revision, if the sender set one.
    pub supersedes_revision: Option<u32>,
    /// The observations, in submission order; shared with the record the store writes.
    pub observations: Arc<[ValidObservation]>,
}

/// One validated observation. Optional dimensions are `None` when not given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidObservation {
    /// CL_DRUG code.
    pub drug: String,
    /// CL_TRANSPORT_MODE code.
    pub transport_mode: Option<String>,
    /// ROUTES: origin area.
    pub origin_area: Option<String>,
    /// ROUTES: departure area.
    pub departure_area: Option<String>,
    /// ROUTES: transit areas in travel order.
    pub transit_area: Vec<String>,
    /// ROUTES: destination area.
    pub destination_area: Option<String>,
    /// N_SEIZURES.
    pub n_seizures: Option<u64>,
    /// QUANTITY.
    pub quantity: Option<Quantity>,
    /// UNIT_MEASURE.
    pub unit_measure: Option<String>,
    /// OBS_STATUS (defaults to `A`).
    pub obs_status: String,
    /// CONF_STATUS (defaults to `F`).
    pub conf_status: String,
    /// EMBARGO_TIME, present exactly when CONF_STATUS is `E`.
    pub embargo_time: Option<OffsetDateTime>,
    /// COMMENT.
    pub comment: Option<String>,
}

/// Validates a submission body against the schema, collecting every violation.
///
/// `now` decides which periods lie in the future.
pub fn validate(
    body: &SubmissionBody,
    lists: &CodeLists,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<ValidSubmission, Vec<Violation>> {
    let mut v = Violations::default();

    let dataflow = match body.dataflow.as_str() {
        "" => v.push(
            "dataflow",
            Rule::Required,
            "dataflow is required (SEIZURES or ROUTES)",
        ),
        id => Dataflow::from_id(id).or_else(|| {
            v.push(
                "dataflow",
                Rule::UnknownCode,
                format!("{} is not a dataflow (SEIZURES or ROUTES)", Echo(id)),
            )
        }),
    };

    let ref_area = reporter(&mut v, body, lists);
    let period = period(&mut v, body, lists, now);
    header(&mut v, body);
    let observations = observations(&mut v, body, dataflow, lists, limits);

    match (v.0.is_empty(), dataflow, ref_area, period) {
        (true, Some(dataflow), Some(ref_area), Some(period)) => Ok(ValidSubmission {
            dataflow,
            ref_area: ref_area.to_owned(),
            period,
            supersedes_revision: body.supersedes_revision,
            observations: observations.into(),
        }),
        _ => Err(v.0),
    }
}

/// REF_AREA: a country of CL_AREA.
fn reporter<'a>(
    v: &mut Violations,
    body: &'a SubmissionBody,
    lists: &CodeLists,
) -> Option<&'a str> {
    let ref_area = v.code("ref_area", &body.ref_area, &lists.area, true);
    if let Some(code) = ref_area.and_then(|c| lists.area.get(c))
        && code.alpha2.is_none()
    {
        v.push::<()>(
            "ref_area",
            Rule::NotReportable,
            format!("{} is not a country and cannot report", code.id),
        );
    }

    ref_area
}

/// FREQ and TIME_PERIOD: a period of that frequency, not starting after `now`.
fn period(
    v: &mut Violations,
    body: &SubmissionBody,
    lists: &CodeLists,
    now: OffsetDateTime,
) -> Option<Period> {
    let freq = v
        .code("freq", &body.freq, &lists.freq, true)
        .and_then(Frequency::from_code);
    let period = match (body.time_period.as_str(), freq) {
        ("", _) => v.push("time_period", Rule::Required, "time_period is required"),
        (s, Some(freq)) => match Period::parse_with(s, freq) {
            Ok(p) => Some(p),
            Err(e @ PeriodError::FrequencyMismatch { .. }) => {
                v.push("time_period", Rule::PeriodFrequency, e.to_string())
            }
            Err(e) => v.push("time_period", Rule::PeriodMalformed, e.to_string()),
        },
        (s, None) => Period::parse(s)
            .map_err(|e| v.push::<()>("time_period", Rule::PeriodMalformed, e.to_string()))
            .ok(),
    };
    if let Some(p) = period
        && p.start() > now.date()
    {
        v.push::<()>(
            "time_period",
            Rule::PeriodInFuture,
            format!("{p} starts on {}, after today", p.start()),
        );
    }

    period
}

/// ACTION (R only) and PREPARED_AT (a timestamp, when given).
fn header(v: &mut Violations, body: &SubmissionBody) {
    match body.action.as_str() {
        "R" => {}
        "" => {
            v.push::<()>(
                "action",
                Rule::Required,
                "action is required: R (replace the reporter's figures for this period)",
            );
        }
        other => {
            v.push::<()>(
                "action",
                Rule::UnsupportedAction,
                format!(
                    "action {} is not supported; only R (replace) is accepted",
                    Echo(other)
                ),
            );
        }
    }
    if let Some(ts) = &body.prepared_at {
        v.timestamp("prepared_at", ts);
    }
}

/// The observations: at least one, at most `limits.max_observations`, each valid in the
/// dataflow (when it is known) and no two with the same key. Only the valid ones are returned.
fn observations(
    v: &mut Violations,
    body: &SubmissionBody,
    dataflow: Option<Dataflow>,
    lists: &CodeLists,
    limits: &Limits,
) -> Vec<ValidObservation> {
    let mut observations = Vec::new();
    if body.observations.is_empty() {
        v.push::<()>(
            "observations",
            Rule::NoObservations,
            "a submission needs at least one observation",
        );
    } else if body.observations.len() > limits.max_observations {
        v.push::<()>(
            "observations",
            Rule::TooManyObservations,
            format!(
                "{} observations, at most {} allowed",
                body.observations.len(),
                limits.max_observations
            ),
        );
    } else if let Some(dataflow) = dataflow {
        observations.reserve(body.observations.len());
        let mut keys: HashMap<Vec<&str>, usize> = HashMap::with_capacity(body.observations.len());
        for (i, obs) in body.observations.iter().enumerate() {
            if let Some(valid) = observation(v, i, obs, dataflow, lists, limits) {
                observations.push(valid);
            }
            let key = observation_key(obs, dataflow);
            if let Some(first) = keys.insert(key, i) {
                v.push::<()>(
                    At::observation(i, ""),
                    Rule::DuplicateKey,
                    format!(
                        "same key as observations[{first}] ({})",
                        describe_key(obs, dataflow)
                    ),
                );
            }
        }
    }

    observations
}

/// The dimensions that identify an observation within one submission.
fn observation_key(obs: &Observation, dataflow: Dataflow) -> Vec<&str> {
    let mut key = vec![
        obs.drug.as_str(),
        obs.transport_mode.as_str(),
        obs.unit_measure.as_str(),
    ];
    if dataflow == Dataflow::Routes {
        key.extend([
            obs.origin_area.as_str(),
            obs.departure_area.as_str(),
            obs.destination_area.as_str(),
        ]);
        key.extend(obs.transit_area.iter().map(String::as_str));
    }
    key
}

fn describe_key(obs: &Observation, dataflow: Dataflow) -> String {
    let mut parts = vec![format!("DRUG={}", obs.drug)];
    if dataflow == Dataflow::Routes {
        parts.push(format!("ORIGIN_AREA={}", obs.origin_area));
        if !obs.departure_area.is_empty() {
            parts.push(format!("DEPARTURE_AREA={}", obs.departure_area));
        }
        if !obs.transit_area.is_empty() {
            parts.push(format!("TRANSIT_AREA={}", obs.transit_area.join(";")));
        }
        parts.push(format!("DESTINATION_AREA={}", obs.destination_area));
    }
    if !obs.transport_mode.is_empty() {
        parts.push(format!("TRANSPORT_MODE={}", obs.transport_mode));
    }
    if !obs.unit_measure.is_empty() {
        parts.push(format!("UNIT_MEASURE={}", obs.unit_measure));
    }
    parts.join(", ")
}

/// One observation checked against its dataflow, the code lists and the limits: every
/// violation is recorded in `v`, and the observation is returned only if it had none.
fn observation(
    v: &mut Violations,
    index: usize,
    obs: &Observation,
    dataflow: Dataflow,
    lists: &CodeLists,
    limits: &Limits,
) -> Option<ValidObservation> {
    let before = v.0.len();
    let field = |name: &'static str| At::observation(index, name);

    let drug = v.code(field("drug"), &obs.drug, &lists.drug, true);
    let transport_mode = v.code(
        field("transport_mode"),
        &obs.transport_mode,
        &lists.transport_mode,
        dataflow == Dataflow::Routes,
    );
    let route = route(v, index, obs, dataflow, lists, limits);
    let (unit, quantity) = measures(v, index, obs, drug, lists);
    let (obs_status, conf_status, embargo_time) = statuses(v, index, obs, lists);
    let comment = comment(v, index, obs, limits);

    if v.0.len() > before {
        return None;
    }
    Some(ValidObservation {
        drug: drug?.to_owned(),
        transport_mode: transport_mode.map(str::to_owned),
        origin_area: route.origin.map(str::to_owned),
        departure_area: route.departure.map(str::to_owned),
        transit_area: route.transit,
        destination_area: route.destination.map(str::to_owned),
        n_seizures: obs.n_seizures,
        quantity,
        unit_measure: unit.map(str::to_owned),
        obs_status: obs_status?.to_owned(),
        conf_status: conf_status?.to_owned(),
        embargo_time,
        comment,
    })
}

/// The route dimensions of an observation, as checked.
#[derive(Default)]
struct Route<'a> {
    origin: Option<&'a str>,
    departure: Option<&'a str>,
    destination: Option<&'a str>,
    transit: Vec<String>,
}

/// The route of a ROUTES observation (origin and destination required, at most
/// `limits.max_transit` transit areas, each in CL_AREA); in another dataflow, none may be given.
fn route<'a>(
    v: &mut Violations,
    index: usize,
    obs: &'a Observation,
    dataflow: Dataflow,
    lists: &CodeLists,
    limits: &Limits,
) -> Route<'a> {
    let field = |name: &'static str| At::observation(index, name);
    if dataflow != Dataflow::Routes {
        for (name, given) in [
            ("origin_area", !obs.origin_area.is_empty()),
            ("departure_area", !obs.departure_area.is_empty()),
            ("transit_area", !obs.transit_area.is_empty()),
            ("destination_area", !obs.destination_area.is_empty()),
        ] {
            if given {
                v.push::<()>(
                    field(name),
                    Rule::NotInDataflow,
                    format!("{} is not a dimension of {dataflow}", name.to_uppercase()),
                );
            }
        }
        return Route::default();
    }
    let mut route = Route {
        origin: v.code(field("origin_area"), &obs.origin_area, &lists.area, true),
        departure: v.code(
            field("departure_area"),
            &obs.departure_area,
            &lists.area,
            false,
        ),
        destination: v.code(
            field("destination_area"),
            &obs.destination_area,
            &lists.area,
            true,
        ),
        transit: Vec::new(),
    };
    if obs.transit_area.len() > limits.max_transit {
        v.push::<()>(
            field("transit_area"),
            Rule::TooManyTransitAreas,
            format!(
                "{} transit areas, at most {} allowed",
                obs.transit_area.len(),
                limits.max_transit
            ),
        );
        return route;
    }
    for (j, area) in obs.transit_area.iter().enumerate() {
        let at = At {
            index,
            field: "transit_area",
            item: Some(j),
        };
        if let Some(code) = v.code(at, area, &lists.area, true) {
            route.transit.push(code.to_owned());
        }
    }
    route
}

/// The unit and quantity: the unit in CL_UNIT_MEASURE and one the drug is reported in, a
/// quantity that parses and has its unit, a seizure count within bounds.
fn measures<'a>(
    v: &mut Violations,
    index: usize,
    obs: &'a Observation,
    drug: Option<&str>,
    lists: &CodeLists,
) -> (Option<&'a str>, Option<Quantity>) {
    let field = |name: &'static str| At::observation(index, name);
    let unit = v.code(
        field("unit_measure"),
        &obs.unit_measure,
        &lists.unit_measure,
        false,
    );
    if let (Some(unit), Some(drug)) = (unit, drug.and_then(|d| lists.drug.get(d)))
        && drug.reportable
        && !drug.units.iter().any(|u| u == unit)
    {
        v.push::<()>(
            field("unit_measure"),
            Rule::UnitNotAllowed,
            format!(
                "{} is not reported in {unit}; allowed: {}",
                drug.id,
                drug.units.join(", ")
            ),
        );
    }
    let quantity = match obs.quantity.as_str() {
        "" => None,
        s => match s.parse::<Quantity>() {
            Ok(q) => Some(q),
            Err(e) => {
                let rule = match e {
                    QuantityError::Negative => Rule::QuantityNegative,
                    QuantityError::OverPrecise => Rule::QuantityOverPrecise,
                    QuantityError::TooLarge => Rule::QuantityTooLarge,
                    QuantityError::Malformed => Rule::QuantityMalformed,
                };
                v.push(field("quantity"), rule, format!("{}: {e}", Echo(s)))
            }
        },
    };
    if !obs.quantity.is_empty() && obs.unit_measure.is_empty() {
        v.push::<()>(
            field("unit_measure"),
            Rule::UnitRequired,
            "a QUANTITY needs its UNIT_MEASURE",
        );
    }
    if let Some(n) = obs.n_seizures.filter(|&n| n > MAX_SEIZURES) {
        v.push::<()>(
            field("n_seizures"),
            Rule::CountTooLarge,
            format!("{n} seizures, at most {MAX_SEIZURES} allowed"),
        );
    }
    (unit, quantity)
}

/// OBS_STATUS (A when not given; a measure needed unless it means a missing value),
/// CONF_STATUS (F when not given) and EMBARGO_TIME (with CONF_STATUS E, and only then).
fn statuses<'a>(
    v: &mut Violations,
    index: usize,
    obs: &'a Observation,
    lists: &CodeLists,
) -> (
    Option<&'a str>,
    Option<&'a str>,
    Option<time::OffsetDateTime>,
) {
    let field = |name: &'static str| At::observation(index, name);
    let obs_status = match obs.obs_status.as_str() {
        "" => Some("A"),
        s => v.code(field("obs_status"), s, &lists.obs_status, true),
    };
    let missing = obs_status
        .and_then(|s| lists.obs_status.get(s))
        .is_some_and(|c| c.missing);
    if obs.n_seizures.is_none() && obs.quantity.is_empty() && !missing {
        v.push::<()>(
            field(""),
            Rule::NoMeasure,
            "an observation needs N_SEIZURES or QUANTITY, or an OBS_STATUS meaning a missing value",
        );
    }

    let conf_status = match obs.conf_status.as_str() {
        "" => Some("F"),
        s => v.code(field("conf_status"), s, &lists.conf_status, true),
    };
    let embargo_time = obs
        .embargo_time
        .as_ref()
        .and_then(|ts| v.timestamp(field("embargo_time"), ts));
    match (conf_status, &obs.embargo_time) {
        (Some("E"), None) => {
            v.push::<()>(
                field("embargo_time"),
                Rule::EmbargoTimeRequired,
                "CONF_STATUS E (embargo) needs an EMBARGO_TIME",
            );
        }
        (Some(s), Some(_)) if s != "E" => {
            v.push::<()>(
                field("embargo_time"),
                Rule::EmbargoTimeUnexpected,
                format!("EMBARGO_TIME is only allowed with CONF_STATUS E, not {s}"),
            );
        }
        _ => {}
    }
    (obs_status, conf_status, embargo_time)
}

/// The comment: at most `limits.max_comment_chars` characters, no control characters.
fn comment(v: &mut Violations, index: usize, obs: &Observation, limits: &Limits) -> Option<String> {
    let field = || At::observation(index, "comment");
    let c = obs.comment.as_str();
    if c.is_empty() {
        return None;
    }
    let chars = c.chars().count();
    if chars > limits.max_comment_chars {
        v.push::<()>(
            field(),
            Rule::CommentTooLong,
            format!(
                "{chars} characters, at most {} allowed",
                limits.max_comment_chars
            ),
        );
    }
    if c.chars().any(char::is_control) {
        v.push::<()>(
            field(),
            Rule::CommentControlCharacter,
            "control characters (such as line breaks) are not allowed",
        );
    }
    Some(c.to_owned())
}

/// Collects violations; helpers return `None` after recording one.
#[derive(Default)]
struct Violations(Vec<Violation>);

impl Violations {
    fn push<T>(
        &mut self,
        field: impl fmt::Display,
        rule: Rule,
        detail: impl Into<String>,
    ) -> Option<T> {
        self.0.push(Violation::new(field.to_string(), rule, detail));
        None
    }

    /// Checks `value` against `list`; an empty value is `None`, or a violation if `required`.
    fn code<'a>(
        &mut self,
        field: impl fmt::Display,
        value: &'a str,
        list: &CodeList,
        required: bool,
    ) -> Option<&'a str> {
        if value.is_empty() {
            if required {
                let field = field.to_string();
                let detail = format!("{} is required ({})", field_name(&field), list);
                self.push::<()>(field, Rule::Required, detail);
            }
            return None;
        }
        match list.get(value) {
            Some(code) if code.reportable => Some(value),
            Some(code) => self.push(
                field,
                Rule::NotReportable,
                format!("{} ({}) may not be submitted", code.id, code.name),
            ),
            None => {
                let hint = match list.get(&value.to_ascii_uppercase()) {
                    Some(code) if code.id != value => format!("; did you mean {}?", code.id),
                    _ => String::new(),
                };
                self.push(
                    field,
                    Rule::UnknownCode,
                    format!("{} is not in {list}{hint}", Echo(value)),
                )
            }
        }
    }

    fn timestamp(
        &mut self,
        field: impl fmt::Display,
        ts: &prost_types::Timestamp,
    ) -> Option<OffsetDateTime> {
        let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) if (0..1_000_000_000).contains(&ts.nanos) => Some(t),
            _ => self.push(field, Rule::TimestampInvalid, "not a valid timestamp"),
        }
    }
}

/// The path of a field of one observation, written out only when a violation needs it:
/// `observations[3]`, `observations[3].unit_measure`, `observations[3].transit_area[1]`.
#[derive(Clone, Copy)]
struct At {
    index: usize,
    field: &'static str,
    item: Option<usize>,
}

impl At {
    fn observation(index: usize, field: &'static str) -> Self {
        Self {
            index,
            field,
            item: None,
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "observations[{}]", self.index)?;
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        match self.item {
            Some(j) => write!(f, "[{j}]"),
            None => Ok(()),
        }
    }
}

/// `observations[3].unit_measure` → `UNIT_MEASURE`.
fn field_name(path: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last);
    last.to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn obs(drug: &str, unit: &str, quantity: &str) -> Observation {
        Observation {
            drug: drug.into(),
            unit_measure: unit.into(),
            quantity: quantity.into(),
            ..Default::default()
        }
    }

    fn submission(observations: Vec<Observation>) -> SubmissionBody {
        SubmissionBody {
            dataflow: "SEIZURES".into(),
            ref_area: "KAZ".into(),
            freq: "Q".into(),
            time_period: "2026-Q4".into(),
            action: "R".into(),
            observations,
            ..Default::default()
        }
    }

    fn check(body: &SubmissionBody) -> Result<ValidSubmission, Vec<Violation>> {
        validate(
            body,
            &CodeLists::builtin().unwrap(),
            &Limits::default(),
            NOW,
        )
    }

    #[test]
    fn a_valid_submission_is_typed_with_defaults() {
        let v = check(&submission(vec![
            obs("HEROIN", "KG", "001.250"),
            obs("MDMA", "U", "2000"),
        ]))
        .unwrap();
        assert_eq!(
            (v.dataflow, v.ref_area.as_str(), v.period.to_string()),
            (Dataflow::Seizures, "KAZ", "2026-Q4".into())
        );
        let o = &v.observations[0];
        assert_eq!(o.quantity.map(|q| q.millionths()), Some(1_250_000));
        assert_eq!(
            (
                o.obs_status.as_str(),
                o.conf_status.as_str(),
                o.transport_mode.as_deref()
            ),
            ("A", "F", None)
        );
    }

    #[test]
    fn the_current_period_is_accepted_the_next_is_future() {
        let mut b = submission(vec![obs("HEROIN", "KG", "1")]);
        assert!(check(&b).is_ok(), "2026-Q4 has begun");
        b.freq = "M".into();
        b.time_period = "2026-M12".into();
        let err = check(&b).unwrap_err();
        assert_eq!(
            (err[0].field.as_str(), err[0].rule),
            ("time_period", Rule::PeriodInFuture)
        );
    }

    #[test]
    fn the_unknown_area_may_be_a_route_end_but_never_a_reporter() {
        let mut b = submission(vec![obs("HEROIN", "KG", "1")]);
        b.ref_area = "_U".into();
        let err = check(&b).unwrap_err();
        assert_eq!(
            (err[0].field.as_str(), err[0].rule),
            ("ref_area", Rule::NotReportable)
        );

        b.ref_area = "TJK".into();
        b.dataflow = "ROUTES".into();
        b.observations[0].origin_area = "_U".into();
        b.observations[0].destination_area = "_U".into();
        b.observations[0].transport_mode = "_U".into();
        assert!(check(&b).is_ok());
    }

    #[test]
    fn a_missing_value_status_needs_no_measure() {
        let mut o = obs("HEROIN", "", "");
        o.obs_status = "M".into();
        assert!(check(&submission(vec![o])).is_ok());
    }

    #[test]
    fn mdma_in_tablets_and_in_kilograms_are_different_observations() {
        assert!(
            check(&submission(vec![
                obs("MDMA", "U", "1000"),
                obs("MDMA", "KG", "2")
            ]))
            .is_ok()
        );
    }
}
