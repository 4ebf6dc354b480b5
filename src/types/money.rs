//! Exact money: an integer count of picodollars (10⁻¹² USD).
//!
//! Provider prices are quoted per million tokens with at most six decimals
//! (e.g. $0.075/MTok), which is an integer number of picodollars per token, so
//! `tokens × price` is exact. `i128` holds ±1.7 × 10¹⁴ billion dollars: sums
//! never overflow in practice, and arithmetic saturates rather than wraps
//! (a saturated sum shows as ±$170141183460469231731687303.715884105727,
//! never as a small or negative amount).
//!
//! What a record reports is checked before it is summed: a cost is a whole
//! number of picodollars ([`Usd::parse_reported`]) below
//! [`MAX_CALL_COST`] per call.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use serde::{Serialize, Serializer};

/// Picodollars per US dollar.
pub const PICOS_PER_USD: i128 = 1_000_000_000_000;

/// No real model call costs this much ($10⁵): a record reporting as much
/// or more is rejected as malformed (`docs/schema.md`), so that a hostile or
/// broken writer cannot push totals anywhere near saturation.
pub const MAX_CALL_COST: Usd = Usd(100_000 * PICOS_PER_USD);

/// Relative difference from a whole number of picodollars below which the
/// extra digits of a reported cost are binary floating-point noise (a few
/// units in the last place of an `f64`, whose precision is 2.2 × 10⁻¹⁶).
const FLOAT_NOISE: f64 = 1e-15;

/// An exact amount of US dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i128);

/// Why a decimal string is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not a decimal number")]
    NotANumber(String),
    #[error("'{0}' is finer than a picodollar ($0.000000000001)")]
    TooPrecise(String),
    #[error("'{0}' is out of range")]
    OutOfRange(String),
}

impl Usd {
    pub const ZERO: Usd = Usd(0);

    #[must_use]
    pub const fn from_picos(picos: i128) -> Self {
        Usd(picos)
    }

    #[must_use]
    pub const fn picos(self) -> i128 {
        self.0
    }

    /// `tokens × picodollars-per-token`, exact (saturating past `i128`).
    /// Two `u64`s multiply in `u128` without overflow, so the product
    /// needs no overflow test, only a bound (a signed `i128` multiply
    /// tests for overflow at several times the cost, per token bucket).
    #[must_use]
    #[inline]
    pub fn for_tokens(tokens: u64, picos_per_token: u64) -> Self {
        let product = u128::from(tokens) * u128::from(picos_per_token);
        Usd(i128::try_from(product).unwrap_or(i128::MAX))
    }

