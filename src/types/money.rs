//! Exact money: an integer count of picodollars (10⁻¹² USD).
//!
//! Provider prices are quoted per million tokens with at most six decimals
//! (e.g. $0.075/MTok), which is an integer number of picodollars per token, so
//! `tokens × price` is exact. `i128` holds ±1.7 × 10¹⁴ billion dollars: sums
//! never overflow in practice, and arithmetic saturates rather than wraps.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use serde::{Serialize, Serializer};

/// Picodollars per US dollar.
pub const PICOS_PER_USD: i128 = 1_000_000_000_000;

/// An exact amount of US dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i128);

/// Why a decimal string is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not a decimal number")]
    NotANumber(String),
    #[error("'{0}' has more precision than 12 decimal places")]
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

    /// `tokens × picodollars-per-token`, exact.
    #[must_use]
    pub fn for_tokens(tokens: u64, picos_per_token: u64) -> Self {
        Usd(i128::from(tokens).saturating_mul(i128::from(picos_per_token)))
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
        let unit = 10_i128.pow(12 - decimals);
        let half = unit / 2;
        let rounded = if self.0 >= 0 {
            (self.0 + half) / unit
        } else {
            (self.0 - half) / unit
        };
        let sign = if rounded < 0 { "-" } else { "" };
        let abs = rounded.unsigned_abs();
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

/// Parses a decimal (optionally with exponent) into an integer scaled by
/// `10^scale`, failing rather than rounding.
pub(crate) fn parse_scaled(text: &str, scale: i32) -> Result<i128, MoneyError> {
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
    let digits = digits.trim_start_matches('0');
    // value = digits × 10^(exponent - frac_len); scaled = value × 10^scale
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| err())?;
    let mut shift = exponent - frac_len + scale;
    let mut digits = digits.to_owned();
    while shift < 0 {
        match digits.pop() {
            Some('0') => shift += 1,
            Some(_) => return Err(MoneyError::TooPrecise(text.to_owned())),
            None => {
                shift = 0;
            }
        }
    }
    if digits.is_empty() {
        return Ok(0);
    }
    if digits.len() + usize::try_from(shift).unwrap_or(usize::MAX) > 36 {
        return Err(MoneyError::OutOfRange(text.to_owned()));
    }
    let base: i128 = digits
        .parse()
        .map_err(|_| MoneyError::OutOfRange(text.to_owned()))?;
    let value = base
        .checked_mul(10_i128.pow(u32::try_from(shift).unwrap_or(0)))
        .ok_or_else(|| MoneyError::OutOfRange(text.to_owned()))?;
    Ok(if negative { -value } else { value })
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
    fn token_products_are_exact() {
        // 4096 cache reads at $0.075/MTok = 75_000 picodollars each.
        assert_eq!(Usd::for_tokens(4096, 75_000).picos(), 307_200_000);
        assert_eq!(Usd::for_tokens(0, 75_000), Usd::ZERO);
    }
}
