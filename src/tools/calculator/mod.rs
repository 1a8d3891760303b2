//! The calculator tool server: exact decimal arithmetic, expressions, descriptive statistics and
//! unit conversion, all on decimal strings so no binary floating point rounding creeps in. Every
//! failure is a tool result with `isError: true` and a message that says what to fix.

mod decimal;
mod expr;
mod stats;
mod units;

use bigdecimal::BigDecimal;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

const DEFAULT_PRECISION: u64 = 28;

#[derive(Debug, Clone, Default)]
pub struct Calculator;

impl Calculator {
    pub fn new() -> Self {
        Calculator
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CalculateInput {
    /// One of: add, subtract, multiply, divide, power, sqrt, mod, abs, negate, round.
    pub operator: String,
    /// Decimal numbers as strings, e.g. ["0.1", "0.2"]. add/multiply: two or more; subtract, divide,
    /// power (whole exponent), mod: exactly two; sqrt, abs, negate: one; round: the number and
    /// optionally the decimal places (default 0).
    pub operands: Vec<String>,
    /// Significant digits of the result, rounded half-even (default 28, at most 5000).
    #[serde(default)]
    pub precision: Option<u64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NumberOutput {
    /// The result as a decimal string.
    pub result: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExpressionInput {
    /// An arithmetic expression, e.g. "(1 + 2) * 3 / 7" or "sqrt(2) ^ 2". Operators: + - * / % ^,
    /// parentheses, unary minus; functions: sqrt, abs, min, max, round(x, places).
    pub expression: String,
    /// Significant digits of the result (default 28, at most 5000).
    #[serde(default)]
    pub precision: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StatisticsInput {
    /// One of: count, sum, mean, median, mode, min, max, range, variance_sample,
    /// variance_population, stdev_sample, stdev_population, percentile.
    pub operation: String,
    /// The data, as decimal strings.
    pub values: Vec<String>,
    /// For `percentile`: which one, 0-100 (linear interpolation between closest ranks, as NumPy's
    /// default and Excel's PERCENTILE.INC).
    #[serde(default)]
    pub percentile: Option<String>,
    /// Significant digits of the result (default 28).
    #[serde(default)]
    pub precision: Option<u64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StatisticsOutput {
    /// The result as a decimal string (for `mode`: the modes, comma-separated).
    pub result: String,
    /// For `mode`: every most frequent value, ascending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ConvertInput {
    /// The quantity, as a decimal string.
    pub value: String,
    /// The unit to convert from, e.g. "in", "lb", "C", "km/h", "GiB".
    pub from: String,
    /// The unit to convert to, of the same category.
    pub to: String,
    /// Significant digits of the result (default 28).
    #[serde(default)]
    pub precision: Option<u64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConvertOutput {
    /// The converted quantity, as a decimal string.
    pub result: String,
    /// The unit of the result.
    pub unit: String,
}

fn numbers(list: &[String]) -> decimal::Result<Vec<BigDecimal>> {
    list.iter().map(|s| decimal::parse(s)).collect()
}

fn precision(p: Option<u64>) -> decimal::Result<u64> {
    decimal::check_precision(p.unwrap_or(DEFAULT_PRECISION))
}

fn calculate(input: &CalculateInput) -> decimal::Result<String> {
    let p = precision(input.precision)?;
    let ops = numbers(&input.operands)?;
    let op = input.operator.as_str();
    let arity = |range: std::ops::RangeInclusive<usize>, what: &str| -> decimal::Result<()> {
        if range.contains(&ops.len()) {
            Ok(())
        } else {
            Err(format!("{op} takes {what}, got {} operand(s)", ops.len()))
        }
    };
    let r = match op {
        "add" | "multiply" => {
            arity(2..=10_000, "two or more operands")?;
            let mut acc = ops[0].clone();
            for x in &ops[1..] {
                acc = if op == "add" { decimal::add(&acc, x)? } else { decimal::mul(&acc, x)? };
            }
            acc
        }
        "subtract" => {
            arity(2..=2, "exactly two operands")?;
            decimal::sub(&ops[0], &ops[1])?
        }
        "divide" => {
            arity(2..=2, "exactly two operands")?;
            decimal::div(&ops[0], &ops[1], p)?
        }
        "power" => {
            arity(2..=2, "a base and a whole exponent")?;
            decimal::pow(&ops[0], &ops[1], p)?
        }
        "mod" => {
            arity(2..=2, "exactly two operands")?;
            decimal::rem(&ops[0], &ops[1])?
        }
        "sqrt" => {
            arity(1..=1, "one operand")?;
            decimal::sqrt(&ops[0], p)?
        }
        "abs" => {
            arity(1..=1, "one operand")?;
            ops[0].abs()
        }
        "negate" => {
            arity(1..=1, "one operand")?;
            -ops[0].clone()
        }
        "round" => {
            arity(1..=2, "a number and optionally decimal places")?;
            decimal::round(&ops[0], &ops.get(1).cloned().unwrap_or_default())?
        }
        other => {
            return Err(format!(
                "unknown operator {other:?}; use add, subtract, multiply, divide, power, sqrt, mod, abs, negate or round"
            ))
        }
    };
    Ok(decimal::render(&r, p))
}

#[tool_router(server_handler)]
impl Calculator {
    #[tool(
        description = "Exact decimal arithmetic on numbers written as strings (no floating-point error: 0.1 + 0.2 = 0.3). Operators: add, subtract, multiply, divide, power, sqrt, mod (sign of the dividend), abs, negate, round (half-even to N decimal places). The result is rounded half-even to `precision` significant digits (default 28, up to 5000)."
    )]
    fn exact_calculate(
        &self,
        Parameters(input): Parameters<CalculateInput>,
    ) -> Result<Json<NumberOutput>, String> {
        calculate(&input).map(|result| Json(NumberOutput { result }))
    }

    #[tool(
        description = "Evaluate an arithmetic expression exactly, e.g. \"(0.1 + 0.2) * 3\" or \"sqrt(2)^2 - 2\". Supports + - * / % ^ (whole exponents), parentheses, unary minus and the functions sqrt, abs, min, max, round(x, places). Returns a decimal string rounded to `precision` significant digits (default 28)."
    )]
    fn evaluate_expression(
        &self,
        Parameters(input): Parameters<ExpressionInput>,
    ) -> Result<Json<NumberOutput>, String> {
        let p = precision(input.precision)?;
        let v = expr::evaluate(&input.expression, p)?;
        Ok(Json(NumberOutput {
            result: decimal::render(&v, p),
        }))
    }

    #[tool(
        description = "Descriptive statistics over numbers written as strings: count, sum, mean, median, mode (all modes), min, max, range, variance_sample, variance_population, stdev_sample, stdev_population, percentile (set `percentile` 0-100; linear interpolation between closest ranks). Exact decimal arithmetic."
    )]
    fn statistics(
        &self,
        Parameters(input): Parameters<StatisticsInput>,
    ) -> Result<Json<StatisticsOutput>, String> {
        let p = precision(input.precision)?;
        let values = numbers(&input.values)?;
        let q = input
            .percentile
            .as_deref()
            .map(decimal::parse)
            .transpose()?;
        Ok(Json(
            match stats::compute(&input.operation, &values, q.as_ref(), p)? {
                stats::Stat::One(v) => StatisticsOutput {
                    result: decimal::render(&v, p),
                    modes: None,
                },
                stats::Stat::Many(vs) => {
                    let modes: Vec<String> = vs.iter().map(|v| decimal::render(v, p)).collect();
                    StatisticsOutput {
                        result: modes.join(","),
                        modes: Some(modes),
                    }
                }
            },
        ))
    }

    #[tool(
        description = "Convert a quantity between units of one category, exactly: length (mm, cm, m, km, in, ft, yd, mi, nmi), mass (mg, g, kg, t, oz, lb, st), temperature (C, F, K), time (ns … week), area (cm2, m2, ha, km2, ft2, acre, mi2), volume (ml, l, m3, floz, pt, qt, gal, ft3), speed (m/s, km/h, mph, ft/s, kn), pressure (Pa, kPa, bar, atm, psi, mmHg, torr), energy (J, kJ, cal, kcal, Wh, kWh, eV, BTU), data (bit, byte, kB, MB, GB, TB, KiB, MiB, GiB, TiB, kbit, Mbit, Gbit)."
    )]
    fn convert_units(
        &self,
        Parameters(input): Parameters<ConvertInput>,
    ) -> Result<Json<ConvertOutput>, String> {
        let p = precision(input.precision)?;
        let v = decimal::parse(&input.value)?;
        let r = units::convert(&v, input.from.trim(), input.to.trim(), p)?;
        Ok(Json(ConvertOutput {
            result: decimal::render(&r, p),
            unit: input.to.trim().to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(op: &str, operands: &[&str], precision: Option<u64>) -> Result<String, String> {
        calculate(&CalculateInput {
            operator: op.into(),
            operands: operands.iter().map(|s| s.to_string()).collect(),
            precision,
        })
    }

    #[test]
    fn exact_decimals() {
        assert_eq!(calc("add", &["0.1", "0.2"], None).unwrap(), "0.3");
        assert_eq!(
            calc("divide", &["1", "3"], Some(50)).unwrap(),
            format!("0.{}", "3".repeat(50))
        );
        assert_eq!(
            calc("divide", &["1", "0"], None).unwrap_err(),
            "division by zero"
        );
        assert!(calc("sqrt", &["-1"], None)
            .unwrap_err()
            .contains("negative"));
        assert!(calc("add", &["x", "1"], None)
            .unwrap_err()
            .contains("not a decimal"));
        assert!(calc("power", &["10", "1000000"], None)
            .unwrap_err()
            .contains("overflow"));
        assert_eq!(calc("power", &["1.1", "2"], None).unwrap(), "1.21");
        assert_eq!(calc("mod", &["10", "3"], None).unwrap(), "1");
        assert_eq!(calc("round", &["2.5"], None).unwrap(), "2");
        assert_eq!(calc("negate", &["5"], None).unwrap(), "-5");
        assert!(calc("subtract", &["1"], None)
            .unwrap_err()
            .contains("exactly two"));
        assert!(calc("divide", &["1", "3"], Some(0)).is_err());
    }
}