    #[must_use]
    pub fn saturating_sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }

    /// Parses a JSON-style decimal number (`0.0012`, `1.5e-07`, `-3`) exactly.
    ///
    /// # Errors
    /// A malformed number, or one finer than a picodollar.
    pub fn parse_decimal(text: &str) -> Result<Usd, MoneyError> {
        let picos = parse_scaled(text, 12)?;
        Ok(Usd(picos))
    }

    /// Parses a cost a record reports (a JSON number's shortest decimal, or
    /// a decimal string), by one rule: it is a whole number of picodollars.
    /// Digits past the twelfth decimal are accepted only when they are
    /// binary floating-point noise, which a gateway summing `f64` prices
    /// leaves (`0.011349000000000001` is $0.011349): the amount then lies
    /// within 10⁻¹⁵ of itself of a whole number of picodollars, taken as the
    /// cost. Anything finer is rejected, never rounded: `1e-30` is not $0.
    ///
    /// # Errors
    /// A malformed number, one out of range, or one finer than a picodollar
    /// that is not float noise.
    pub fn parse_reported(text: &str) -> Result<Usd, MoneyError> {
        let decimal = Decimal::read(text, 12)?;
        let Some(drop) = decimal.finer_digits() else {
            return decimal.scaled(text).map(Usd);
        };
        let too_precise = || MoneyError::TooPrecise(text.to_owned());
        let (kept, tail) = decimal
            .digits
            .split_at(decimal.digits.len().saturating_sub(drop));
        // The dropped digits as a fraction of a picodollar: `tail` after
        // `drop - tail.len()` zeros (a fraction that small is noise or
        // nothing, whatever its digits).
        let zeros = drop - tail.len();
        let fraction = if zeros > 40 {
            0.0
        } else {
            format!("0.{}{tail}", "0".repeat(zeros))
                .parse::<f64>()
                .map_err(|_| too_precise())?
        };
        let whole = Decimal {
            negative: decimal.negative,
            digits: kept.to_owned(),
            shift: 0,
        }
        .scaled(text)?
        .unsigned_abs();
        let (rounded, error) = if fraction >= 0.5 {
            (whole + 1, 1.0 - fraction)
        } else {
            (whole, fraction)
        };
        #[allow(clippy::cast_precision_loss, reason = "a tolerance, not a sum")]
        let tolerance = rounded as f64 * FLOAT_NOISE;
        if rounded == 0 || error > tolerance {
            return Err(too_precise());
        }
        let picos = i128::try_from(rounded).map_err(|_| MoneyError::OutOfRange(text.to_owned()))?;
        Ok(Usd(if decimal.negative { -picos } else { picos }))
    }

    /// [`Usd::parse_reported`] for a JSON number, through the shortest
    /// decimal that reads back as the same `f64` (what the writer wrote).
    ///
    /// # Errors
    /// As [`Usd::parse_reported`]; `NaN` and infinities are not numbers.
    pub fn from_reported_f64(value: f64) -> Result<Usd, MoneyError> {
        // `{:?}` is the shortest round-trip form, in exponent notation for
        // very small and very large values (`1e-30`, not 31 decimals).
        Usd::parse_reported(&format!("{value:?}"))
    }

    /// A cost one call reported, checked against [`MAX_CALL_COST`]; the
    /// error names `field` and the value as `written`.
    ///
    /// # Errors
    /// $10⁵ or more (or a saturated amount).
    pub fn check_call_cost(self, field: &str, written: &str) -> Result<Usd, String> {
        if self.0.unsigned_abs() >= MAX_CALL_COST.0.unsigned_abs() {
            return Err(format!(
                "{field} {written} is implausible: no call costs $100000 (10^5) or more"
            ));
        }
        Ok(self)
    }

    /// The cost of one call a record reports: `parsed` (by
    /// [`Usd::parse_reported`]) checked by [`Usd::check_call_cost`]. An
    /// amount too large for [`Usd`] at all is implausible too, and said so.
    ///
    /// # Errors
    /// The parse error, prefixed by `field`, or the implausible amount.
    pub fn reported_call_cost(
        parsed: Result<Usd, MoneyError>,
        field: &str,
        written: &str,
    ) -> Result<Usd, String> {
        match parsed {
            Ok(amount) => amount.check_call_cost(field, written),
            Err(MoneyError::OutOfRange(_)) => MAX_CALL_COST.check_call_cost(field, written),
            Err(error) => Err(format!("{field}: {error}")),
        }
    }

    /// The cost of one call a record reports, read from the text written
    /// (a JSON number's token, or a string's content) by
    /// [`Usd::parse_reported`] and checked by [`Usd::check_call_cost`]:
    /// the one rule of every format. Reasons name `field` and quote the
    /// text (its first 40 characters), never a float it became.
    ///
    /// # Errors
    /// Not a decimal number, negative, finer than a picodollar (and not
    /// float noise), or $10⁵ or more.
    pub fn reported_call_cost_text(text: &str, field: &str) -> Result<Usd, String> {
        let mut written: String = text.chars().take(40).collect();
        if written.len() < text.len() {
            written.push('…');
        }
        let written = format!("'{written}'");
        let negative = text.trim_start().starts_with('-');
        match Usd::parse_reported(text) {
            Ok(amount) if amount < Usd::ZERO => Err(format!("{field} {written} is negative")),
            Ok(amount) => amount.check_call_cost(field, &written),
            Err(_) if negative && Decimal::read(text, 12).is_ok() => {
                Err(format!("{field} {written} is negative"))
            }
            Err(MoneyError::OutOfRange(_)) => MAX_CALL_COST.check_call_cost(field, &written),
            Err(MoneyError::TooPrecise(_)) => Err(format!(
                "{field} {written} is finer than a picodollar ($0.000000000001)"
            )),
            Err(MoneyError::NotANumber(_)) => {
                Err(format!("{field} {written} is not a decimal number"))
            }
        }
    }

    /// The closest `f64`, for JSON output and ratios; never used for sums.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn to_f64(self) -> f64 {
        // Going through the exact decimal text gives the correctly rounded f64,
        // which serializes back to the same short decimal.
        self.to_string().parse().unwrap_or(self.0 as f64 / 1e12)
    }

    /// Like [`Usd::display_rounded`], with more decimals for amounts that
    /// would round to zero: `$0.0000` would hide a real cost.
    #[must_use]
    pub fn display_significant(self, decimals: u32) -> String {
        let mut places = decimals;
        while places < 12
            && self != Usd::ZERO
            && Usd::parse_decimal(&self.display_rounded(places)).is_ok_and(|r| r == Usd::ZERO)
        {
            places += 1;
        }
        self.display_rounded(places)
    }

    /// Formats with a fixed number of decimals, rounding half away from zero.
    #[must_use]
    pub fn display_rounded(self, decimals: u32) -> String {
        let decimals = decimals.min(12);
        let unit = 10_u128.pow(12 - decimals);
        // In u128, where |i128::MIN| + half still fits: no overflow at the
        // extremes a saturated sum reaches.
        let abs = (self.0.unsigned_abs() + unit / 2) / unit;
        let sign = if self.0 < 0 && abs != 0 { "-" } else { "" };
        if decimals == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10_u128.pow(decimals);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = decimals as usize
        )
    }
}

