//! Trains an IGTree from a TiMBL column file and writes the model: the core alone, without Python,
//! for measuring the core's own time and peak memory.
//!
//! `cargo run --release --example train_instance_file -- TRAIN.txt MODEL.memlm [--instance-base]`

use std::path::PathBuf;
use std::time::Instant;

use memlm_core::{columns, Model, TrainSpec, Vocabulary, Weighting};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [train, output, rest @ ..] = &args[..] else {
        return Err("usage: train_instance_file TRAIN.txt MODEL.memlm [--instance-base]".into());
    };
    let start = Instant::now();
    let file = columns::read_training_file(&PathBuf::from(train), None)?;
    let read = start.elapsed();
    let spec = TrainSpec {
        vocabulary: Vocabulary::Symbols(file.symbols),
        weighting: Weighting::GainRatio,
        tokenizer: &[],
        metadata: "{}",
        instance_base: rest.iter().any(|a| a == "--instance-base"),
        build: Default::default(),
        keep_tokens: None,
        kneser_ney: None,
        provenance: None,
        reduced: None,
    };
    let model = Model::train(file.table, spec)?;
    model.file().save(&PathBuf::from(output), None)?;
    eprintln!(
        "read {:.2}s, total {:.2}s, {} bytes",
        read.as_secs_f64(),
        start.elapsed().as_secs_f64(),
        model.file().as_bytes().len()
    );
    Ok(())
}
