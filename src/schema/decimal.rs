//! Exact decimal quantities.
//!
//! QUANTITY travels as a decimal string (`"1250.5"`) and is stored as a whole number of
//! millionths, so no value ever passes through floating point between the wire and the store,
//! and sums are exact.

use std::fmt;

/// Largest number of digits before the decimal point.
pub const MAX_INTEGER_DIGITS: usize = 12;
/// Largest number of digits after the decimal point.
pub const MAX_FRACTION_DIGITS: usize = 6;
/// One unit expressed in the stored scale (10^MAX_FRACTION_DIGITS).
const SCALE: i64 = 1_000_000;

/// A non-negative exact decimal with at most 12 integer and 6 fractional digits.
///
/// ```
/// use focalgate::schema::Quantity;
/// let q: Quantity = "1250.50".parse().unwrap();
/// assert_eq!(q.to_string(), "1250.5");
/// assert_eq!(q.millionths(), 1_250_500_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

/// Why a string is not a valid [`Quantity`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// A minus sign: quantities seized cannot be negative.
    #[error("quantity must not be negative")]
    Negative,
    /// More fractional digits than the stated precision.
    #[error("quantity has more than {MAX_FRACTION_DIGITS} digits after the decimal point")]
    OverPrecise,
    /// More integer digits than allowed.
    #[error("quantity has more than {MAX_INTEGER_DIGITS} digits before the decimal point")]
    TooLarge,
    /// Anything else: exponents, spaces, a comma, a lone point, letters.
    #[error("quantity must be a plain decimal number such as 12 or 1250.5")]
    Malformed,
}

impl Quantity {
    /// The value in millionths of the unit, as stored.
    pub fn millionths(self) -> i64 {
        self.0
    }

    /// Rebuilds a quantity from stored millionths; `None` if out of range.
    pub fn from_millionths(m: i64) -> Option<Self> {
        const MAX: i64 = 10_i64.pow(MAX_INTEGER_DIGITS as u32) * SCALE - 1;
        (0..=MAX).contains(&m).then_some(Self(m))
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = match s.as_bytes().first() {
            Some(b'-') => return Err(QuantityError::Negative),
            Some(b'+') => &s[1..],
            _ => s,
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || body.ends_with('.') {
            return Err(QuantityError::Malformed);
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > MAX_FRACTION_DIGITS {
            return Err(QuantityError::OverPrecise);
        }
        let int = int.trim_start_matches('0');
        if int.len() > MAX_INTEGER_DIGITS {
            return Err(QuantityError::TooLarge);
        }
        // At most 12 + 6 digits: fits in i64 (< 9.2e18) without overflow.
        let mut value: i64 = 0;
        for b in int.bytes() {
            value = value * 10 + i64::from(b - b'0');
        }
        let mut fraction: i64 = 0;
        for b in frac.bytes() {
            fraction = fraction * 10 + i64::from(b - b'0');
        }
        fraction *= 10_i64.pow((MAX_FRACTION_DIGITS - frac.len()) as u32);
        Ok(Self(value * SCALE + fraction))
    }
}

impl fmt::Display for Quantity {
    /// Canonical form: no leading or trailing zeros beyond what the value needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_millionths(self.0 as i128, f)
    }
}

/// A (possibly large, e.g. summed) number of millionths as a canonical decimal.
pub fn format_millionths(m: i128) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_millionths(m, &mut s);
    s
}

fn write_millionths(m: i128, f: &mut impl fmt::Write) -> fmt::Result {
    let sign = if m < 0 { "-" } else { "" };
    let m = m.unsigned_abs();
    let (int, frac) = (m / SCALE as u128, m % SCALE as u128);
    if frac == 0 {
        write!(f, "{sign}{int}")
    } else {
        let digits = format!("{frac:06}");
        write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let cases = [
            ("0", "0"),
            ("12", "12"),
            ("012.50", "12.5"),
            ("+3.000001", "3.000001"),
            ("999999999999.999999", "999999999999.999999"),
            ("1.0000000", "1"),
        ];
        for (input, want) in cases {
            let q: Quantity = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.to_string(), want, "{input}");
            assert_eq!(Quantity::from_millionths(q.millionths()), Some(q));
        }
    }

    #[test]
    fn refuses_what_is_not_exact() {
        let cases = [
            ("-1", QuantityError::Negative),
            ("-0.5", QuantityError::Negative),
            ("1.0000001", QuantityError::OverPrecise),
            ("1000000000000", QuantityError::TooLarge),
            ("", QuantityError::Malformed),
            (".5", QuantityError::Malformed),
            ("5.", QuantityError::Malformed),
            ("1e3", QuantityError::Malformed),
            ("1,5", QuantityError::Malformed),
            (" 1", QuantityError::Malformed),
            ("NaN", QuantityError::Malformed),
            ("1.2.3", QuantityError::Malformed),
        ];
        let wrong: Vec<_> = cases
            .iter()
            .filter(|(input, want)| input.parse::<Quantity>().as_ref() != Err(want))
            .collect();
        assert!(
            wrong.is_empty(),
            "{} of {} cases wrong: {wrong:?}",
            wrong.len(),
            cases.len()
        );
    }

    #[test]
    fn formats_large_sums() {
        assert_eq!(format_millionths(12_345_000_001), "12345.000001");
        assert_eq!(format_millionths(-5_000_000), "-5");
        assert_eq!(
            format_millionths(i128::from(i64::MAX) * 3),
            "27670116110564.327421"
        );
    }
}
