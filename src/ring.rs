//! The sample ring between the audio thread and the worker.
//!
//! In: mono samples pushed by `process()` (real-time side: no allocation, lock or syscall).
//! Out: the same samples, in order, popped by the worker, plus a count of samples dropped when the
//! worker fell behind (the oldest audio is dropped; the audio thread never waits).
