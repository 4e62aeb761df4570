//! TiMBL's column format: `f1 f2 ... fW class` per line, whitespace separated, `_` for padding.
//!
//! Reading a training file, writing one from token windows, and classifying a test file with
//! TiMBL's output layout (`-o`: the instance followed by the predicted class, optionally every
//! class's votes in braces) and totals.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

use crate::atomic::{AtomicFile, Stop};
use crate::build::{Progress, Ticker};
use crate::error::{shown, Error, Result};
use crate::instances::{check_width, InstanceTable, Instances, TokenWindows};
use crate::model::Model;
use crate::query::{Answer, Query};
use crate::vocabulary::PAD_SYMBOL;

fn open(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

/// Reads lines of `path`, calling `each(line_number, fields)` for every non-blank line; a line with
/// another number of fields than the first is an error. `ticker` hears the bytes read.
fn for_each_line(
    path: &Path,
    mut ticker: Option<&mut Ticker>,
    mut each: impl FnMut(usize, &[&str]) -> Result<()>,
) -> Result<()> {
    let mut reader = open(path)?;
    let mut line = String::new();
    let mut number = 0;
    let mut columns = 0;
    let mut bytes = 0u64;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Error::BadInstanceFile {
                path: path.to_path_buf(),
                line: number + 1,
                reason: "not valid UTF-8".into(),
            },
            _ => Error::io(path, e),
        })?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        bytes += n as u64;
        if let Some(ticker) = ticker.as_deref_mut() {
            ticker.advance(bytes)?;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if columns == 0 {
            columns = fields.len();
        } else if fields.len() != columns {
            return Err(Error::BadInstanceFile {
                path: path.to_path_buf(),
                line: number,
                reason: format!(
                    "{} columns where the file started with {columns}",
                    fields.len()
                ),
            });
        }
        each(number, &fields)?;
    }
}

/// A training file read into a symbol table and rows of symbol ids.
pub struct TrainingFile {
    /// The instances.
    pub table: InstanceTable,
    /// Symbol strings by id; id 0 is `_`.
    pub symbols: Vec<String>,
}

/// Reads a TiMBL column-format training file; the width is the number of columns minus one.
/// `progress` hears how many of the file's bytes were read (phase "reading the instance file"); an
/// error from it stops the reading and is returned.
pub fn read_training_file(path: &Path, progress: Option<Progress>) -> Result<TrainingFile> {
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut symbols = vec![PAD_SYMBOL.to_string()];
    ids.insert(PAD_SYMBOL.to_string(), 0);
    let mut rows: Vec<u32> = Vec::new();
    let mut columns = 0usize;
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len() as usize;
    let mut ticker = Ticker::start(progress, "reading the instance file", file_bytes as u64)?;
    for_each_line(path, Some(&mut ticker), |number, fields| {
        if columns == 0 {
            // Reserve once from the file size and the first line, rather than doubling as rows come.
            let line_bytes = fields.iter().map(|f| f.len() + 1).sum::<usize>().max(1);
            rows.reserve((file_bytes / line_bytes + 1) * fields.len() * 5 / 4);
            if fields.len() < 2 {
                return Err(Error::BadInstanceFile {
                    path: path.to_path_buf(),
                    line: number,
                    reason: "an instance needs at least one feature and a class".into(),
                });
            }
            check_width(fields.len() - 1).map_err(|e| Error::BadInstanceFile {
                path: path.to_path_buf(),
                line: number,
                reason: e.to_string(),
            })?;
            columns = fields.len();
        }
        for &field in fields {
            let id = match ids.get(field) {
                Some(&id) => id,
                None => {
                    let id = symbols.len() as u32;
                    ids.insert(field.to_string(), id);
                    symbols.push(field.to_string());
                    id
                }
            };
            rows.push(id);
        }
        Ok(())
    })?;
    if columns == 0 {
        return Err(Error::InvalidInput(format!(
            "{}: no instances in the file",
            shown(path)
        )));
    }
    if symbols.len() == 1 {
        return Err(Error::InvalidInput(format!(
            "{}: every field is the padding symbol \"{PAD_SYMBOL}\": nothing to learn",
            shown(path)
        )));
    }
    ticker.finish()?;
    Ok(TrainingFile {
        table: InstanceTable::new(rows, columns - 1)?,
        symbols,
    })
}

/// Writes token windows as a TiMBL column file (decimal token ids, `_` for padding), atomically;
/// `stop` as for [`AtomicFile::commit`].
pub fn write_instance_file(
    windows: &TokenWindows,
    path: &Path,
    stop: Option<Stop<'_>>,
) -> Result<()> {
    let mut out = AtomicFile::create(path)?;
    let w = out.writer();
    let mut line = String::new();
    for i in 0..windows.len() {
        line.clear();
        for f in 0..windows.width() {
            push_symbol(&mut line, windows.feature(i, f), windows.pad());
            line.push(' ');
        }
        push_symbol(&mut line, windows.class(i), windows.pad());
        line.push('\n');
        w.write_all(line.as_bytes())
            .map_err(|e| Error::io(path, e))?;
    }
    out.commit(stop)
}

fn push_symbol(line: &mut String, id: u32, pad: u32) {
    use std::fmt::Write as _;
    if id == pad {
        line.push_str(PAD_SYMBOL);
    } else {
        write!(line, "{id}").expect("writing to a String cannot fail");
    }
}

/// Totals of classifying a test file, in TiMBL's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassifyTotals {
    /// Instances classified.
    pub instances: usize,
    /// Instances whose given class equals the prediction.
    pub correct: usize,
    /// Whether the file carried classes (one column more than the width).
    pub has_classes: bool,
    /// Seconds spent in classification alone (not reading or writing).
    pub seconds: f64,
}

