//! The document generator tool server: Markdown in, a PDF, DOCX or HTML document out, returned as
//! an embedded resource (base64 with its MIME type) plus a short summary. Deterministic: the same
//! input gives byte-identical output. Input and output sizes are capped.

mod docx;
mod html;
mod model;
mod pdf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use rmcp::{schemars, tool, tool_router};
use serde::Deserialize;

pub const MAX_INPUT: usize = 256 * 1024;
pub const MAX_OUTPUT: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Docs;

impl Docs {
    pub fn new() -> Self {
        Docs
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Pdf,
    Docx,
    Html,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GenerateInput {
    /// pdf, docx or html.
    pub format: Format,
    /// The document title (shown at the top, and as the HTML title).
    pub title: String,
    /// The content in Markdown: headings, paragraphs, **bold**, *italic*, lists (nested), tables,
    /// code blocks, links, block quotes. Raw HTML is shown as text. At most 256 KiB.
    pub markdown: String,
}

/// A rendered document: bytes, MIME type, file extension, pages where known.
pub type Rendered = (Vec<u8>, &'static str, &'static str, Option<usize>);

/// Renders a document.
pub fn generate(input: &GenerateInput) -> Result<Rendered, String> {
    if input.markdown.len() + input.title.len() > MAX_INPUT {
        return Err(format!("the input is larger than {} KiB", MAX_INPUT / 1024));
    }
    let out = match input.format {
        Format::Html => (
            html::render(&input.title, &input.markdown),
            "text/html",
            "html",
            None,
        ),
        Format::Docx => (
            docx::render(&input.title, &model::parse(&input.markdown))?,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
            None,
        ),
        Format::Pdf => {
            let (bytes, pages) = pdf::render(&input.title, &model::parse(&input.markdown));
            (bytes, "application/pdf", "pdf", Some(pages))
        }
    };
    if out.0.len() > MAX_OUTPUT {
        return Err(format!(
            "the document would be larger than {} MiB",
            MAX_OUTPUT / 1024 / 1024
        ));
    }
    Ok(out)
}

#[tool_router(server_handler)]
impl Docs {
    #[tool(
        description = "Generate a document from Markdown. format: pdf, docx or html. Supports headings, paragraphs, bold/italic, nested lists, tables, code blocks, links and block quotes. Returns the file as an embedded resource (base64 with its MIME type) and a summary with its size (and page count for PDF). The same input always gives the same bytes."
    )]
    fn generate_document(
        &self,
        Parameters(input): Parameters<GenerateInput>,
    ) -> Result<CallToolResult, String> {
        let (bytes, mime, ext, pages) = generate(&input)?;
        let summary = match pages {
            Some(p) => format!(
                "{} document, {} bytes, {p} page(s)",
                ext.to_uppercase(),
                bytes.len()
            ),
            None => format!("{} document, {} bytes", ext.to_uppercase(), bytes.len()),
        };
        let name: String = input
            .title
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        let uri = format!(
            "document://{}.{ext}",
            if name.is_empty() { "document" } else { &name }
        );
        let resource = ResourceContents::blob(STANDARD.encode(&bytes), uri).with_mime_type(mime);
        Ok(CallToolResult::success(vec![
            ContentBlock::text(summary),
            ContentBlock::resource(resource),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(format: Format, md: &str) -> GenerateInput {
        GenerateInput {
            format,
            title: "Report <1>".into(),
            markdown: md.into(),
        }
    }

    const MD: &str = "# Intro\n\nHello **world** and [a link](https://example.com).\n\n- one\n  - nested\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\nfn main() {}\n```\n\n> quoted\n\n<script>alert(1)</script>\n";

    #[test]
    fn html_escapes_everything_from_the_input() {
        let (bytes, mime, _, _) = generate(&input(Format::Html, MD)).unwrap();
        let html = String::from_utf8(bytes).unwrap();
        assert_eq!(mime, "text/html");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("<title>Report &lt;1&gt;</title>"));
        assert!(
            html.contains("<table>") && html.contains("<blockquote>") && html.contains("<code>")
        );
    }

    #[test]
    fn every_format_is_deterministic() {
        for f in ["pdf", "docx", "html"] {
            let mk = || {
                let fmt = match f {
                    "pdf" => Format::Pdf,
                    "docx" => Format::Docx,
                    _ => Format::Html,
                };
                generate(&input(fmt, MD)).unwrap().0
            };
            assert_eq!(mk(), mk(), "{f}");
        }
    }

    #[test]
    fn limits() {
        let big = "a".repeat(MAX_INPUT + 1);
        assert!(generate(&input(Format::Html, &big))
            .unwrap_err()
            .contains("larger than"));
        let long = "word ".repeat(20_000);
        let (pdf, _, _, pages) = generate(&input(Format::Pdf, &long)).unwrap();
        assert!(pages.unwrap() > 1);
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
