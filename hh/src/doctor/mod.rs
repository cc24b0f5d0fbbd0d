//! Stub; filled below.
