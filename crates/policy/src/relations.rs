//! Relationship grants (C3) inside the engine: the bundle's model and tuples, checked when the
//! bundle compiles, and the live relation index that decisions consult.
//!
//! A bundle names its model file with `model:` (OpenFGA DSL in `*.fga`, or OpenFGA JSON in
//! `*.json`) and may ship tuples in a `tuples:` section. An action maps to a relation with
//! `relation:`; the grant holds when the principal (`type:id`) has that relation on the
//! resource. The index ([`Relations`]) is shared, not copied: a snapshot holds a handle, and
//! the server applies tuple changes to it in place, so a tuple write costs an index update,
//! not a recompile. This module never reads files or the store; callers hand it text.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use portcullis_rebac::{Graph, Model, ObjectRef, Tuple, TupleCondition};
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Location};
use crate::model::{At, Bundle, SourceFile};
use crate::yaml::Pos;

/// Whether a file of a bundle is a model file (read as text, not parsed as YAML).
pub(crate) fn is_model_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("fga" | "json")
    )
}

/// One tenant's live relation index, shared by every snapshot of the tenant that has the same
/// model.
#[derive(Debug)]
pub struct Relations {
    graph: RwLock<Graph>,
    revision: AtomicU64,
}

impl Relations {
    /// An index holding `graph`, at data revision `revision`.
    pub fn new(graph: Graph, revision: u64) -> Arc<Relations> {
        Arc::new(Relations {
            graph: RwLock::new(graph),
            revision: AtomicU64::new(revision),
        })
    }

    /// Reads the index. Queries hold the lock only for their own duration.
    pub fn read(&self) -> RwLockReadGuard<'_, Graph> {
        // A panic while holding the lock cannot leave the index half-written: every write is a
        // single insert or remove. Keep serving.
        self.graph.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the index.
    pub fn write(&self) -> RwLockWriteGuard<'_, Graph> {
        self.graph.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The data revision the index reflects.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Records that the index reflects `revision`.
    pub fn set_revision(&self, revision: u64) {
        self.revision.store(revision, Ordering::Release);
    }
}

/// Reads the model file the bundle names (reporting every problem in it with its location),
/// records its JSON form in the bundle (so the revision covers it), and reports model files
/// that no `model:` names.
pub(crate) fn resolve_model(
    bundle: &mut Bundle,
    model_files: &[&SourceFile],
    diagnostics: &mut Diagnostics,
) -> Option<Arc<Model>> {
    let Some(name) = bundle.model.clone() else {
        for file in model_files {
            diagnostics.push(
                Diagnostic::new(
                    Location::file(&file.path),
                    Code::UnknownReference,
                    "the bundle holds a model file, but no `model:` names it",
                )
                .with_help("add `model: <file name>` to tenant.yaml, or remove the file"),
            );
        }
        return None;
    };
    let mut found = None;
    for file in model_files {
        let file_name = file.path.file_name().and_then(|n| n.to_str());
        if file_name == Some(name.value.as_str()) {
            found = Some(*file);
        } else {
            diagnostics.push(
                Diagnostic::new(
                    Location::file(&file.path),
                    Code::UnknownReference,
                    format!(
                        "the bundle's model is `{}`; this model file is not used",
                        name.value
                    ),
                )
                .with_help("remove the file, or name it with `model:`"),
            );
        }
    }
    let Some(file) = found else {
        diagnostics.push(
            Diagnostic::new(
                name.location.clone(),
                Code::UnknownReference,
                format!("model file `{}` is not in the bundle", name.value),
            )
            .with_help("put the model (`*.fga` for the OpenFGA language, `*.json` for its JSON form) next to tenant.yaml"),
        );
        return None;
    };
    let parsed = if file.path.extension().and_then(|e| e.to_str()) == Some("json") {
        Model::from_json(&file.text)
    } else {
        Model::from_dsl(&file.text)
    };
    match parsed {
        Ok(model) => {
            // The JSON text, not a `serde_json` tree: a tree costs a few hundred bytes per
            // rewrite term, the text about fifty.
            bundle.model_json = Some(Value::String(model.to_json_string()));
            Some(Arc::new(model))
        }
        Err(errors) => {
            let path: Arc<Path> = Arc::from(file.path.as_path());
            for error in errors.0 {
                let message = match &error.path {
                    Some(json_path) => format!("at {json_path}: {}", error.message),
                    None => error.message,
                };
                diagnostics.push(Diagnostic::new(
                    Location::at(
                        &path,
                        Pos {
                            line: error.line.max(1),
                            column: error.column.max(1),
                        },
                    ),
                    Code::Model,
                    message,
                ));
            }
            None
        }
    }
}

/// The bundle's tuples, each checked against the model (problems reported at the tuple).
pub(crate) fn bundle_tuples(
    model: Option<&Model>,
    bundle: &Bundle,
    diagnostics: &mut Diagnostics,
) -> Vec<Tuple> {
    // The count is checked with the other bundle limits (`limits::MAX_BUNDLE_TUPLES`).
    let mut tuples = Vec::with_capacity(bundle.tuples.len());
    for At { value, location } in &bundle.tuples {
        let Some(model) = model else {
            diagnostics.push(
                Diagnostic::new(
                    location.clone(),
                    Code::UnknownReference,
                    "the bundle has tuples but no relationship model",
                )
                .with_help("name the model file with `model:` in tenant.yaml"),
            );
            return Vec::new();
        };
        let mut tuple = match Tuple::parse(&value.user, &value.relation, &value.object) {
            Ok(tuple) => tuple,
            Err(error) => {
                diagnostics.push(Diagnostic::new(
                    location.clone(),
                    Code::Model,
                    error.to_string(),
                ));
                continue;
            }
        };
        if let Some((name, context)) = &value.condition {
            tuple.condition = Some(TupleCondition {
                name: name.clone(),
                context: context.clone(),
            });
        }
        match model.validate_tuple(&tuple) {
            Ok(()) => tuples.push(tuple),
            Err(error) => diagnostics.push(Diagnostic::new(
                location.clone(),
                Code::Model,
                error.to_string(),
            )),
        }
    }
    tuples
}

/// Checks that an action's relation exists on the action's resource type in the model.
pub(crate) fn check_action_relation(
    action: &str,
    relation: &At<String>,
    model: Option<&Model>,
    model_named: bool,
    diagnostics: &mut Diagnostics,
) {
    let Some(model) = model else {
        if !model_named {
            diagnostics.push(
                Diagnostic::new(
                    relation.location.clone(),
                    Code::UnknownReference,
                    format!(
                        "action `{action}` maps to relation `{}`, but the bundle has no relationship model",
                        relation.value
                    ),
                )
                .with_help("name the model file with `model:` in tenant.yaml"),
            );
        }
        return;
    };
    let (object_type, _) = crate::model::split_action(action);
    if !model.has_relation(object_type, &relation.value) {
        diagnostics.push(
            Diagnostic::new(
                relation.location.clone(),
                Code::UnknownReference,
                format!(
                    "action `{action}` maps to relation `{}`, which type `{object_type}` does not define in the model",
                    relation.value
                ),
            )
            .with_help(format!(
                "define `{}` on type `{object_type}` in the model, or map the action to a relation it has",
                relation.value
            )),
        );
    }
}

/// The object a request's resource names in the relation index.
pub(crate) fn resource_object(resource: &portcullis_core::Resource) -> ObjectRef {
    ObjectRef::new(resource.kind.as_str(), resource.id.as_str())
}
