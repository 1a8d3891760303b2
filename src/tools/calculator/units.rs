//! Unit conversion with exact factors: every unit is an exact ratio to its category's base unit
//! (temperatures also carry an exact offset), so `1 in = 2.54 cm` exactly and `0 °C = 273.15 K`.

use super::decimal::{self, Result};
use bigdecimal::BigDecimal;

/// (name, aliases, numerator, denominator) relative to the base unit.
type Unit = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);

const CATEGORIES: &[(&str, &[Unit])] = &[
    (
        "length (base m)",
        &[
            ("nm", &[], "1e-9", "1"),
            ("um", &["µm"], "0.000001", "1"),
            ("mm", &[], "0.001", "1"),
            ("cm", &[], "0.01", "1"),
            ("m", &["meter", "metre"], "1", "1"),
            ("km", &[], "1000", "1"),
            ("in", &["inch"], "0.0254", "1"),
            ("ft", &["foot", "feet"], "0.3048", "1"),
            ("yd", &["yard"], "0.9144", "1"),
            ("mi", &["mile"], "1609.344", "1"),
            ("nmi", &["nautical_mile"], "1852", "1"),
        ],
    ),
    (
        "mass (base kg)",
        &[
            ("mg", &[], "0.000001", "1"),
            ("g", &["gram"], "0.001", "1"),
            ("kg", &[], "1", "1"),
            ("t", &["tonne"], "1000", "1"),
            ("oz", &["ounce"], "0.028349523125", "1"),
            ("lb", &["pound"], "0.45359237", "1"),
            ("st", &["stone"], "6.35029318", "1"),
        ],
    ),
    (
        "time (base s)",
        &[
            ("ns", &[], "1e-9", "1"),
            ("us", &["µs"], "0.000001", "1"),
            ("ms", &[], "0.001", "1"),
            ("s", &["sec", "second"], "1", "1"),
            ("min", &["minute"], "60", "1"),
            ("h", &["hour"], "3600", "1"),
            ("day", &["d"], "86400", "1"),
            ("week", &["wk"], "604800", "1"),
        ],
    ),
    (
        "area (base m2)",
        &[
            ("mm2", &[], "0.000001", "1"),
            ("cm2", &[], "0.0001", "1"),
            ("m2", &[], "1", "1"),
            ("ha", &["hectare"], "10000", "1"),
            ("km2", &[], "1000000", "1"),
            ("in2", &[], "0.00064516", "1"),
            ("ft2", &[], "0.09290304", "1"),
            ("acre", &[], "4046.8564224", "1"),
            ("mi2", &[], "2589988.110336", "1"),
        ],
    ),
    (
        "volume (base m3)",
        &[
            ("ml", &["cm3"], "0.000001", "1"),
            ("l", &["liter", "litre"], "0.001", "1"),
            ("m3", &[], "1", "1"),
            ("in3", &[], "0.000016387064", "1"),
            ("ft3", &[], "0.028316846592", "1"),
            ("floz", &["fl_oz"], "0.0000295735295625", "1"),
            ("pt", &["pint"], "0.000473176473", "1"),
            ("qt", &["quart"], "0.000946352946", "1"),
            ("gal", &["gallon"], "0.003785411784", "1"),
        ],
    ),
    (
        "speed (base m/s)",
        &[
            ("m/s", &["mps"], "1", "1"),
            ("km/h", &["kph", "kmh"], "1000", "3600"),
            ("mph", &["mi/h"], "1609.344", "3600"),
            ("ft/s", &["fps"], "0.3048", "1"),
            ("kn", &["knot"], "1852", "3600"),
        ],
    ),
    (
        "pressure (base Pa)",
        &[
            ("pa", &[], "1", "1"),
            ("kpa", &[], "1000", "1"),
            ("mpa", &[], "1000000", "1"),
            ("bar", &[], "100000", "1"),
            ("mbar", &["hpa"], "100", "1"),
            ("atm", &[], "101325", "1"),
            ("torr", &[], "101325", "760"),
            ("mmhg", &[], "133.322387415", "1"),
            ("psi", &[], "4.4482216152605", "0.00064516"),
        ],
    ),
    (
        "energy (base J)",
        &[
            ("j", &["joule"], "1", "1"),
            ("kj", &[], "1000", "1"),
            ("mj", &[], "1000000", "1"),
            ("cal", &[], "4.184", "1"),
            ("kcal", &[], "4184", "1"),
            ("wh", &[], "3600", "1"),
            ("kwh", &[], "3600000", "1"),
            ("ev", &[], "1.602176634e-19", "1"),
            ("btu", &[], "1055.05585262", "1"),
        ],
    ),
    (
        "data (base byte)",
        &[
            ("bit", &["b"], "1", "8"),
            ("byte", &["B"], "1", "1"),
            ("kb", &["kB"], "1000", "1"),
            ("mb", &["MB"], "1000000", "1"),
            ("gb", &["GB"], "1000000000", "1"),
            ("tb", &["TB"], "1000000000000", "1"),
            ("kib", &["KiB"], "1024", "1"),
            ("mib", &["MiB"], "1048576", "1"),
            ("gib", &["GiB"], "1073741824", "1"),
            ("tib", &["TiB"], "1099511627776", "1"),
            ("kbit", &[], "125", "1"),
            ("mbit", &[], "125000", "1"),
            ("gbit", &[], "125000000", "1"),
        ],
    ),
];

