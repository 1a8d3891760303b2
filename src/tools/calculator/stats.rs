//! Descriptive statistics over exact decimals.

use super::decimal::{self, Result};
use bigdecimal::{BigDecimal, Signed, Zero};

pub const OPERATIONS: &str = "count, sum, mean, median, mode, min, max, range, variance_sample, variance_population, stdev_sample, stdev_population, percentile";

/// The result of one operation: a number, or several (modes).
pub enum Stat {
    One(BigDecimal),
    Many(Vec<BigDecimal>),
}

fn sum(v: &[BigDecimal]) -> Result<BigDecimal> {
    v.iter()
        .try_fold(BigDecimal::zero(), |a, b| decimal::add(&a, b))
}

fn mean(v: &[BigDecimal], p: u64) -> Result<BigDecimal> {
    decimal::div(&sum(v)?, &BigDecimal::from(v.len() as u64), p)
}

/// Sum of squared deviations from the mean, divided by `n - ddof`.
fn variance(v: &[BigDecimal], ddof: u64, p: u64) -> Result<BigDecimal> {
    let n = v.len() as u64;
    if n <= ddof {
        return Err(format!(
            "{} needs at least {} values",
            if ddof == 1 {
                "a sample variance"
            } else {
                "a variance"
            },
            ddof + 1
        ));
    }
    // The mean is taken exactly (sum / n with guard digits) before deviations are squared.
    let m = mean(v, p + 20)?;
    let mut ss = BigDecimal::zero();
    for x in v {
        let d = decimal::sub(x, &m)?;
        ss = decimal::add(&ss, &decimal::mul(&d, &d)?)?;
    }
    decimal::div(&ss, &BigDecimal::from(n - ddof), p + 10)
}

/// Percentile `q` (0–100) by linear interpolation between closest ranks: the value at rank
/// `(n - 1) · q / 100` of the sorted values (NumPy's default, Excel's PERCENTILE.INC).
fn percentile(sorted: &[BigDecimal], q: &BigDecimal, p: u64) -> Result<BigDecimal> {
    let hundred = BigDecimal::from(100);
    if q.is_negative() || *q > hundred {
        return Err("percentile must be between 0 and 100".into());
    }
    let n1 = BigDecimal::from(sorted.len() as u64 - 1);
    let rank = decimal::div(&decimal::mul(&n1, q)?, &BigDecimal::from(100), p + 10)?;
    let lo = rank.with_scale_round(0, bigdecimal::RoundingMode::Floor);
    let i: usize = lo
        .to_string()
        .parse()
        .map_err(|_| "rank out of range".to_string())?;
    let frac = decimal::sub(&rank, &lo)?;
    if i + 1 >= sorted.len() || frac.is_zero() {
        return Ok(sorted[i.min(sorted.len() - 1)].clone());
    }
    let step = decimal::sub(&sorted[i + 1], &sorted[i])?;
    decimal::add(&sorted[i], &decimal::mul(&step, &frac)?)
}

pub fn compute(
    operation: &str,
    values: &[BigDecimal],
    q: Option<&BigDecimal>,
    p: u64,
) -> Result<Stat> {
    if values.is_empty() && operation != "count" {
        return Err("values must not be empty".into());
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let one = |v| Ok(Stat::One(v));
    match operation {
        "count" => one(BigDecimal::from(values.len() as u64)),
        "sum" => one(sum(values)?),
        "mean" => one(mean(values, p + 10)?),
        "median" => {
            let n = sorted.len();
            if n % 2 == 1 {
                one(sorted[n / 2].clone())
            } else {
                one(decimal::div(
                    &decimal::add(&sorted[n / 2 - 1], &sorted[n / 2])?,
                    &BigDecimal::from(2),
                    p + 10,
                )?)
            }
        }
        "mode" => {
            // Every most frequent value, ascending.
            let mut best = 0;
            let mut modes = Vec::new();
            let mut i = 0;
            while i < sorted.len() {
                let j = sorted[i..].iter().take_while(|x| **x == sorted[i]).count();
                if j > best {
                    best = j;
                    modes.clear();
                }
                if j == best {
                    modes.push(sorted[i].clone());
                }
                i += j;
            }
            Ok(Stat::Many(modes))
        }
        "min" => one(sorted[0].clone()),
        "max" => one(sorted[sorted.len() - 1].clone()),
        "range" => one(decimal::sub(&sorted[sorted.len() - 1], &sorted[0])?),
        "variance_sample" => one(variance(values, 1, p)?),
        "variance_population" => one(variance(values, 0, p)?),
        "stdev_sample" => one(decimal::sqrt(&variance(values, 1, p)?, p + 5)?),
        "stdev_population" => one(decimal::sqrt(&variance(values, 0, p)?, p + 5)?),
        "percentile" => {
            let q = q.ok_or("percentile needs the `percentile` parameter (0-100)")?;
            one(percentile(&sorted, q, p)?)
        }
        other => Err(format!(
            "unknown operation {other:?}; use one of: {OPERATIONS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: &str, vals: &[&str], q: Option<&str>) -> String {
        let v: Vec<BigDecimal> = vals.iter().map(|s| decimal::parse(s).unwrap()).collect();
        let q = q.map(|s| decimal::parse(s).unwrap());
        match compute(op, &v, q.as_ref(), 28).unwrap() {
            Stat::One(x) => decimal::render(&x, 28),
            Stat::Many(xs) => xs
                .iter()
                .map(|x| decimal::render(x, 28))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    #[test]
    fn known_data() {
        let data = ["2", "4", "4", "4", "5", "5", "7", "9"];
        assert_eq!(run("mean", &data, None), "5");
        assert_eq!(run("median", &data, None), "4.5");
        assert_eq!(run("mode", &data, None), "4");
        assert_eq!(run("variance_population", &data, None), "4");
        assert_eq!(run("stdev_population", &data, None), "2");
        assert_eq!(
            run("variance_sample", &data, None),
            "4.571428571428571428571428571"
        );
        assert_eq!(run("range", &data, None), "7");
        assert_eq!(run("percentile", &["1", "2", "3", "4"], Some("50")), "2.5");
        assert_eq!(run("percentile", &["1", "2", "3", "4"], Some("90")), "3.7");
        assert_eq!(run("mode", &["1", "2", "2", "3", "3"], None), "2,3");
        assert_eq!(run("sum", &["0.1", "0.2"], None), "0.3");
    }
}
