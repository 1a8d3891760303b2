//! HTML: pulldown-cmark's renderer, with every piece of raw HTML in the input turned into text so
//! it is escaped (a `<script>` in the Markdown is shown, never run), in a fixed page template.

use pulldown_cmark::{html, Event, Parser};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(title: &str, markdown: &str) -> Vec<u8> {
    let events = Parser::new_ext(markdown, super::model::options()).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        other => other,
    });
    let mut body = String::with_capacity(markdown.len() * 2);
    html::push_html(&mut body, events);
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>body{{font-family:sans-serif;max-width:48em;margin:2em auto;line-height:1.5}}pre{{background:#f4f4f4;padding:.6em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.3em .6em}}blockquote{{border-left:3px solid #ccc;margin-left:0;padding-left:1em}}</style>\n</head>\n<body>\n<h1>{title}</h1>\n{body}</body>\n</html>\n"
    )
    .into_bytes()
}
