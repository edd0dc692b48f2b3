//! `portcullis model …`: relationship models (OpenFGA modeling language or JSON), offline.
//!
//! Exit status: 0 valid (and converted), 1 an invalid model (every error is printed as
//! `FILE:line:col: message`), 2 input that could not be read or used at all.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use portcullis_policy::rebac::{Model, ModelErrors};

/// Exit code for success.
const OK: u8 = 0;
/// Exit code for an invalid model.
const INVALID: u8 = 1;
/// Exit code for input that could not be read.
const UNUSABLE: u8 = 2;

/// The model subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Convert a model between the modeling language and JSON, validating it.
    ///
    /// Exit status: 0 converted, 1 invalid model, 2 unreadable input.
    Convert {
        /// The model: `.fga` (modeling language) or `.json`, or `-` for standard input; other
        /// names are recognized by their content.
        file: PathBuf,
        /// The form to print (default: the other one).
        #[arg(long, value_enum, value_name = "FORM")]
        to: Option<Form>,
    },
    /// Validate a model; print every error with its line and column.
    ///
    /// Exit status: 0 valid, 1 invalid model, 2 unreadable input.
    Validate {
        /// The model: `.fga`, `.json`, or `-` for standard input.
        file: PathBuf,
    },
}

/// A model's written form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Form {
    /// OpenFGA's JSON `AuthorizationModel`.
    Json,
    /// The OpenFGA modeling language.
    Dsl,
}

/// Runs one model subcommand and returns the exit code.
pub fn run(command: ModelCommand) -> u8 {
    match command {
        ModelCommand::Convert { file, to } => convert(&file, to),
        ModelCommand::Validate { file } => validate(&file),
    }
}

fn convert(file: &Path, to: Option<Form>) -> u8 {
    let (name, form, model) = match load(file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let target = to.unwrap_or(match form {
        Form::Json => Form::Dsl,
        Form::Dsl => Form::Json,
    });
    match target {
        Form::Json => match serde_json::to_string_pretty(&model.to_json()) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: {name}: cannot render the model as JSON: {error}");
                return UNUSABLE;
            }
        },
        Form::Dsl => {
            let text = model.to_dsl();
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    OK
}

fn validate(file: &Path) -> u8 {
    let (name, form, model) = match load(file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let ast = model.ast();
    let relations: usize = ast.types.iter().map(|t| t.relations.len()).sum();
    println!(
        "ok: {name} ({}): {} type{}, {relations} relation{}, {} condition{}",
        match form {
            Form::Json => "JSON",
            Form::Dsl => "modeling language",
        },
        ast.types.len(),
        if ast.types.len() == 1 { "" } else { "s" },
        if relations == 1 { "" } else { "s" },
        ast.conditions.len(),
        if ast.conditions.len() == 1 { "" } else { "s" },
    );
    OK
}

/// Reads and validates a model; on failure prints why and returns the exit code.
fn load(file: &Path) -> Result<(String, Form, Model), u8> {
    let (name, source) = if file.as_os_str() == "-" {
        let mut source = String::new();
        if let Err(error) = std::io::stdin().read_to_string(&mut source) {
            eprintln!("error: cannot read standard input: {error}");
            return Err(UNUSABLE);
        }
        ("<stdin>".to_owned(), source)
    } else {
        match std::fs::read_to_string(file) {
            Ok(source) => (file.display().to_string(), source),
            Err(error) => {
                eprintln!("error: cannot read {}: {error}", file.display());
                return Err(UNUSABLE);
            }
        }
    };
    let form = form_of(file, &source);
    let parsed = match form {
        Form::Json => Model::from_json(&source),
        Form::Dsl => Model::from_dsl(&source),
    };
    match parsed {
        Ok(model) => Ok((name, form, model)),
        Err(errors) => {
            report(&name, &errors);
            Err(INVALID)
        }
    }
}

/// The form of a model: by extension, else by content (JSON starts with `{`).
fn form_of(file: &Path, source: &str) -> Form {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => Form::Json,
        Some("fga" | "openfga") => Form::Dsl,
        _ if source.trim_start().starts_with('{') => Form::Json,
        _ => Form::Dsl,
    }
}

fn report(name: &str, errors: &ModelErrors) {
    for error in &errors.0 {
        let place = match &error.path {
            Some(path) => format!("at {path}: "),
            None => String::new(),
        };
        eprintln!(
            "{name}:{}:{}: {place}{}",
            error.line, error.column, error.message
        );
    }
    let count = errors.0.len();
    eprintln!(
        "{count} error{} in {name}",
        if count == 1 { "" } else { "s" }
    );
}
