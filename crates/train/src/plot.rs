//! Figures as PNG: cross-validation reports in; the validation-accuracy-per-epoch figure (like
//! the study's training figure) and confusion matrices out. Text is drawn with a font compiled
//! into the program (Ubuntu Light, from `epaint_default_fonts`), so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::cv::CvReport;
use crate::metrics::Confusion;

/// A figure that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {}: {reason}", .path.display())]
pub struct PlotError {
    pub path: std::path::PathBuf,
    pub reason: String,
}

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a valid TTF compiled into the binary; failing to parse it is impossible
        // short of a broken build, and then text is simply not drawn.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

fn fail(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> PlotError + '_ {
    move |e| PlotError {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Distinct line colours (Okabe–Ito, readable by colour-blind people, its yellow darkened to
/// show on white; then grey and dark red).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(190, 175, 20),
    RGBColor(130, 130, 130),
    RGBColor(150, 30, 45),
];

/// Validation accuracy per epoch of each head: the mean over cross-validation runs as a line,
/// ±1 standard deviation as a band; the legend gives each head's final accuracy and interval.
pub fn plot_curves(reports: &[CvReport], title: &str, path: &Path) -> Result<(), PlotError> {
    register_font();
    let err = fail(path);
    let curves: Vec<Vec<(f64, f64)>> = reports.iter().map(CvReport::mean_curve).collect();
    let epochs = curves.iter().map(Vec::len).max().unwrap_or(1).max(2);
    let lowest = curves
        .iter()
        .flatten()
        .map(|(m, s)| m - s)
        .fold(1.0f64, f64::min);
    let y_min = ((lowest - 0.02) * 20.0).floor() / 20.0;
    let y_min = y_min.clamp(0.0, 0.9);
    let root = BitMapBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(64)
        .build_cartesian_2d(1f64..epochs as f64, y_min..1.0f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("validation accuracy (mean over folds and seeds)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (report, curve)) in reports.iter().zip(&curves).enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let band: Vec<(f64, f64)> = curve
            .iter()
            .enumerate()
            .map(|(e, (m, s))| ((e + 1) as f64, (m + s).min(1.0)))
            .chain(
                curve
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(e, (m, s))| ((e + 1) as f64, (m - s).max(y_min))),
            )
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.12))))
            .map_err(|e| err(&e))?;
        let label = format!(
            "{}: {} (95% interval), macro-F1 {:.3}",
            report.spec.name, report.accuracy, report.macro_f1
        );
        chart
            .draw_series(LineSeries::new(
                curve
                    .iter()
                    .enumerate()
                    .map(|(e, (m, _))| ((e + 1) as f64, *m)),
                colour.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A cross-validated head's confusion matrix (mean counts per seed).
pub fn plot_cv_confusion(report: &CvReport, path: &Path) -> Result<(), PlotError> {
    let title = format!(
        "{}: {}-fold CV x {} seeds, accuracy {}, macro-F1 {:.3}",
        report.spec.name,
        report.k,
        report.repeats.len(),
        report.accuracy,
        report.macro_f1
    );
    plot_confusion(&report.confusion, report.repeats.len(), &title, path)
}

/// A confusion matrix as a heat map: rows true labels, columns predicted; each cell shows its
/// count (divided by `per`, the number of pooled repeats) and its share of the row, shaded by
/// that share.
pub fn plot_confusion(
    confusion: &Confusion,
    per: usize,
    title: &str,
    path: &Path,
) -> Result<(), PlotError> {
    register_font();
    let err = fail(path);
    let k = confusion.labels.len().max(1);
    let cell = (560 / k as i32).clamp(60, 160);
    let (left, top) = (150, 90);
    let width = (left + cell * k as i32 + 40).max(760);
    let height = top + cell * k as i32 + 80;
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let text = |size: i32| TextStyle::from((FONT, size).into_font()).color(&BLACK);
    let centred = |size: i32| {
        text(size).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ))
    };
    root.draw(&Text::new(title.to_owned(), (16, 16), text(20)))
        .map_err(|e| err(&e))?;
    let grid_centre_x = left + cell * k as i32 / 2;
    root.draw(&Text::new(
        "predicted",
        (grid_centre_x, top - 40),
        centred(18),
    ))
    .map_err(|e| err(&e))?;
    root.draw(&Text::new("true", (left - 120, top - 40), text(18)))
        .map_err(|e| err(&e))?;
    for (i, row) in confusion.matrix.iter().enumerate() {
        let row_total: usize = row.iter().sum();
        let y = top + cell * i as i32;
        root.draw(&Text::new(
            confusion.labels[i].clone(),
            (left - 130, y + cell / 2 - 9),
            text(18),
        ))
        .map_err(|e| err(&e))?;
        for (j, &count) in row.iter().enumerate() {
            let x = left + cell * j as i32;
            let share = count as f64 / row_total.max(1) as f64;
            let shade = |c: u8| (255.0 - share * (255.0 - c as f64)) as u8;
            let fill = RGBColor(shade(8), shade(81), shade(156));
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                fill.filled(),
            ))
            .map_err(|e| err(&e))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(200, 200, 200),
            ))
            .map_err(|e| err(&e))?;
            let ink = if share > 0.5 { WHITE } else { BLACK };
            let value = if per > 1 {
                format!("{:.1}", count as f64 / per as f64)
            } else {
                count.to_string()
            };
            root.draw(&Text::new(
                value,
                (x + cell / 2, y + cell / 2 - 10),
                centred(20).color(&ink),
            ))
            .map_err(|e| err(&e))?;
            root.draw(&Text::new(
                format!("{:.0}%", share * 100.0),
                (x + cell / 2, y + cell / 2 + 14),
                centred(15).color(&ink),
            ))
            .map_err(|e| err(&e))?;
        }
    }
    for (j, label) in confusion.labels.iter().enumerate() {
        let x = left + cell * j as i32 + cell / 2;
        root.draw(&Text::new(label.clone(), (x, top - 14), centred(18)))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