/// A decimal number as digits and a power of ten: `digits × 10^shift` in
/// units of `10^-scale`.
struct Decimal {
    negative: bool,
    /// Without leading zeros; empty for zero.
    digits: String,
    shift: i64,
}

impl Decimal {
    /// Reads a JSON-style decimal (optionally with exponent).
    fn read(text: &str, scale: i32) -> Result<Decimal, MoneyError> {
        let err = || MoneyError::NotANumber(text.to_owned());
        let trimmed = text.trim();
        let (negative, unsigned) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(pos) => (
                &unsigned[..pos],
                unsigned[pos + 1..].parse::<i32>().map_err(|_| err())?,
            ),
            None => (unsigned, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err());
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0').to_owned();
        // value = digits × 10^(exponent - frac_len); scaled = value × 10^scale
        // (in i64: an i32 exponent and a text's length cannot overflow it).
        let frac_len = i64::try_from(frac_part.len()).map_err(|_| err())?;
        let shift = i64::from(exponent) - frac_len + i64::from(scale);
        Ok(Decimal {
            negative,
            digits,
            shift,
        })
    }

    /// How many trailing digits fall below the unit, when any of them is
    /// not zero (zeros there are harmless: `12.50000000000000`).
    fn finer_digits(&self) -> Option<usize> {
        if self.shift >= 0 || self.digits.is_empty() {
            return None;
        }
        let below = usize::try_from(self.shift.unsigned_abs()).unwrap_or(usize::MAX);
        let zeros = self.digits.len() - self.digits.trim_end_matches('0').len();
        (below > zeros).then_some(below)
    }

    /// The scaled integer, when no digit falls below the unit.
    fn scaled(&self, text: &str) -> Result<i128, MoneyError> {
        let out_of_range = || MoneyError::OutOfRange(text.to_owned());
        if self.digits.is_empty() {
            return Ok(0);
        }
        if self.finer_digits().is_some() {
            return Err(MoneyError::TooPrecise(text.to_owned()));
        }
        let mut digits = self.digits.as_str();
        let mut shift = self.shift;
        if shift < 0 {
            // Only zeros fall below the unit (`finer_digits`).
            let below = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
            digits = &digits[..digits.len() - below];
            shift = 0;
        }
        let shift = usize::try_from(shift).map_err(|_| out_of_range())?;
        // i128 has 39 digits; beyond, parse and multiply check the rest.
        if digits.len().saturating_add(shift) > 39 {
            return Err(out_of_range());
        }
        // The magnitude in u128, so that i128::MIN (one more than MAX)
        // reads back too.
        let base: u128 = digits.parse().map_err(|_| out_of_range())?;
        let power = u32::try_from(shift).map_err(|_| out_of_range())?;
        let magnitude = base
            .checked_mul(10_u128.pow(power))
            .ok_or_else(out_of_range)?;
        if self.negative && magnitude == i128::MIN.unsigned_abs() {
            return Ok(i128::MIN);
        }
        let value = i128::try_from(magnitude).map_err(|_| out_of_range())?;
        Ok(if self.negative { -value } else { value })
    }
}

