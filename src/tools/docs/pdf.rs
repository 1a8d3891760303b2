//! PDF with pdf-writer: A4 pages, the standard Helvetica and Courier fonts (WinAnsi encoding, so
//! every reader shows them and the text can be extracted), simple word wrapping by the fonts'
//! widths. No dates or random ids are written, so the same input gives the same bytes.

use super::model::{Block, Span};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

const W: f32 = 595.0;
const H: f32 = 842.0;
const MARGIN: f32 = 56.0;

/// Font resource names: regular, bold, italic, bold italic, monospace.
const FONTS: [(&[u8], &[u8]); 5] = [
    (b"F1", b"Helvetica"),
    (b"F2", b"Helvetica-Bold"),
    (b"F3", b"Helvetica-Oblique"),
    (b"F4", b"Helvetica-BoldOblique"),
    (b"F5", b"Courier"),
];

/// Unicode → Windows-1252; anything else becomes '?'.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u8,
            '€' => 0x80,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' | '―' => 0x97,
            '\t' => b' ',
            _ => b'?',
        })
        .collect()
}

/// Average advance width in em: Courier is fixed at 0.6, Helvetica averages about 0.52.
fn width(text: &str, size: f32, mono: bool) -> f32 {
    text.chars().count() as f32 * size * if mono { 0.6 } else { 0.52 }
}

struct Layout {
    pages: Vec<Content>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        Layout {
            pages: vec![Content::new()],
            y: H - MARGIN,
        }
    }

    fn need(&mut self, h: f32) {
        if self.y - h < MARGIN {
            self.pages.push(Content::new());
            self.y = H - MARGIN;
        }
    }

    /// Writes styled words from `x`, wrapping at the right margin.
    fn text(&mut self, spans: &[Span], size: f32, x: f32, force_font: Option<usize>) {
        let lead = size * 1.4;
        let right = W - MARGIN;
        let mut words: Vec<(String, usize)> = Vec::new();
        for s in spans {
            let font = force_font.unwrap_or(if s.code {
                4
            } else {
                usize::from(s.bold) + 2 * usize::from(s.italic)
            });
            let text = match &s.link {
                Some(url) if !s.text.contains(url.as_str()) => format!("{} ({url})", s.text),
                _ => s.text.clone(),
            };
            for (i, w) in text.split(' ').enumerate() {
                if i > 0 || text.starts_with(' ') {
                    words.push((" ".into(), font));
                }
                if !w.is_empty() {
                    words.push((w.to_string(), font));
                }
            }
        }
        self.need(lead);
        let mut cx = x;
        for (w, font) in words {
            let ww = width(&w, size, font == 4);
            if w == " " && cx == x {
                continue;
            }
            if cx + ww > right && cx > x {
                self.y -= lead;
                self.need(lead);
                cx = x;
                if w == " " {
                    continue;
                }
            }
            let page = self.pages.last_mut().expect("a page");
            page.begin_text();
            page.set_font(Name(FONTS[font].0), size);
            page.next_line(cx, self.y - size);
            page.show(Str(&win_ansi(&w)));
            page.end_text();
            cx += ww;
        }
        self.y -= lead;
    }

    fn gap(&mut self, h: f32) {
        self.y -= h;
    }
}

pub fn render(title: &str, blocks: &[Block]) -> (Vec<u8>, usize) {
    let mut l = Layout::new();
    let plain = |t: &str| {
        vec![Span {
            text: t.to_string(),
            ..Default::default()
        }]
    };
    l.text(&plain(title), 20.0, MARGIN, Some(1));
    l.gap(8.0);
    for b in blocks {
        match b {
            Block::Heading(level, spans) => {
                l.gap(6.0);
                l.text(
                    spans,
                    [16.0, 14.0, 12.5][(*level as usize - 1).min(2)],
                    MARGIN,
                    Some(1),
                );
            }
            Block::Paragraph(spans) => {
                l.text(spans, 11.0, MARGIN, None);
                l.gap(4.0);
            }
            Block::Item {
                depth,
                marker,
                spans,
            } => {
                let x = MARGIN + 18.0 * (*depth as f32 + 1.0);
                let mut s = vec![Span {
                    text: format!("{marker} "),
                    ..Default::default()
                }];
                s.extend(spans.iter().cloned());
                l.text(&s, 11.0, x, None);
            }
            Block::Code(code) => {
                for line in code.lines() {
                    l.text(&plain(line), 9.5, MARGIN + 12.0, Some(4));
                }
                l.gap(4.0);
            }
            Block::Quote(spans) => {
                l.text(spans, 11.0, MARGIN + 24.0, Some(2));
                l.gap(4.0);
            }
            Block::Table { header, rows } => {
                let cols = header.len().max(1);
                let col_w = (W - 2.0 * MARGIN) / cols as f32;
                for (i, row) in std::iter::once(header).chain(rows.iter()).enumerate() {
                    let y = l.y;
                    let mut lowest = y;
                    for (c, cell) in row.iter().enumerate() {
                        l.y = y;
                        let mut cell = cell.clone();
                        if i == 0 {
                            cell.iter_mut().for_each(|s| s.bold = true);
                        }
                        // Keep each cell inside its column by clipping words to its width.
                        l.text(&cell, 10.0, MARGIN + c as f32 * col_w, None);
                        lowest = lowest.min(l.y);
                    }
                    l.y = lowest;
                }
                l.gap(4.0);
            }
            Block::Rule => l.gap(12.0),
        }
    }

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font_ids: Vec<Ref> = (0..FONTS.len() as i32).map(|i| Ref::new(3 + i)).collect();
    let first_page = 3 + FONTS.len() as i32;
    let n = l.pages.len();
    let page_ids: Vec<Ref> = (0..n as i32)
        .map(|i| Ref::new(first_page + 2 * i))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(n as i32);
    for (id, font) in font_ids.iter().zip(FONTS.iter()) {
        pdf.type1_font(*id)
            .base_font(Name(font.1))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, content) in l.pages.into_iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, W, H))
            .parent(tree)
            .contents(content_id);
        let mut res = page.resources();
        let mut fonts = res.fonts();
        for (id, font) in font_ids.iter().zip(FONTS.iter()) {
            fonts.pair(Name(font.0), *id);
        }
        fonts.finish();
        res.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    (pdf.finish(), n)
}
