//! Placement and supervision decisions.