/// Parses a decimal (optionally with exponent) into an integer scaled by
/// `10^scale`, failing rather than rounding.
pub(crate) fn parse_scaled(text: &str, scale: i32) -> Result<i128, MoneyError> {
    Decimal::read(text, scale)?.scaled(text)
}

impl fmt::Display for Usd {
    /// Exact decimal dollars with trailing zeros trimmed (`0.00064965`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / PICOS_PER_USD.unsigned_abs();
        let frac = abs % PICOS_PER_USD.unsigned_abs();
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        let frac_text = format!("{frac:012}");
        write!(f, "{sign}{whole}.{}", frac_text.trim_end_matches('0'))
    }
}

impl Serialize for Usd {
    /// The exact decimal as a JSON number (`12345.100000000001`, never
    /// rounded through `f64`): a `serde_json` raw value, written as is.
    /// Money is only ever serialized to JSON (another serializer would see
    /// `serde_json`'s raw-value marker).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.to_string()) {
            Ok(exact) => exact.serialize(serializer),
            Err(_) => serializer.serialize_f64(self.to_f64()),
        }
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, rhs: Usd) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

impl Sub for Usd {
    type Output = Usd;
    fn sub(self, rhs: Usd) -> Usd {
        Usd(self.0.saturating_sub(rhs.0))
    }
}

