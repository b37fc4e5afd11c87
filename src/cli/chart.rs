//! `focalgate query --chart FILE.svg`: the answer drawn where a picture reads better than a
//! table — a time series per series key when the answer has periods, a flow chart from origins
//! to destinations for routes, bars otherwise. Quantities of one unit only are drawn (the unit
//! with the most rows), since kilograms and tablets share no axis. Suppressed cells and totals
//! are left out.

use std::collections::{BTreeMap, BTreeSet};

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use crate::app::render::Answer;
use crate::proto::AggregateRow;

/// A quantity for drawing only: the data stay exact decimals everywhere else.
fn value(r: &AggregateRow) -> Option<f64> {
    r.quantity.parse::<f64>().ok()
}

fn position(a: &Answer, dimension: &str) -> Option<usize> {
    a.header.dimensions.iter().position(|d| d == dimension)
}

/// The rows drawn: visible, not totals, of the unit with the most rows.
fn drawn(a: &Answer) -> (String, Vec<&AggregateRow>) {
    let mut per_unit: BTreeMap<&str, usize> = BTreeMap::new();
    for r in a.rows.iter().filter(|r| !r.total && value(r).is_some()) {
        *per_unit.entry(&r.unit_measure).or_default() += 1;
    }
    let unit = per_unit
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(u, _)| u.to_string())
        .unwrap_or_default();
    let rows = a
        .rows
        .iter()
        .filter(|r| !r.total && r.unit_measure == unit && value(r).is_some())
        .collect();
    (unit, rows)
}

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// Draws the answer as SVG.
pub fn draw(a: &Answer) -> Result<String, String> {
    let (unit, rows) = drawn(a);
    if rows.is_empty() {
        return Err("chart: nothing to draw (no visible quantities)".into());
    }
    match (
        position(a, "ORIGIN_AREA"),
        position(a, "DESTINATION_AREA"),
        position(a, "TIME_PERIOD"),
    ) {
        (Some(o), Some(d), _) => flows(a, &unit, &rows, o, d),
        (_, _, Some(t)) => series(a, &unit, &rows, t),
        _ => bars(a, &unit, &rows),
    }
}

fn title(a: &Answer, unit: &str) -> String {
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(", {unit}")
    };
    format!(
        "{} quantity{unit} (log of {} entries)",
        a.dataflow, a.header.tree_size
    )
}

