// Package scenario runs scripted scenario tests, in the style of etcd's
// raft tests: a state machine (rule ownership, the WAL's replay) is driven
// by a file of commands, each followed by the output it printed, so that a
// reader sees every step and a change of behaviour shows as a diff.
//
// It owns the file format and the -update flag that rewrites expected
// outputs; it must never know what a command means (that is the test's).
package scenario
