//! The starter config `hh init` writes.