/// One line per series key (every dimension but the period) over the periods.
fn series(a: &Answer, unit: &str, rows: &[&AggregateRow], t: usize) -> Result<String, String> {
    let periods: Vec<&str> = rows
        .iter()
        .map(|r| r.key[t].as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut lines: BTreeMap<String, Vec<(i32, f64)>> = BTreeMap::new();
    for r in rows {
        let name: Vec<&str> = r
            .key
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != t)
            .map(|(_, k)| k.as_str())
            .collect();
        let x = periods.iter().position(|p| *p == r.key[t]).unwrap_or(0) as i32;
        lines
            .entry(name.join(" / "))
            .or_default()
            .push((x, value(r).unwrap_or(0.0)));
    }
    let max = rows
        .iter()
        .filter_map(|r| value(r))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title(a, unit), ("sans-serif", 20))
            .margin(15)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0..(periods.len() as i32 - 1).max(1), 0f64..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(periods.len().min(20))
            .x_label_formatter(&|x| {
                periods
                    .get(*x as usize)
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            })
            .y_desc(if unit.is_empty() {
                "quantity".to_owned()
            } else {
                unit.to_owned()
            })
            .draw()
            .map_err(err)?;
        for (i, (name, mut points)) in lines.into_iter().enumerate() {
            points.sort_by_key(|p| p.0);
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Origins on the left, destinations on the right, a band per route as wide as its quantity.
fn flows(
    a: &Answer,
    unit: &str,
    rows: &[&AggregateRow],
    o: usize,
    d: usize,
) -> Result<String, String> {
    let transit = position(a, "TRANSIT_AREA");
    let total = |f: &dyn Fn(&AggregateRow) -> &str| {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        for r in rows {
            *m.entry(f(r).to_owned()).or_default() += value(r).unwrap_or(0.0);
        }
        let mut v: Vec<(String, f64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    };
    let origins = total(&|r| r.key[o].as_str());
    let destinations = total(&|r| r.key[d].as_str());
    let height = 120 + 60 * origins.len().max(destinations.len()) as i32;
    let max = rows
        .iter()
        .filter_map(|r| value(r))
        .fold(0.0, f64::max)
        .max(1e-9);
    let y_of = |list: &[(String, f64)], name: &str| {
        90 + 60 * list.iter().position(|(n, _)| n == name).unwrap_or(0) as i32
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let font = ("sans-serif", 16).into_font();
        root.draw(&Text::new(
            title(a, unit),
            (20, 20),
            ("sans-serif", 20).into_font(),
        ))
        .map_err(err)?;
        let (left, right) = (220, 780);
        let heading = |text: &str, x: i32, h: HPos| {
            Text::new(
                text.to_owned(),
                (x, 60),
                TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(h, VPos::Center)),
            )
        };
        root.draw(&heading("ORIGIN_AREA", left - 10, HPos::Right))
            .map_err(err)?;
        root.draw(&heading("DESTINATION_AREA", right + 10, HPos::Left))
            .map_err(err)?;
        for (i, r) in rows.iter().enumerate() {
            let (y1, y2) = (y_of(&origins, &r.key[o]), y_of(&destinations, &r.key[d]));
            let width = (2.0 + 28.0 * value(r).unwrap_or(0.0) / max) as u32;
            let color = Palette99::pick(i).mix(0.6);
            let mid = ((left + right) / 2, (y1 + y2) / 2);
            root.draw(&PathElement::new(
                vec![(left, y1), mid, (right, y2)],
                color.stroke_width(width),
            ))
            .map_err(err)?;
            if let Some(t) = transit.map(|t| r.key[t].as_str()).filter(|t| !t.is_empty()) {
                let style = TextStyle::from(("sans-serif", 12).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                root.draw(&Text::new(
                    format!("via {}", t.replace(';', ", ")),
                    (mid.0, mid.1 - 6),
                    style,
                ))
                .map_err(err)?;
            }
        }
        for (name, q) in &origins {
            let style = TextStyle::from(font.clone()).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(
                format!("{name} {q:.0}"),
                (left - 10, y_of(&origins, name)),
                style,
            ))
            .map_err(err)?;
        }
        for (name, q) in &destinations {
            let style = TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(
                format!("{name} {q:.0}"),
                (right + 10, y_of(&destinations, name)),
                style,
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A bar per cell.
fn bars(a: &Answer, unit: &str, rows: &[&AggregateRow]) -> Result<String, String> {
    let max = rows
        .iter()
        .filter_map(|r| value(r))
        .fold(0.0, f64::max)
        .max(1e-9);
    let height = 80 + 28 * rows.len() as i32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        root.draw(&Text::new(
            title(a, unit),
            (20, 20),
            ("sans-serif", 20).into_font(),
        ))
        .map_err(err)?;
        for (i, r) in rows.iter().enumerate() {
            let y = 60 + 28 * i as i32;
            let w = (600.0 * value(r).unwrap_or(0.0) / max) as i32;
            let label = TextStyle::from(("sans-serif", 14).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(r.key.join(" / "), (290, y + 10), label))
                .map_err(err)?;
            root.draw(&Rectangle::new(
                [(300, y), (300 + w.max(1), y + 20)],
                Palette99::pick(i).filled(),
            ))
            .map_err(err)?;
            let value_style = TextStyle::from(("sans-serif", 12).into_font())
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(
                r.quantity.clone(),
                (306 + w, y + 10),
                value_style,
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}
