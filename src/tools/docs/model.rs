//! Markdown, parsed once with pulldown-cmark into the few blocks the DOCX and PDF writers lay out.
//! Raw HTML in the input is kept as literal text, never as markup.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// A run of text with its inline style.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    pub text: String,
    pub bold: bool,
    pub italic: bool,
    pub code: bool,
    pub link: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, Vec<Span>),
    Paragraph(Vec<Span>),
    /// A list item's first paragraph, with its nesting depth (0 = top) and marker.
    Item {
        depth: usize,
        marker: String,
        spans: Vec<Span>,
    },
    Code(String),
    Quote(Vec<Span>),
    Table {
        header: Vec<Vec<Span>>,
        rows: Vec<Vec<Vec<Span>>>,
    },
    Rule,
}

/// A table being read: header cells, body rows, and whether the header is still open.
type TableBuild = (Vec<Vec<Span>>, Vec<Vec<Vec<Span>>>, bool);

pub fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH
}

/// The plain text of spans.
#[cfg(test)]
pub fn plain(spans: &[Span]) -> String {
    spans.iter().map(|s| s.text.as_str()).collect()
}

pub fn parse(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    let (mut bold, mut italic) = (0usize, 0usize);
    let mut link: Option<String> = None;
    // List stack: next number for ordered lists, None for bullets.
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut item_marker: Option<String> = None;
    let mut quote = 0usize;
    let mut code: Option<String> = None;
    let mut table: Option<TableBuild> = None;
    let mut row: Vec<Vec<Span>> = Vec::new();

    let push = |spans: &mut Vec<Span>,
                text: &str,
                bold: usize,
                italic: usize,
                code: bool,
                link: &Option<String>| {
        spans.push(Span {
            text: text.to_string(),
            bold: bold > 0,
            italic: italic > 0,
            code,
            link: link.clone(),
        });
    };

    // Ends the pending text as a block of the kind the context says.
    macro_rules! flush {
        () => {
            if !spans.is_empty() && table.is_none() {
                let taken = std::mem::take(&mut spans);
                match (item_marker.take(), quote > 0) {
                    (Some(marker), _) => blocks.push(Block::Item {
                        depth: lists.len().saturating_sub(1),
                        marker,
                        spans: taken,
                    }),
                    (None, true) => blocks.push(Block::Quote(taken)),
                    (None, false) => blocks.push(Block::Paragraph(taken)),
                }
            }
        };
    }

    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Start(Tag::Strong) => bold += 1,
            Event::End(TagEnd::Strong) => bold = bold.saturating_sub(1),
            Event::Start(Tag::Emphasis) => italic += 1,
            Event::End(TagEnd::Emphasis) => italic = italic.saturating_sub(1),
            Event::Start(Tag::Link { dest_url, .. }) => link = Some(dest_url.to_string()),
            Event::End(TagEnd::Link) => link = None,
            Event::Start(Tag::List(start)) => {
                flush!();
                lists.push(start);
            }
            Event::End(TagEnd::List(_)) => {
                lists.pop();
            }
            Event::Start(Tag::Item) => {
                let marker = match lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}.");
                        *n += 1;
                        m
                    }
                    _ => "•".to_string(),
                };
                item_marker = Some(marker);
            }
            Event::End(TagEnd::Item)
            | Event::End(TagEnd::Paragraph)
            | Event::End(TagEnd::HtmlBlock) => flush!(),
            Event::Start(Tag::BlockQuote(_)) => quote += 1,
            Event::End(TagEnd::BlockQuote(_)) => quote = quote.saturating_sub(1),
            Event::Start(Tag::Heading { .. }) => spans.clear(),
            Event::End(TagEnd::Heading(level)) => {
                let n = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                blocks.push(Block::Heading(n, std::mem::take(&mut spans)));
            }
            Event::Start(Tag::CodeBlock(_)) => code = Some(String::new()),
            Event::End(TagEnd::CodeBlock) => {
                if let Some(c) = code.take() {
                    blocks.push(Block::Code(c.trim_end_matches('\n').to_string()));
                }
            }
            Event::Start(Tag::Table(_)) => table = Some((Vec::new(), Vec::new(), true)),
            Event::End(TagEnd::TableHead) => {
                if let Some(t) = table.as_mut() {
                    t.0 = std::mem::take(&mut row);
                    t.2 = false;
                }
            }
            Event::End(TagEnd::TableRow) => {
                if let Some(t) = table.as_mut() {
                    t.1.push(std::mem::take(&mut row));
                }
            }
            Event::End(TagEnd::TableCell) => row.push(std::mem::take(&mut spans)),
            Event::End(TagEnd::Table) => {
                if let Some((header, rows, _)) = table.take() {
                    blocks.push(Block::Table { header, rows });
                }
            }
            Event::Rule => blocks.push(Block::Rule),
            Event::Text(t) | Event::Html(t) | Event::InlineHtml(t) => match code.as_mut() {
                Some(c) => c.push_str(&t),
                None => push(&mut spans, &t, bold, italic, false, &link),
            },
            Event::Code(t) => push(&mut spans, &t, bold, italic, true, &link),
            Event::SoftBreak | Event::HardBreak => {
                push(&mut spans, " ", bold, italic, false, &link)
            }
            _ => {}
        }
    }
    flush!();
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_a_document() {
        let md = "# Title\n\nSome **bold** and *it*.\n\n- a\n  - b\n1. one\n2. two\n\n> quoted\n\n```\ncode <x>\n```\n\n| h1 | h2 |\n|---|---|\n| c1 | c2 |\n\n<script>alert(1)</script>\n";
        let b = parse(md);
        assert!(matches!(&b[0], Block::Heading(1, s) if plain(s) == "Title"));
        assert!(
            matches!(&b[1], Block::Paragraph(s) if plain(s) == "Some bold and it." && s[1].bold && s[3].italic)
        );
        assert!(matches!(&b[2], Block::Item { depth: 0, marker, .. } if marker == "•"));
        assert!(matches!(&b[3], Block::Item { depth: 1, spans, .. } if plain(spans) == "b"));
        assert!(matches!(&b[4], Block::Item { marker, .. } if marker == "1."));
        assert!(matches!(&b[5], Block::Item { marker, .. } if marker == "2."));
        assert!(matches!(&b[6], Block::Quote(s) if plain(s) == "quoted"));
        assert!(matches!(&b[7], Block::Code(c) if c == "code <x>"));
        assert!(
            matches!(&b[8], Block::Table { header, rows } if plain(&header[1]) == "h2" && plain(&rows[0][0]) == "c1")
        );
        assert!(
            b.iter()
                .any(|x| matches!(x, Block::Paragraph(s) if plain(s).contains("<script>"))),
            "{b:?}"
        );
    }
}
