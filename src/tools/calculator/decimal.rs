//! Exact decimal arithmetic on `BigDecimal` with an explicit precision: sums, differences and
//! products are exact; quotients, square roots and negative powers are computed to the requested
//! number of significant digits and rounded half-even, with a sticky digit so the rounding is
//! right even when the exact value lies just beyond a tie. Sizes are bounded so no call runs away.

use bigdecimal::num_bigint::BigInt;
use bigdecimal::{BigDecimal, Context, One, RoundingMode, Signed, Zero};
use std::num::NonZeroU64;
use std::str::FromStr;

/// Longest accepted number literal (characters).
pub const MAX_LITERAL: usize = 1000;
/// Largest precision, in significant digits.
pub const MAX_PRECISION: u64 = 5000;
/// Largest result, in digits, of any exact operation.
pub const MAX_DIGITS: u64 = 100_000;

pub type Result<T> = std::result::Result<T, String>;

/// Parses a decimal string such as `-12.5`, `0.1`, `1e-3`.
pub fn parse(s: &str) -> Result<BigDecimal> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_LITERAL {
        return Err(format!(
            "{s:?} is not a decimal number of at most {MAX_LITERAL} characters"
        ));
    }
    let ok = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    let v = if ok {
        BigDecimal::from_str(t).ok()
    } else {
        None
    };
    let v = v.ok_or_else(|| format!("{s:?} is not a decimal number"))?;
    // An exponent such as 1e999999999 would make every later step enormous.
    let (_, scale) = v.as_bigint_and_exponent();
    if scale.unsigned_abs() > MAX_DIGITS {
        return Err(format!(
            "{s:?} is out of range (exponent beyond ±{MAX_DIGITS})"
        ));
    }
    Ok(v)
}

pub fn check_precision(p: u64) -> Result<u64> {
    if p == 0 || p > MAX_PRECISION {
        return Err(format!(
            "precision must be between 1 and {MAX_PRECISION} significant digits"
        ));
    }
    Ok(p)
}

fn guard(v: &BigDecimal) -> Result<()> {
    let (_, scale) = v.as_bigint_and_exponent();
    if v.digits() > MAX_DIGITS || scale.unsigned_abs() > MAX_DIGITS {
        return Err(format!(
            "overflow: the result would exceed {MAX_DIGITS} digits"
        ));
    }
    Ok(())
}

/// Rounds to `precision` significant digits, half-even, and writes it without exponent.
pub fn render(v: &BigDecimal, precision: u64) -> String {
    let digits = NonZeroU64::new(precision).unwrap_or(NonZeroU64::MIN);
    let r = v
        .with_precision_round(digits, RoundingMode::HalfEven)
        .normalized();
    if r.is_zero() {
        return "0".into();
    }
    r.to_plain_string()
}

