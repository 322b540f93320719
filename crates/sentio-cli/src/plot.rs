//! The SVG plots `sentio eval --plots DIR` writes: the confusion matrix as a heat map, and
//! macro-F1 per segment as bars. Plain SVG, viewable in any browser.

use std::fmt::Write as _;

use sentio_model::Label;

use crate::batch::Scorecard;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn confusion_svg(card: &Scorecard) -> String {
    let cell = 90;
    let (left, top) = (110, 60);
    let size = left + cell * 3 + 20;
    let max = card
        .confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{}" font-family="sans-serif" font-size="13">
<text x="{left}" y="20" font-weight="bold">Confusion matrix (n={}, accuracy {:.3}, macro-F1 {:.3})</text>
<text x="{}" y="45" text-anchor="middle">predicted</text>
"#,
        top + cell * 3 + 40,
        card.n,
        card.accuracy,
        card.macro_f1,
        left + cell * 3 / 2
    );
    for (i, gold) in Label::ALL.iter().enumerate() {
        let y = top + cell * i;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8,
            y + cell / 2 + 4,
            gold.as_str()
        );
        for (j, _) in Label::ALL.iter().enumerate() {
            let n = card.confusion[i][j];
            let shade = 255 - (200 * n / max) as u8;
            let x = left + cell * j;
            let text_fill = if shade < 140 { "#fff" } else { "#000" };
            let _ = writeln!(
                svg,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="#fff"/><text x="{}" y="{}" text-anchor="middle" fill="{text_fill}">{n}</text>"##,
                x + cell / 2,
                y + cell / 2 + 4
            );
        }
    }
    for (j, predicted) in Label::ALL.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            left + cell * j + cell / 2,
            top + cell * 3 + 18,
            predicted.as_str()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

pub fn segments_svg(overall: &Scorecard, segments: &[(String, Scorecard)]) -> String {
    let rows: Vec<(String, f64, usize)> =
        std::iter::once(("overall".to_owned(), overall.macro_f1, overall.n))
            .chain(
                segments
                    .iter()
                    .map(|(name, c)| (name.clone(), c.macro_f1, c.n)),
            )
            .collect();
    let (left, bar_h, width) = (220, 24, 360);
    let height = 50 + rows.len() * (bar_h + 8);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="13">
<text x="10" y="20" font-weight="bold">Macro-F1 by segment</text>
"#,
        left + width + 80
    );
    for (i, (name, f1, n)) in rows.iter().enumerate() {
        let y = 40 + i * (bar_h + 8);
        let w = (f1 * width as f64).round();
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{} (n={n})</text><rect x="{left}" y="{y}" width="{w}" height="{bar_h}" fill="#1a73e8"/><text x="{}" y="{}">{f1:.3}</text>"##,
            left - 8,
            y + bar_h / 2 + 4,
            escape(name),
            left as f64 + w + 6.0,
            y + bar_h / 2 + 4
        );
    }
    svg.push_str("</svg>\n");
    svg
}
