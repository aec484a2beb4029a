//! One file per layer. Each cached layer has a typed metadata struct holding exactly what
//! invalidates it; `restored_layer_action` compares old and new field by field (by
//! destructuring, so a new field cannot be forgotten) and every discard reason is logged.

pub mod build_cache;
pub mod dependencies;
pub mod headers;
pub mod runtime;
pub mod tool;
pub mod tool_cache;
pub mod web_env;

use libcnb::layer::{EmptyLayerCause, InvalidMetadataAction, LayerState, RestoredLayerAction};

/// Why a cached layer was discarded: one line per changed input.
pub type Reasons = Vec<String>;

/// The restored-layer decision shared by every cached layer.
pub fn keep_if_unchanged(reasons: Reasons) -> (RestoredLayerAction, Reasons) {
    if reasons.is_empty() {
        (RestoredLayerAction::KeepLayer, reasons)
    } else {
        (RestoredLayerAction::DeleteLayer, reasons)
    }
}

/// Metadata we cannot read was written by another version of this buildpack.
pub fn discard_unreadable<M, T>(_: &T) -> (InvalidMetadataAction<M>, Reasons) {
    (
        InvalidMetadataAction::DeleteLayer,
        vec!["its metadata was written by another version of this buildpack".to_string()],
    )
}

/// Record `what changed (old → new)` when a metadata field differs.
pub fn diff(reasons: &mut Reasons, what: &str, old: &str, new: &str) {
    if old != new {
        reasons.push(format!("{what} changed ({old} → {new})"));
    }
}

/// Log why a layer is empty (nothing when it was simply never built); true when it was
/// restored and can be used as is.
pub fn explain(state: &LayerState<Reasons, Reasons>, what: &str) -> bool {
    match state {
        LayerState::Restored { .. } => true,
        LayerState::Empty { cause } => {
            match cause {
                EmptyLayerCause::NewlyCreated => {}
                EmptyLayerCause::InvalidMetadataAction { cause }
                | EmptyLayerCause::RestoredLayerAction { cause } => {
                    for reason in cause {
                        println!("Discarding cached {what}: {reason}");
                    }
                }
            }
            false
        }
    }
}