const CHUNK: usize = 1 << 16;

/// The string of a class the model answered with.
fn symbol(model: &Model, class: u32) -> std::borrow::Cow<'_, str> {
    model.symbols().get(class).expect("a class is a symbol")
}

/// Classifies every line of a column file with `query` and writes TiMBL's output layout to
/// `output` (atomically; standard output when None): the instance, the predicted class and, with
/// `with_distribution`, every class's votes (IGTree: the node's counts) in braces. A query the model
/// cannot run is refused before the output is made. A write error names `output` (or `<stdout>`);
/// a reader of standard output that went away is the OS's broken pipe (EPIPE). `stop` is asked
/// just before `output` is committed (see [`AtomicFile::commit`]).
pub fn classify_file(
    model: &Model,
    path: &Path,
    output: Option<&Path>,
    with_distribution: bool,
    query: &Query,
    stop: Option<Stop<'_>>,
) -> Result<ClassifyTotals> {
    model.check_algorithm(query.algorithm())?;
    match output {
        Some(out) => {
            let mut file = AtomicFile::create(out)?;
            let totals = classify_to(model, path, file.writer(), out, with_distribution, query)?;
            file.commit(stop)?;
            Ok(totals)
        }
        None => {
            let stdout = Path::new("<stdout>");
            let mut lock = std::io::BufWriter::new(std::io::stdout().lock());
            let totals = classify_to(model, path, &mut lock, stdout, with_distribution, query)?;
            lock.flush().map_err(|e| Error::io(stdout, e))?;
            Ok(totals)
        }
    }
}

/// [`classify_file`] to any writer, named `out_name` in errors.
fn classify_to(
    model: &Model,
    path: &Path,
    out: &mut dyn Write,
    out_name: &Path,
    with_distribution: bool,
    query: &Query,
) -> Result<ClassifyTotals> {
    let mut classifier = Classifier {
        model,
        query: query.with_top_k(if with_distribution { 0 } else { 1 }),
        with_distribution,
        out,
        out_name,
        lines: Vec::with_capacity(CHUNK),
        contexts: Vec::with_capacity(CHUNK * model.width()),
        classes: Vec::with_capacity(CHUNK),
        columns: 0,
        totals: ClassifyTotals::default(),
    };
    for_each_line(path, None, |number, fields| {
        classifier.push(path, number, fields)
    })?;
    classifier.flush()?;
    Ok(classifier.totals)
}

/// A column file being classified: its lines are gathered in chunks of [`CHUNK`], answered on all
/// cores and written in TiMBL's layout.
struct Classifier<'a> {
    model: &'a Model,
    query: Query,
    with_distribution: bool,
    out: &'a mut dyn Write,
    out_name: &'a Path,
    /// The chunk's lines as read (fields joined by one space) ...
    lines: Vec<String>,
    /// ... their contexts (row-major) ...
    contexts: Vec<u32>,
    /// ... and their given classes (when the file has them).
    classes: Vec<u32>,
    /// Fields per line: the first line's (0 before it).
    columns: usize,
    totals: ClassifyTotals,
}

impl Classifier<'_> {
    /// Adds line `number` of `path` to the chunk (the first line decides whether the file has
    /// classes), and classifies the chunk once it is full.
    fn push(&mut self, path: &Path, number: usize, fields: &[&str]) -> Result<()> {
        let width = self.model.width();
        if self.columns == 0 {
            if fields.len() != width && fields.len() != width + 1 {
                return Err(Error::BadInstanceFile {
                    path: path.to_path_buf(),
                    line: number,
                    reason: format!(
                        "{} columns but the model's width is {width} (a line holds {width} features and optionally a class)",
                        fields.len()
                    ),
                });
            }
            self.columns = fields.len();
            self.totals.has_classes = self.columns == width + 1;
        }
        let symbols = self.model.symbols();
        self.contexts
            .extend(fields[..width].iter().map(|s| symbols.id(s)));
        if self.totals.has_classes {
            self.classes.push(symbols.id(fields[width]));
        }
        self.lines.push(fields.join(" "));
        if self.lines.len() == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Classifies the chunk, writes its output lines and empties it (nothing when it is empty).
    fn flush(&mut self) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let answers = self.model.answers(&self.contexts, &self.query)?;
        self.totals.seconds += start.elapsed().as_secs_f64();
        let mut text = String::new();
        for (k, answer) in answers.iter().enumerate() {
            let Some(&predicted) = answer.classes.first() else {
                return Err(Error::InvalidInput(
                    "the model answered with no class".into(),
                ));
            };
            if self.totals.has_classes && self.classes[k] == predicted {
                self.totals.correct += 1;
            }
            text.clear();
            self.format_line(&self.lines[k], predicted, answer, &mut text);
            self.out
                .write_all(text.as_bytes())
                .map_err(|e| Error::io(self.out_name, e))?;
        }
        self.totals.instances += answers.len();
        self.lines.clear();
        self.contexts.clear();
        self.classes.clear();
        Ok(())
    }

    /// TiMBL's output line for an instance: the line as read, the predicted class and, with the
    /// distribution, every class's votes in braces.
    fn format_line(&self, line: &str, predicted: u32, answer: &Answer, text: &mut String) {
        text.push_str(line);
        text.push(' ');
        text.push_str(&symbol(self.model, predicted));
        if self.with_distribution {
            text.push_str(" {");
            for (j, (&c, v)) in answer.classes.iter().zip(&answer.votes).enumerate() {
                let sep = if j == 0 { " " } else { ", " };
                text.push_str(&format!("{sep}{} {v:.5}", symbol(self.model, c)));
            }
            text.push_str(" }");
        }
        text.push('\n');
    }
}
