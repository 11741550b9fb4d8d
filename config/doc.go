// Package config reads tessera.yaml, the one configuration file of tessera.
//
// A configuration is built in a fixed order, each step overriding the one before:
//
//  1. Default, the one place where every default is set;
//  2. the file, through Load or Parse;
//  3. the environment, through Config.ApplyEnv (secrets live there, never in the file);
//  4. command-line flags, through Config.Override;
//  5. Config.Validate, before anything starts.
//
// Parsing is strict: an unknown key, a value of the wrong type or a malformed duration is an
// error that names the file, line, column and key path, such as
//
//	tessera.yaml:7:3: unknown key "kafka.partitons" (did you mean "kafka.partitions"?)
//
// A key written with no value (or null) keeps its default. Validate names the key path of
// every invalid value, prefixed with the file position it came from, or followed by the
// environment variable that set it:
//
//	tessera.yaml:9:15: kafka.partitions: must be between 1 and 10000, got 0
//	kafka.brokers[0]: "localhost" is not host:port: missing port in address (from $TESSERA_BROKERS)
package config
