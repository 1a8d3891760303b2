//! DOCX with docx-rs: headings as Heading styles, lists as indented paragraphs with their markers,
//! tables, code in a monospaced font, block quotes indented and italic. docx-rs writes fixed
//! timestamps, so the same input gives the same bytes.

use super::model::{Block, Span};
use docx_rs::{Docx, Paragraph, Run, RunFonts, Style, StyleType, Table, TableCell, TableRow};

fn runs(mut p: Paragraph, spans: &[Span]) -> Paragraph {
    for s in spans {
        let mut r = Run::new().add_text(s.text.as_str());
        if s.bold {
            r = r.bold();
        }
        if s.italic {
            r = r.italic();
        }
        if s.code {
            r = r.fonts(RunFonts::new().ascii("Courier New").hi_ansi("Courier New"));
        }
        // Links are written as underlined text followed by the address: docx-rs numbers hyperlink
        // relationships from a process-wide counter, which would make the output differ per call.
        p = match &s.link {
            Some(url) => {
                let p = p.add_run(r.underline("single"));
                if s.text.contains(url.as_str()) {
                    p
                } else {
                    p.add_run(Run::new().add_text(format!(" ({url})")))
                }
            }
            None => p.add_run(r),
        };
    }
    p
}

pub fn render(title: &str, blocks: &[Block]) -> Result<Vec<u8>, String> {
    let mut doc = Docx::new();
    for (id, name, size) in [
        ("Title", "Title", 40),
        ("Heading1", "Heading 1", 32),
        ("Heading2", "Heading 2", 28),
        ("Heading3", "Heading 3", 24),
    ] {
        doc = doc.add_style(
            Style::new(id, StyleType::Paragraph)
                .name(name)
                .size(size)
                .bold(),
        );
    }
    doc = doc.add_paragraph(
        Paragraph::new()
            .style("Title")
            .add_run(Run::new().add_text(title)),
    );
    for b in blocks {
        match b {
            Block::Heading(level, spans) => {
                let style = format!("Heading{}", (*level).min(3));
                doc = doc.add_paragraph(runs(Paragraph::new().style(&style), spans));
            }
            Block::Paragraph(spans) => doc = doc.add_paragraph(runs(Paragraph::new(), spans)),
            Block::Item {
                depth,
                marker,
                spans,
            } => {
                let p = Paragraph::new()
                    .indent(Some(360 * (*depth as i32 + 1)), None, None, None)
                    .add_run(Run::new().add_text(format!("{marker} ")));
                doc = doc.add_paragraph(runs(p, spans));
            }
            Block::Code(code) => {
                for line in code.lines() {
                    let r = Run::new()
                        .add_text(line)
                        .fonts(RunFonts::new().ascii("Courier New").hi_ansi("Courier New"))
                        .size(18);
                    doc = doc.add_paragraph(
                        Paragraph::new()
                            .indent(Some(360), None, None, None)
                            .add_run(r),
                    );
                }
            }
            Block::Quote(spans) => {
                let mut italic = spans.to_vec();
                italic.iter_mut().for_each(|s| s.italic = true);
                doc = doc.add_paragraph(runs(
                    Paragraph::new().indent(Some(720), None, None, None),
                    &italic,
                ));
            }
            Block::Table { header, rows } => {
                let row = |cells: &[Vec<Span>], bold: bool| {
                    TableRow::new(
                        cells
                            .iter()
                            .map(|c| {
                                let mut c = c.clone();
                                c.iter_mut().for_each(|s| s.bold |= bold);
                                TableCell::new().add_paragraph(runs(Paragraph::new(), &c))
                            })
                            .collect(),
                    )
                };
                let mut all = vec![row(header, true)];
                all.extend(rows.iter().map(|r| row(r, false)));
                doc = doc.add_table(Table::new(all));
            }
            Block::Rule => {
                doc =
                    doc.add_paragraph(Paragraph::new().add_run(Run::new().add_text("―".repeat(20))))
            }
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    doc.build()
        .pack(&mut out)
        .map_err(|e| format!("cannot write the DOCX: {e}"))?;
    Ok(out.into_inner())
}
