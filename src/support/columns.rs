//! Text tables for a terminal: rows of cells in columns as wide as their widest cell, two spaces
//! apart, without trailing blanks.

/// How the cells of a table line up in their columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Figures read best right-aligned.
    Right,
}

/// `rows` (the header first) laid out in columns, a line each.
pub fn render<R: AsRef<[String]>>(rows: &[R], align: Align) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.as_ref().get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| match align {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [vec!["A".to_owned(), "BB".to_owned()], vec!["ccc".to_owned(), "d".to_owned()]];
        assert_eq!(render(&rows, Align::Left), "A    BB\nccc  d\n");
        assert_eq!(render(&rows, Align::Right), "  A  BB\nccc   d\n");
        let wide = [vec!["é".to_owned(), "x".to_owned()], vec!["ab".to_owned(), String::new()]];
        assert_eq!(render(&wide, Align::Left), "é   x\nab\n", "characters, not bytes; no trailing blanks");
    }
}
