//! Short human formats for numbers in cells.

use crate::model::Usd;

/// `950`, `12.3k`, `4.56M`, `1.20B`.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn tokens(n: u64) -> String {
    let v = n as f64;
    if n < 1_000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", v / 1e3)
    } else if n < 1_000_000_000 {
        format!("{:.2}M", v / 1e6)
    } else {
        format!("{:.2}B", v / 1e9)
    }
}

/// Dollars with precision that suits the size: `$1,234`, `$12.34`, `$0.123`,
/// and at least two significant digits below a cent (`$0.0072`, `$0.00065`,
/// `$0.0000031`): a small cost never reads as `$0.00`.
#[must_use]
pub fn dollars(amount: Usd) -> String {
    let picos = amount.picos().abs();
    let dollar = 1_000_000_000_000_i128;
    let decimals = if picos >= 1_000 * dollar {
        0
    } else if picos >= dollar {
        2
    } else if picos >= dollar / 100 {
        3
    } else {
        // two significant digits: 4 decimals from $0.001, one more per
        // further factor of ten (12 decimals are picodollars)
        let mut decimals = 4;
        while decimals < 12 && picos > 0 && picos < 10_i128.pow(13 - decimals) {
            decimals += 1;
        }
        decimals
    };
    let text = amount.display_significant(decimals);
    if decimals == 0 {
        // thousands separators
        let (sign, digits) = text
            .strip_prefix('-')
            .map_or(("", text.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        format!("{sign}${out}")
    } else {
        match text.strip_prefix('-') {
            Some(digits) => format!("-${digits}"),
            None => format!("${text}"),
        }
    }
}

/// `45%`
#[must_use]
pub fn percent(ratio: f64) -> String {
    if ratio > 0.0 && ratio < 0.01 {
        "<1%".to_owned()
    } else {
        format!("{:.0}%", ratio * 100.0)
    }
}

/// `3s`, `4m`, `2h`, `3d` ago.
#[must_use]
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

/// `text` in at most `width` terminal cells: whole when it fits, else cut
/// with `…` (wide characters count two cells).
#[must_use]
pub fn fit(text: &str, width: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if text.width() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(ch);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(tokens(950), "950");
        assert_eq!(tokens(12_345), "12.3k");
        assert_eq!(tokens(4_560_000), "4.56M");
        assert_eq!(dollars(Usd::parse_decimal("1234.5").unwrap()), "$1,235");
        assert_eq!(dollars(Usd::parse_decimal("12.345").unwrap()), "$12.35");
        assert_eq!(dollars(Usd::parse_decimal("0.1234").unwrap()), "$0.123");
        assert_eq!(
            dollars(Usd::parse_decimal("0.00064965").unwrap()),
            "$0.00065"
        );
        assert_eq!(dollars(Usd::parse_decimal("0.0072").unwrap()), "$0.0072");
        assert_eq!(dollars(Usd::parse_decimal("0.00123").unwrap()), "$0.0012");
        assert_eq!(
            dollars(Usd::parse_decimal("0.0000031").unwrap()),
            "$0.0000031"
        );
        assert_eq!(dollars(Usd::parse_decimal("-0.0072").unwrap()), "-$0.0072");
        assert_eq!(dollars(Usd::ZERO), "$0.0000");
        assert_eq!(percent(0.456), "46%");
        assert_eq!(percent(0.001), "<1%");
        assert_eq!(age(65_000), "1m");
        assert_eq!(fit("researcher", 6), "resea…");
        assert_eq!(fit("abc", 6), "abc");
    }
}