impl SubAssign for Usd {
    fn sub_assign(&mut self, rhs: Usd) {
        self.0 = self.0.saturating_sub(rhs.0);
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_exponent_decimals_exactly() {
        assert_eq!(
            Usd::parse_decimal("0.00064965").unwrap().picos(),
            649_650_000
        );
        assert_eq!(Usd::parse_decimal("1.5e-07").unwrap().picos(), 150_000);
        assert_eq!(Usd::parse_decimal("7.5E-8").unwrap().picos(), 75_000);
        assert_eq!(Usd::parse_decimal("3").unwrap().picos(), 3 * PICOS_PER_USD);
        assert_eq!(
            Usd::parse_decimal("-0.5").unwrap().picos(),
            -PICOS_PER_USD / 2
        );
        assert_eq!(
            Usd::parse_decimal("12.50000000000000").unwrap().picos(),
            12_500_000_000_000
        );
        assert_eq!(Usd::parse_decimal("0").unwrap(), Usd::ZERO);
        assert_eq!(
            Usd::parse_decimal("1e3").unwrap().picos(),
            1000 * PICOS_PER_USD
        );
    }

    #[test]
    fn rejects_garbage_and_sub_picodollar_precision() {
        assert!(matches!(
            Usd::parse_decimal("abc"),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            Usd::parse_decimal(""),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            Usd::parse_decimal("1.2.3"),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            Usd::parse_decimal("0.0000000000001"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            Usd::parse_decimal("1e40"),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn displays_exact_and_rounded() {
        let amount = Usd::from_picos(649_650_000);
        assert_eq!(amount.to_string(), "0.00064965");
        assert_eq!(amount.display_rounded(4), "0.0006");
        assert_eq!(
            Usd::from_picos(1_235_000_000_000).display_rounded(2),
            "1.24"
        );
        assert_eq!(
            Usd::from_picos(-1_235_000_000_000).display_rounded(2),
            "-1.24"
        );
        assert_eq!(Usd::from_picos(2 * PICOS_PER_USD).to_string(), "2");
        assert_eq!(Usd::from_picos(2 * PICOS_PER_USD).display_rounded(0), "2");
        assert_eq!(
            Usd::from_picos(12_500_000).display_significant(4),
            "0.00001",
            "never $0.0000"
        );
        assert_eq!(
            Usd::from_picos(649_650_000).display_significant(4),
            "0.0006"
        );
        assert_eq!(Usd::ZERO.display_significant(4), "0.0000");
    }

    #[test]
    fn f64_view_round_trips_short_decimals() {
        assert_eq!(Usd::parse_decimal("0.9585").unwrap().to_f64(), 0.9585);
        assert_eq!(Usd::parse_decimal("0.535254").unwrap().to_f64(), 0.535254);
        assert_eq!(
            serde_json::to_string(&Usd::parse_decimal("0.00064965").unwrap()).unwrap(),
            "0.00064965"
        );
    }

    #[test]
    fn extremes_display_without_overflow() {
        let max = Usd::from_picos(i128::MAX);
        assert_eq!(max.display_rounded(4), "170141183460469231731687303.7159");
        assert_eq!(max.display_rounded(0), "170141183460469231731687304");
        assert_eq!(
            max.display_significant(4),
            "170141183460469231731687303.7159"
        );
        let min = Usd::from_picos(i128::MIN);
        assert_eq!(min.display_rounded(2), "-170141183460469231731687303.72");
        assert_eq!(min.to_string(), "-170141183460469231731687303.715884105728");
        assert_eq!(max + Usd::from_picos(1), max, "saturates, never wraps");
        assert_eq!(min - Usd::from_picos(1), min);
    }

    /// Found by `prop_usd_display_parse_round_trip`: amounts of more than
    /// 36 digits (a saturated sum) printed but did not parse back.
    #[test]
    fn every_amount_parses_back_from_its_decimal() {
        for picos in [
            i128::MAX,
            i128::MIN,
            i128::MAX - 1_000_000_000,
            10_i128.pow(37),
        ] {
            let amount = Usd::from_picos(picos);
            assert_eq!(
                Usd::parse_decimal(&amount.to_string()),
                Ok(amount),
                "{picos}"
            );
        }
        assert!(matches!(
            Usd::parse_decimal("170141183460469231731687303.715884105728"),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn huge_exponents_are_errors_not_overflows() {
        for text in [
            "1.5e-2147483648",
            "1e2147483647",
            "0.1e-2147483648",
            "1e-99999999999",
        ] {
            assert!(Usd::parse_decimal(text).is_err(), "{text}");
            assert!(Usd::parse_reported(text).is_err(), "{text}");
        }
        assert_eq!(Usd::parse_decimal("0e-2147483648"), Ok(Usd::ZERO));
    }

    #[test]
    fn reported_costs_are_whole_picodollars_or_float_noise() {
        let picos = |text: &str| Usd::parse_reported(text).map(Usd::picos);
        assert_eq!(picos("0.011349000000000001"), Ok(11_349_000_000));
        assert_eq!(picos("0.30000000000000004"), Ok(300_000_000_000));
        assert_eq!(picos("0.29999999999999998"), Ok(300_000_000_000));
        assert_eq!(picos("1.5e-07"), Ok(150_000));
        assert_eq!(picos("-0.5"), Ok(-500_000_000_000));
        for finer in [
            "1e-30",
            "0.0000000000015",
            "1.0000000000005",
            "0.1234567890123456",
        ] {
            assert!(
                matches!(Usd::parse_reported(finer), Err(MoneyError::TooPrecise(_))),
                "{finer}"
            );
        }
        assert_eq!(
            Usd::parse_reported("1e-30").unwrap_err().to_string(),
            "'1e-30' is finer than a picodollar ($0.000000000001)"
        );
        assert_eq!(
            Usd::from_reported_f64(1e-30),
            Err(MoneyError::TooPrecise("1e-30".into()))
        );
        assert_eq!(
            Usd::from_reported_f64(0.1 + 0.2).map(Usd::picos),
            Ok(300_000_000_000)
        );
    }

    #[test]
    fn token_products_are_exact() {
        // 4096 cache reads at $0.075/MTok = 75_000 picodollars each.
        assert_eq!(Usd::for_tokens(4096, 75_000).picos(), 307_200_000);
        assert_eq!(Usd::for_tokens(0, 75_000), Usd::ZERO);
        // at and past the edge of i128: exact below it, saturated past it
        assert_eq!(Usd::for_tokens(1 << 63, 1 << 63).picos(), 1 << 126);
        assert_eq!(
            Usd::for_tokens(u64::MAX, 1 << 63).picos(),
            i128::from(u64::MAX) << 63
        );
        assert_eq!(Usd::for_tokens(u64::MAX, u64::MAX).picos(), i128::MAX);
        assert_eq!(Usd::for_tokens(u64::MAX, 0), Usd::ZERO);
    }
}
