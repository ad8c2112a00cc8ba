//! placeholder: export (being written)