const TEMPERATURE: &[&str] = &["c", "f", "k"];

fn find(unit: &str) -> Option<(usize, &'static Unit)> {
    // Data sizes are case-sensitive where it matters (b = bit, B = byte); others are not.
    for (i, (_, units)) in CATEGORIES.iter().enumerate() {
        for u in units.iter() {
            if u.0 == unit || u.1.contains(&unit) {
                return Some((i, u));
            }
        }
    }
    let lower = unit.to_ascii_lowercase();
    for (i, (_, units)) in CATEGORIES.iter().enumerate() {
        for u in units.iter() {
            if u.0 == lower
                || u.1
                    .iter()
                    .any(|a| a.to_ascii_lowercase() == lower && *a != "B" && *a != "b")
            {
                return Some((i, u));
            }
        }
    }
    None
}

fn temperature(unit: &str) -> Option<&'static str> {
    let u = unit.trim_start_matches('°').to_ascii_lowercase();
    let u = match u.as_str() {
        "celsius" => "c",
        "fahrenheit" => "f",
        "kelvin" => "k",
        other => other,
    };
    TEMPERATURE.iter().find(|t| **t == u).copied()
}

/// Every accepted unit, by category (for error messages and the tool description).
pub fn accepted() -> String {
    let mut out: Vec<String> = CATEGORIES
        .iter()
        .map(|(name, units)| {
            format!(
                "{name}: {}",
                units.iter().map(|u| u.0).collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    out.push("temperature: C, F, K".into());
    out.join("; ")
}

/// Converts `value` from one unit to another, to `precision` significant digits.
pub fn convert(value: &BigDecimal, from: &str, to: &str, precision: u64) -> Result<BigDecimal> {
    let p = precision + 10;
    if let (Some(f), Some(t)) = (temperature(from), temperature(to)) {
        let kelvin = match f {
            "c" => decimal::add(value, &decimal::parse("273.15")?)?,
            "f" => decimal::div(
                &decimal::mul(
                    &decimal::add(value, &decimal::parse("459.67")?)?,
                    &BigDecimal::from(5),
                )?,
                &BigDecimal::from(9),
                p,
            )?,
            _ => value.clone(),
        };
        return match t {
            "c" => decimal::sub(&kelvin, &decimal::parse("273.15")?),
            "f" => decimal::sub(
                &decimal::div(
                    &decimal::mul(&kelvin, &BigDecimal::from(9))?,
                    &BigDecimal::from(5),
                    p,
                )?,
                &decimal::parse("459.67")?,
            ),
            _ => Ok(kelvin),
        };
    }
    let (a, b) = (find(from), find(to));
    let (Some((ca, ua)), Some((cb, ub))) = (a, b) else {
        let unknown = if a.is_none() && temperature(from).is_none() {
            from
        } else {
            to
        };
        return Err(format!(
            "unknown unit {unknown:?}; accepted: {}",
            accepted()
        ));
    };
    if ca != cb {
        let ct = |u: &str, c: Option<(usize, &Unit)>| {
            c.map(|(i, _)| CATEGORIES[i].0)
                .unwrap_or(if temperature(u).is_some() {
                    "temperature"
                } else {
                    "?"
                })
        };
        return Err(format!(
            "cannot convert {} ({}) to {} ({}): both units must be of one category",
            from,
            ct(from, a),
            to,
            ct(to, b)
        ));
    }
    // value · (num_a / den_a) / (num_b / den_b)
    let num = decimal::mul(
        &decimal::mul(value, &decimal::parse(ua.2)?)?,
        &decimal::parse(ub.3)?,
    )?;
    let den = decimal::mul(&decimal::parse(ua.3)?, &decimal::parse(ub.2)?)?;
    decimal::div(&num, &den, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(v: &str, f: &str, t: &str) -> String {
        decimal::render(&convert(&decimal::parse(v).unwrap(), f, t, 28).unwrap(), 28)
    }

    #[test]
    fn every_category() {
        assert_eq!(conv("1", "in", "cm"), "2.54");
        assert_eq!(conv("1", "lb", "g"), "453.59237");
        assert_eq!(conv("100", "C", "F"), "212");
        assert_eq!(conv("-40", "F", "C"), "-40");
        assert_eq!(conv("0", "C", "K"), "273.15");
        assert_eq!(conv("2", "h", "min"), "120");
        assert_eq!(conv("1", "ha", "m2"), "10000");
        assert_eq!(conv("1", "gal", "l"), "3.785411784");
        assert_eq!(conv("36", "km/h", "m/s"), "10");
        assert_eq!(conv("1", "atm", "kPa"), "101.325");
        assert_eq!(conv("1", "kWh", "J"), "3600000");
        assert_eq!(conv("1", "GiB", "MB"), "1073.741824");
        assert_eq!(conv("8", "bit", "byte"), "1");
        let e = convert(&decimal::parse("1").unwrap(), "m", "kg", 28).unwrap_err();
        assert!(e.contains("one category"), "{e}");
        let e = convert(&decimal::parse("1").unwrap(), "furlong", "m", 28).unwrap_err();
        assert!(
            e.contains("unknown unit \"furlong\"") && e.contains("length (base m)"),
            "{e}"
        );
    }
}
