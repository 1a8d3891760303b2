//! `evaluate_expression`: a small recursive-descent evaluator over exact decimals.
//!
//! Grammar (lowest to highest precedence): `+ -`, `* / %`, unary minus, `^` (right-associative,
//! binds tighter than unary minus: `-2^2 = -4`), then numbers, parentheses and function calls
//! `sqrt(x) abs(x) min(a, …) max(a, …) round(x[, places])`. Length, nesting depth and exponent size
//! are bounded, so pathological input is refused at once instead of running away.

use super::decimal::{self, Result};
use bigdecimal::BigDecimal;

pub const MAX_LENGTH: usize = 2000;
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(String),
    Ident(String),
    Op(char),
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '0'..='9' | '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                // Scientific notation: 1e-3.
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    let mut j = i + 1;
                    if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                        j += 1;
                    }
                    if j < chars.len() && chars[j].is_ascii_digit() {
                        while j < chars.len() && chars[j].is_ascii_digit() {
                            j += 1;
                        }
                        i = j;
                    }
                }
                out.push(Token::Num(chars[start..i].iter().collect()));
            }
            'a'..='z' | 'A'..='Z' | '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Token::Ident(
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .to_ascii_lowercase(),
                ));
            }
            '+' | '-' | '*' | '/' | '^' | '%' => {
                out.push(Token::Op(c));
                i += 1;
            }
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            other => {
                return Err(format!(
                    "unexpected character {other:?} at position {}",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    precision: u64,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<BigDecimal> {
        self.enter()?;
        let mut v = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.term()?;
            v = if op == '+' {
                decimal::add(&v, &r)?
            } else {
                decimal::sub(&v, &r)?
            };
        }
        self.depth -= 1;
        Ok(v)
    }

    fn term(&mut self) -> Result<BigDecimal> {
        let mut v = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.unary()?;
            v = match op {
                '*' => decimal::mul(&v, &r)?,
                '/' => decimal::div(&v, &r, self.precision + 10)?,
                _ => decimal::rem(&v, &r)?,
            };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<BigDecimal> {
        match self.peek() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                self.enter()?;
                let v = -self.unary()?;
                self.depth -= 1;
                Ok(v)
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<BigDecimal> {
        let base = self.atom()?;
        if let Some(Token::Op('^')) = self.peek() {
            self.pos += 1;
            self.enter()?;
            let exp = self.unary()?;
            self.depth -= 1;
            return decimal::pow(&base, &exp, self.precision + 10);
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<BigDecimal> {
        match self.next() {
            Some(Token::Num(n)) => decimal::parse(&n),
            Some(Token::LParen) => {
                let v = self.expr()?;
                match self.next() {
                    Some(Token::RParen) => Ok(v),
                    _ => Err("missing closing parenthesis".into()),
                }
            }
            Some(Token::Ident(name)) => self.call(&name),
            Some(t) => Err(format!("unexpected {}", describe(&t))),
            None => Err("the expression ends too early".into()),
        }
    }

    fn call(&mut self, name: &str) -> Result<BigDecimal> {
        if self.next() != Some(Token::LParen) {
            return Err(format!(
                "{name} must be followed by '(' (functions: sqrt, abs, min, max, round)"
            ));
        }
        let mut args = vec![self.expr()?];
        loop {
            match self.next() {
                Some(Token::Comma) => args.push(self.expr()?),
                Some(Token::RParen) => break,
                _ => return Err(format!("missing ')' after the arguments of {name}")),
            }
        }
        let want = |n: std::ops::RangeInclusive<usize>| {
            if n.contains(&args.len()) {
                Ok(())
            } else {
                Err(format!(
                    "{name} takes {} argument(s), got {}",
                    if n.start() == n.end() {
                        n.start().to_string()
                    } else {
                        format!("{}-{}", n.start(), n.end())
                    },
                    args.len()
                ))
            }
        };
        match name {
            "sqrt" => {
                want(1..=1)?;
                decimal::sqrt(&args[0], self.precision + 10)
            }
            "abs" => {
                want(1..=1)?;
                Ok(args[0].abs())
            }
            "min" | "max" => {
                want(1..=usize::MAX)?;
                let pick = args
                    .into_iter()
                    .reduce(|a, b| if (name == "min") == (b < a) { b } else { a });
                pick.ok_or_else(|| "no arguments".into())
            }
            "round" => {
                want(1..=2)?;
                let places = args.get(1).cloned().unwrap_or_default();
                decimal::round(&args[0], &places)
            }
            other => Err(format!(
                "unknown function {other:?} (functions: sqrt, abs, min, max, round)"
            )),
        }
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Num(n) => format!("number {n}"),
        Token::Ident(i) => format!("name {i}"),
        Token::Op(c) => format!("operator '{c}'"),
        Token::LParen => "'('".into(),
        Token::RParen => "')'".into(),
        Token::Comma => "','".into(),
    }
}

/// Evaluates an expression; the result is rendered by the caller at `precision`.
pub fn evaluate(expression: &str, precision: u64) -> Result<BigDecimal> {
    if expression.len() > MAX_LENGTH {
        return Err(format!("expression longer than {MAX_LENGTH} characters"));
    }
    let tokens = lex(expression)?;
    if tokens.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        precision,
    };
    let v = p.expr()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {} at the end", describe(t)));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(s: &str) -> String {
        decimal::render(&evaluate(s, 28).unwrap(), 28)
    }

    #[test]
    fn precedence_and_functions() {
        assert_eq!(eval("0.1 + 0.2"), "0.3");
        assert_eq!(eval("2 + 3 * 4"), "14");
        assert_eq!(eval("(2 + 3) * 4"), "20");
        assert_eq!(eval("-2^2"), "-4");
        assert_eq!(eval("2^3^2"), "512");
        assert_eq!(eval("7 % 3"), "1");
        assert_eq!(eval("sqrt(16) + abs(-2) + max(1, 5, 3) - min(4, 2)"), "9");
        assert_eq!(eval("round(2.675, 2)"), "2.68");
        assert_eq!(eval("1 / 3 * 3"), "1");
        assert_eq!(eval("1e3 / 8"), "125");
    }

    #[test]
    fn errors_are_clear_and_quick() {
        assert_eq!(evaluate("1 / 0", 28).unwrap_err(), "division by zero");
        assert!(evaluate("sqrt(-1)", 28).unwrap_err().contains("negative"));
        assert!(evaluate("2 ^ 99999999", 28)
            .unwrap_err()
            .contains("overflow"));
        assert!(evaluate(&"(".repeat(500), 28)
            .unwrap_err()
            .contains("nested deeper"));
        assert!(evaluate("2 +", 28).unwrap_err().contains("ends too early"));
        assert!(evaluate("2 $ 3", 28)
            .unwrap_err()
            .contains("unexpected character"));
        assert!(evaluate("foo(1)", 28)
            .unwrap_err()
            .contains("unknown function"));
        assert!(evaluate("(1 + 2", 28)
            .unwrap_err()
            .contains("closing parenthesis"));
    }
}