pub fn add(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal> {
    let r = a + b;
    guard(&r)?;
    Ok(r)
}

pub fn sub(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal> {
    let r = a - b;
    guard(&r)?;
    Ok(r)
}

pub fn mul(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal> {
    if a.digits() + b.digits() > MAX_DIGITS {
        return Err(format!(
            "overflow: the result would exceed {MAX_DIGITS} digits"
        ));
    }
    let r = a * b;
    guard(&r)?;
    Ok(r)
}

/// `a / b` to `precision` significant digits (plus guard digits; the caller renders).
pub fn div(a: &BigDecimal, b: &BigDecimal, precision: u64) -> Result<BigDecimal> {
    if b.is_zero() {
        return Err("division by zero".into());
    }
    if a.is_zero() {
        return Ok(BigDecimal::zero());
    }
    let (ia, ea) = a.as_bigint_and_exponent();
    let (ib, eb) = b.as_bigint_and_exponent();
    // Enough extra digits that the integer quotient carries precision + 3 significant digits.
    let extra =
        precision as i64 + 3 + ib.to_string().len() as i64 - ia.to_string().len() as i64 + 1;
    let extra = extra.max(0);
    let scaled = ia * BigInt::from(10).pow(extra as u32);
    let q = &scaled / &ib;
    let rem = &scaled % &ib;
    // Sticky digit: an inexact quotient is never mistaken for a tie.
    let (q, extra) = if rem.is_zero() {
        (q, extra)
    } else {
        (q * 10 + q_sign(&scaled, &ib), extra + 1)
    };
    let r = BigDecimal::new(q, ea - eb + extra);
    guard(&r)?;
    Ok(r)
}

fn q_sign(num: &BigInt, den: &BigInt) -> i32 {
    if num.is_negative() != den.is_negative() {
        -1
    } else {
        1
    }
}

/// Remainder of truncated division: the sign follows the dividend.
pub fn rem(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal> {
    if b.is_zero() {
        return Err("division by zero (modulo 0)".into());
    }
    let r = a % b;
    guard(&r)?;
    Ok(r)
}

/// Square root to `precision` significant digits.
pub fn sqrt(a: &BigDecimal, precision: u64) -> Result<BigDecimal> {
    if a.is_negative() {
        return Err("square root of a negative number".into());
    }
    let ctx = Context::new(
        NonZeroU64::new(precision + 5).unwrap_or(NonZeroU64::MIN),
        RoundingMode::HalfEven,
    );
    a.sqrt_with_context(&ctx)
        .ok_or_else(|| "square root of a negative number".to_string())
}

/// `a ^ n` for a whole number `n` (negative: the reciprocal, to `precision` digits).
pub fn pow(a: &BigDecimal, n: &BigDecimal, precision: u64) -> Result<BigDecimal> {
    if !n.is_integer() {
        return Err("the exponent must be a whole number".into());
    }
    let e: i64 = n
        .to_string()
        .parse()
        .map_err(|_| "exponent out of range".to_string())?;
    if e.unsigned_abs() > MAX_DIGITS {
        return Err(format!("overflow: exponent beyond ±{MAX_DIGITS}"));
    }
    if a.is_zero() && e < 0 {
        return Err("division by zero (0 raised to a negative power)".into());
    }
    let size = a.digits().max(1) as u128 * e.unsigned_abs() as u128;
    if size > MAX_DIGITS as u128 && !a.abs().is_one() && !a.is_zero() {
        return Err(format!(
            "overflow: the result would exceed {MAX_DIGITS} digits"
        ));
    }
    let positive = a.powi(e.abs());
    guard(&positive)?;
    if e < 0 {
        div(&BigDecimal::from(1), &positive, precision)
    } else {
        Ok(positive)
    }
}

/// Rounds half-even to `places` decimal places.
pub fn round(a: &BigDecimal, places: &BigDecimal) -> Result<BigDecimal> {
    if !places.is_integer() {
        return Err("round takes a whole number of decimal places".into());
    }
    let p: i64 = places
        .to_string()
        .parse()
        .map_err(|_| "decimal places out of range".to_string())?;
    if p.unsigned_abs() > MAX_DIGITS {
        return Err("decimal places out of range".into());
    }
    Ok(a.with_scale_round(p, RoundingMode::HalfEven))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> BigDecimal {
        parse(s).unwrap()
    }

    #[test]
    fn quotients_round_half_even_at_any_precision() {
        assert_eq!(
            render(&div(&d("1"), &d("3"), 50).unwrap(), 50),
            format!("0.{}", "3".repeat(50))
        );
        assert_eq!(render(&div(&d("2"), &d("3"), 5).unwrap(), 5), "0.66667");
        assert_eq!(render(&div(&d("-1"), &d("8"), 2).unwrap(), 2), "-0.12");
        assert_eq!(render(&div(&d("1"), &d("7"), 300).unwrap(), 300).len(), 302);
        assert_eq!(render(&div(&d("10"), &d("4"), 28).unwrap(), 28), "2.5");
        assert!(div(&d("1"), &d("0"), 5).is_err());
    }

    #[test]
    fn powers_roots_and_bounds() {
        assert_eq!(render(&pow(&d("2"), &d("10"), 28).unwrap(), 28), "1024");
        assert_eq!(render(&pow(&d("2"), &d("-2"), 28).unwrap(), 28), "0.25");
        assert_eq!(
            render(&sqrt(&d("2"), 30).unwrap(), 30),
            "1.41421356237309504880168872421"
        );
        assert!(sqrt(&d("-4"), 10).unwrap_err().contains("negative"));
        assert!(pow(&d("10"), &d("999999"), 28)
            .unwrap_err()
            .contains("overflow"));
        assert!(pow(&d("2"), &d("0.5"), 28).is_err());
        assert!(parse("1e999999999").is_err());
        assert!(parse("abc").is_err());
        assert_eq!(render(&rem(&d("-7"), &d("3")).unwrap(), 28), "-1");
        assert_eq!(render(&round(&d("2.5"), &d("0")).unwrap(), 28), "2");
        assert_eq!(render(&round(&d("1.2345"), &d("3")).unwrap(), 28), "1.234");
    }
}
