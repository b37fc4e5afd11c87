//! Reporting periods: FREQ and TIME_PERIOD in the SDMX reporting-period forms `2024`,
//! `2024-Q3` and `2024-M07`.

use std::fmt;

use time::{Date, Month};

/// Reporting frequency (CL_FREQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frequency {
    /// `A`: one calendar year.
    Annual,
    /// `Q`: one calendar quarter.
    Quarterly,
    /// `M`: one calendar month.
    Monthly,
}

impl Frequency {
    /// Parses a CL_FREQ code.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "A" => Some(Self::Annual),
            "Q" => Some(Self::Quarterly),
            "M" => Some(Self::Monthly),
            _ => None,
        }
    }

    /// The CL_FREQ code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Annual => "A",
            Self::Quarterly => "Q",
            Self::Monthly => "M",
        }
    }

    /// Whether periods of this frequency can be rolled up to `to` (as coarse or coarser).
    pub fn rolls_up_to(self, to: Frequency) -> bool {
        let coarseness = |f: Frequency| match f {
            Self::Monthly => 0,
            Self::Quarterly => 1,
            Self::Annual => 2,
        };
        coarseness(to) >= coarseness(self)
    }

    /// How a period of this frequency is written, for error messages.
    pub fn example(self) -> &'static str {
        match self {
            Self::Annual => "YYYY, e.g. 2024",
            Self::Quarterly => "YYYY-Qn, e.g. 2024-Q3",
            Self::Monthly => "YYYY-Mmm, e.g. 2024-M07",
        }
    }
}

/// Earliest year accepted in a TIME_PERIOD.
pub const FIRST_YEAR: i32 = 1950;

/// One reporting period: a calendar year, quarter or month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    year: i32,
    part: Part,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    Year,
    Quarter(u8),
    Month(u8),
}

/// Why a TIME_PERIOD is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Not a period in any of the three forms.
    #[error("{} is not a reporting period (forms: 2024, 2024-Q3, 2024-M07)", super::Echo(.0))]
    Malformed(String),
    /// A well-formed period of another frequency.
    #[error("{} does not match FREQ {freq}: expected {expected}", super::Echo(.period), freq = .freq.code(), expected = .freq.example())]
    FrequencyMismatch {
        /// The period as given.
        period: String,
        /// The submission's frequency.
        freq: Frequency,
    },
    /// Before [`FIRST_YEAR`].
    #[error("year {0} is before {FIRST_YEAR}")]
    TooEarly(i32),
}

impl Period {
    /// Parses a TIME_PERIOD in any of the three forms.
    pub fn parse(s: &str) -> Result<Self, PeriodError> {
        let malformed = || PeriodError::Malformed(s.to_owned());
        let b = s.as_bytes();
        if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
        let year: i32 = s[..4].parse().map_err(|_| malformed())?;
        let two_digits = |d: &[u8]| -> Option<u8> {
            match d {
                [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                    Some((a - b'0') * 10 + (b - b'0'))
                }
                _ => None,
            }
        };
        let part = match &b[4..] {
            [] => Part::Year,
            [b'-', b'Q', q @ b'1'..=b'4'] => Part::Quarter(q - b'0'),
            [b'-', b'M', rest @ ..] => match two_digits(rest) {
                Some(m @ 1..=12) => Part::Month(m),
                _ => return Err(malformed()),
            },
            _ => return Err(malformed()),
        };
        if year < FIRST_YEAR {
            return Err(PeriodError::TooEarly(year));
        }
        Ok(Self { year, part })
    }

    /// Parses a TIME_PERIOD that must be of frequency `freq`.
    pub fn parse_with(s: &str, freq: Frequency) -> Result<Self, PeriodError> {
        let period = Self::parse(s)?;
        if period.frequency() != freq {
            return Err(PeriodError::FrequencyMismatch {
                period: s.to_owned(),
                freq,
            });
        }
        Ok(period)
    }

    /// The frequency this period belongs to.
    pub fn frequency(self) -> Frequency {
        match self.part {
            Part::Year => Frequency::Annual,
            Part::Quarter(_) => Frequency::Quarterly,
            Part::Month(_) => Frequency::Monthly,
        }
    }

    /// The calendar year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// First day of the period.
    pub fn start(self) -> Date {
        let month = match self.part {
            Part::Year => 1,
            Part::Quarter(q) => 3 * q - 2,
            Part::Month(m) => m,
        };
        first_of(self.year, month)
    }

    /// Last day of the period (inclusive).
    pub fn end(self) -> Date {
        let next = match self.part {
            Part::Year => (self.year + 1, 1),
            Part::Quarter(4) => (self.year + 1, 1),
            Part::Quarter(q) => (self.year, 3 * q + 1),
            Part::Month(12) => (self.year + 1, 1),
            Part::Month(m) => (self.year, m + 1),
        };
        // The day before the first of the next period; never before year 1950.
        first_of(next.0, next.1).previous_day().unwrap_or(Date::MIN)
    }
}

/// The first day of a month; `month` is 1..=12 and `year` four digits, checked by the parser.
fn first_of(year: i32, month: u8) -> Date {
    let month = Month::try_from(month).unwrap_or(Month::January);
    Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN)
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.part {
            Part::Year => write!(f, "{:04}", self.year),
            Part::Quarter(q) => write!(f, "{:04}-Q{q}", self.year),
            Part::Month(m) => write!(f, "{:04}-M{m:02}", self.year),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parses_the_three_forms() {
        let cases = [
            ("2024", date!(2024 - 01 - 01), date!(2024 - 12 - 31)),
            ("2024-Q1", date!(2024 - 01 - 01), date!(2024 - 03 - 31)),
            ("2024-Q3", date!(2024 - 07 - 01), date!(2024 - 09 - 30)),
            ("2024-Q4", date!(2024 - 10 - 01), date!(2024 - 12 - 31)),
            ("2024-M02", date!(2024 - 02 - 01), date!(2024 - 02 - 29)),
            ("2023-M12", date!(2023 - 12 - 01), date!(2023 - 12 - 31)),
        ];
        for (s, start, end) in cases {
            let p = Period::parse(s).unwrap();
            assert_eq!(
                (p.start(), p.end(), p.to_string()),
                (start, end, s.to_owned()),
                "{s}"
            );
        }
    }

    #[test]
    fn refuses_other_forms() {
        let bad = [
            "24", "2024-Q5", "2024-Q0", "2024-M13", "2024-M00", "2024-M7", "2024-07", "2024Q1",
            "2024-q1", "", "20245", "1949",
        ];
        let accepted: Vec<_> = bad.iter().filter(|s| Period::parse(s).is_ok()).collect();
        assert!(
            accepted.is_empty(),
            "{} of {} accepted: {accepted:?}",
            accepted.len(),
            bad.len()
        );
    }

    #[test]
    fn period_must_match_frequency() {
        assert!(Period::parse_with("2024-Q3", Frequency::Quarterly).is_ok());
        let err = Period::parse_with("2024-Q3", Frequency::Monthly).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"2024-Q3\" does not match FREQ M: expected YYYY-Mmm, e.g. 2024-M07"
        );
    }
}
