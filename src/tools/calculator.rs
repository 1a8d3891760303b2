//! The calculator tool server: exact decimal arithmetic, descriptive statistics and unit
//! conversion, on decimal strings so no binary floating point rounding creeps in.

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU64;
use std::str::FromStr;

/// Longest accepted number literal and largest precision, so no call can run away.
const MAX_DIGITS: usize = 1000;
const MAX_PRECISION: u64 = 1000;

#[derive(Debug, Clone, Default)]
pub struct Calculator;

impl Calculator {
    pub fn new() -> Self {
        Calculator
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CalculateInput {
    /// One of: add, subtract, multiply, divide, abs, negate.
    pub operator: String,
    /// Decimal numbers as strings, e.g. ["0.1", "0.2"]; add/multiply take two or more, subtract/divide exactly two, abs/negate one.
    pub operands: Vec<String>,
    /// Significant digits of the result (default 28, at most 1000).
    #[serde(default)]
    pub precision: Option<u64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NumberOutput {
    /// The exact result as a decimal string.
    pub result: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StatisticsInput {
    /// One of: count, sum, mean, min, max.
    pub operation: String,
    /// Decimal numbers as strings.
    pub values: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ConvertInput {
    /// The quantity, as a decimal string.
    pub value: String,
    /// Length unit: mm, cm, m, km, in, ft, yd, mi.
    pub from: String,
    /// Length unit: mm, cm, m, km, in, ft, yd, mi.
    pub to: String,
}

fn number(s: &str) -> Result<BigDecimal, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_DIGITS || t.contains(['e', 'E']) && t.len() > 40 {
        return Err(format!(
            "{s:?} is not a decimal number of at most {MAX_DIGITS} characters"
        ));
    }
    BigDecimal::from_str(t).map_err(|_| format!("{s:?} is not a decimal number"))
}

fn render(v: BigDecimal, precision: u64) -> String {
    let digits = NonZeroU64::new(precision).unwrap_or(NonZeroU64::MIN);
    v.with_precision_round(digits, RoundingMode::HalfEven)
        .normalized()
        .to_plain_string()
}

#[tool_router(server_handler)]
impl Calculator {
    #[tool(
        description = "Exact decimal arithmetic on decimal strings (no floating point error: 0.1 + 0.2 = 0.3). Operators: add, subtract, multiply, divide, abs, negate. Returns the result as a decimal string rounded half-even to `precision` significant digits (default 28)."
    )]
    fn exact_calculate(
        &self,
        Parameters(input): Parameters<CalculateInput>,
    ) -> Result<Json<NumberOutput>, String> {
        let precision = input.precision.unwrap_or(28);
        if precision == 0 || precision > MAX_PRECISION {
            return Err(format!("precision must be between 1 and {MAX_PRECISION}"));
        }
        let ops = input
            .operands
            .iter()
            .map(|s| number(s))
            .collect::<Result<Vec<_>, _>>()?;
        let arity = |n: usize| -> Result<(), String> {
            if ops.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{} takes exactly {n} operand(s), got {}",
                    input.operator,
                    ops.len()
                ))
            }
        };
        let result = match input.operator.as_str() {
            "add" | "multiply" => {
                if ops.len() < 2 {
                    return Err(format!("{} takes two or more operands", input.operator));
                }
                let mut it = ops.into_iter();
                let first = it.next().unwrap_or_default();
                if input.operator == "add" {
                    it.fold(first, |a, b| a + b)
                } else {
                    it.fold(first, |a, b| a * b)
                }
            }
            "subtract" => {
                arity(2)?;
                &ops[0] - &ops[1]
            }
            "divide" => {
                arity(2)?;
                if ops[1].is_zero() {
                    return Err("division by zero".into());
                }
                let scale = precision as i64 + 10;
                (&ops[0] * BigDecimal::from(10).powi(scale) / &ops[1])
                    .with_scale_round(0, RoundingMode::Down)
                    / BigDecimal::from(10).powi(scale)
            }
            "abs" => {
                arity(1)?;
                ops[0].abs()
            }
            "negate" => {
                arity(1)?;
                -ops[0].clone()
            }
            other => {
                return Err(format!(
                "unknown operator {other:?}; use add, subtract, multiply, divide, abs or negate"
            ))
            }
        };
        Ok(Json(NumberOutput {
            result: render(result, precision),
        }))
    }

    #[tool(
        description = "Descriptive statistics over decimal strings. Operations: count, sum, mean, min, max. Returns the exact result as a decimal string."
    )]
    fn statistics(
        &self,
        Parameters(input): Parameters<StatisticsInput>,
    ) -> Result<Json<NumberOutput>, String> {
        let values = input
            .values
            .iter()
            .map(|s| number(s))
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() && input.operation != "count" {
            return Err("values must not be empty".into());
        }
        let sum = || values.iter().fold(BigDecimal::zero(), |a, b| a + b);
        let result = match input.operation.as_str() {
            "count" => BigDecimal::from(values.len() as u64),
            "sum" => sum(),
            "mean" => sum() / BigDecimal::from(values.len() as u64),
            "min" => values.iter().min().cloned().unwrap_or_default(),
            "max" => values.iter().max().cloned().unwrap_or_default(),
            other => {
                return Err(format!(
                    "unknown operation {other:?}; use count, sum, mean, min or max"
                ))
            }
        };
        Ok(Json(NumberOutput {
            result: render(result, 28),
        }))
    }

    #[tool(description = "Convert a length between units exactly: mm, cm, m, km, in, ft, yd, mi.")]
    fn convert_units(
        &self,
        Parameters(input): Parameters<ConvertInput>,
    ) -> Result<Json<NumberOutput>, String> {
        let meters = |u: &str| -> Result<BigDecimal, String> {
            let f = match u {
                "mm" => "0.001",
                "cm" => "0.01",
                "m" => "1",
                "km" => "1000",
                "in" => "0.0254",
                "ft" => "0.3048",
                "yd" => "0.9144",
                "mi" => "1609.344",
                other => {
                    return Err(format!(
                        "unknown unit {other:?}; accepted: mm, cm, m, km, in, ft, yd, mi"
                    ))
                }
            };
            number(f)
        };
        let v = number(&input.value)?;
        let result = v * meters(&input.from)? / meters(&input.to)?;
        Ok(Json(NumberOutput {
            result: render(result, 28),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(op: &str, operands: &[&str], precision: Option<u64>) -> Result<String, String> {
        let input = CalculateInput {
            operator: op.into(),
            operands: operands.iter().map(|s| s.to_string()).collect(),
            precision,
        };
        Calculator
            .exact_calculate(Parameters(input))
            .map(|j| j.0.result)
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
        assert!(calc("add", &["x", "1"], None)
            .unwrap_err()
            .contains("not a decimal"));
    }
}
